use std::collections::BTreeMap;

use super::{policy_object, short_list};
use crate::cluster::NAMESPACE_NAME_LABEL;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::{BackendTarget, ClassId, Model, PolicyId, PortQuery};
use crate::path::FieldPath;
use crate::policy::Direction;
use crate::policy::{NamespaceScope, Peer, PortSpec};
use crate::ports::Protocol;
use crate::selector::Labels;

declare_rule! {
    /// ## What it does
    /// Reports egress isolation that blocks DNS: pods whose egress policies do
    /// not allow both UDP 53 and TCP 53 to the cluster DNS pods. When the
    /// input has the `kube-system/kube-dns` Service, the DNS pods are its
    /// backends on its UDP and TCP port 53, each on its target port, and a
    /// pod must reach every one of them (kube-proxy may pick any: names then
    /// resolve only sometimes). Without the Service they are the pods
    /// labelled `k8s-app: kube-dns`, on their `dns`/`dns-tcp` ports. When the
    /// input has neither, a rule counts if
    /// its peers could be them (no `to`, an `ipBlock`, or selectors that match
    /// `k8s-app: kube-dns` in `kube-system`). One finding per isolating policy.
    ///
    /// ## Why it matters
    /// NetworkPolicy gives DNS no special treatment. An egress-isolated pod
    /// that cannot reach DNS cannot resolve any name, which breaks it in ways
    /// that look unrelated to policy. Without TCP 53, large answers fail.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   podSelector: {}
    ///   policyTypes: [Egress]
    ///   egress:
    ///   - to: [{podSelector: {matchLabels: {app: db}}}]
    /// ```
    ///
    /// ## Use instead
    /// ```yaml
    ///   - to:
    ///     - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
    ///       podSelector: {matchLabels: {k8s-app: kube-dns}}
    ///     ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
    /// ```
    pub struct DnsBlocked {
        code: "NP008",
        name: "dns-blocked",
        severity: Warning,
        summary: "egress isolation that blocks DNS",
    }
}

/// The kube-dns Service's backends of one protocol: (class, target port).
type DnsBackends = (Protocol, Vec<(ClassId, u16)>);

/// The label cluster DNS pods carry (CoreDNS and kube-dns alike).
const DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

impl Rule for DnsBlocked {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        let dns_classes: Vec<ClassId> = (0..model.classes().len())
            .filter(|&class| {
                // Classes emptied by `Model::apply` have no member to look at.
                let Some(&first) = model.classes()[class].members.first() else {
                    return false;
                };
                let member = &cluster.endpoints[first];
                member
                    .labels
                    .get(DNS_LABEL.0)
                    .is_some_and(|value| value == DNS_LABEL.1)
            })
            .collect();
        // The DNS port of each protocol on a DNS pod: its `dns`/`dns-tcp` container port, or 53.
        let dns_port = |class: ClassId, protocol: Protocol| {
            let names: &[&str] = match protocol {
                Protocol::Udp => &["dns"],
                _ => &["dns-tcp", "dns"],
            };
            names
                .iter()
                .find_map(|name| model.classes()[class].named_port(name, protocol))
                .unwrap_or(53)
        };
        // With the kube-dns Service: its backends per protocol, after DNAT.
        let service_backends: Option<Vec<DnsBackends>> = model
            .find_service("kube-system", "kube-dns")
            .map(|service| {
                [Protocol::Udp, Protocol::Tcp]
                    .into_iter()
                    .map(|protocol| {
                        let backends = model
                            .service_port(service, &PortQuery::Number(53), Some(protocol))
                            .map(|port| model.service_backends(service, port).backends)
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|b| match b.target {
                                BackendTarget::Endpoint(id) => Some((model.class_of(id), b.port)),
                                BackendTarget::Address(_) => None,
                            })
                            .collect();
                        (protocol, backends)
                    })
                    .collect()
            });
        let mut blocked: BTreeMap<PolicyId, Vec<(ClassId, Vec<Protocol>)>> = BTreeMap::new();
        for class in 0..model.classes().len() {
            let Some(&first) = model.classes()[class].members.first() else {
                continue;
            };
            let policies = model.policies_selecting(first, Direction::Egress);
            if policies.is_empty()
                || dns_classes.contains(&class)
                || service_backends
                    .iter()
                    .flatten()
                    .any(|(_, backends)| backends.iter().any(|(c, _)| *c == class))
            {
                continue;
            }
            let missing: Vec<Protocol> = [Protocol::Udp, Protocol::Tcp]
                .into_iter()
                .filter(|&protocol| {
                    if let Some(per_protocol) = &service_backends {
                        let backends = &per_protocol
                            .iter()
                            .find(|(p, _)| *p == protocol)
                            .expect("both protocols")
                            .1;
                        // A Service without that port or without backends
                        // fails whatever policies say: not this rule's finding.
                        return backends.iter().any(|&(dns, port)| {
                            dns != class
                                && !model
                                    .side_ports(Direction::Egress, class, class, dns)
                                    .contains(protocol, port)
                        });
                    }
                    let reaches = if dns_classes.is_empty() {
                        rule_aims_at_dns(model, policies, protocol)
                    } else {
                        dns_classes.iter().any(|&dns| {
                            model
                                .side_ports(Direction::Egress, class, class, dns)
                                .contains(protocol, dns_port(dns, protocol))
                        })
                    };
                    !reaches
                })
                .collect();
            if !missing.is_empty() {
                blocked
                    .entry(policies[0])
                    .or_default()
                    .push((class, missing));
            }
        }
        for (policy, classes) in blocked {
            let endpoints: Vec<String> = classes
                .iter()
                .flat_map(|(class, _)| model.classes()[*class].members.iter())
                .map(|&e| cluster.endpoint_name(e).to_string())
                .collect();
            let only_tcp = classes
                .iter()
                .all(|(_, missing)| missing == &[Protocol::Tcp]);
            let target = if service_backends.is_some() {
                "to every backend of the kube-system/kube-dns Service".to_string()
            } else {
                format!("to the cluster DNS pods ({}={})", DNS_LABEL.0, DNS_LABEL.1)
            };
            let message = if only_tcp {
                format!(
                    "egress isolation blocks DNS over TCP for {}: no egress rule allows TCP 53 {target}, so large DNS answers fail",
                    short_list(endpoints, 4)
                )
            } else {
                format!(
                    "egress isolation blocks DNS for {}: no egress rule allows UDP and TCP 53 {target}, so they cannot resolve names",
                    short_list(endpoints, 4)
                )
            };
            let policy_ref = &cluster.policies[policy];
            findings.push(
                Finding::new(self.info(), message)
                    .with_help("add an egress rule to the DNS pods (namespaceSelector kubernetes.io/metadata.name: kube-system, podSelector k8s-app: kube-dns) on UDP and TCP 53")
                    .at(policy_ref.source.clone(), Some(policy_object(model, policy)), FieldPath::root()),
            );
        }
    }
}

/// Without DNS pods in the input: does some egress rule of these policies
/// allow `protocol` port 53 (or the `dns`/`dns-tcp` name) toward peers that
/// could be the DNS pods: everyone, addresses, or pod selectors that match
/// `k8s-app: kube-dns` in a scope that includes `kube-system`?
fn rule_aims_at_dns(model: &Model, policies: &[PolicyId], protocol: Protocol) -> bool {
    let dns_pod: Labels = [(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())].into();
    let dns_namespace: Labels =
        [(NAMESPACE_NAME_LABEL.to_string(), "kube-system".to_string())].into();
    policies.iter().any(|&policy| {
        let written = &model.cluster().policies[policy];
        written
            .rules(Direction::Egress)
            .unwrap_or_default()
            .iter()
            .any(|rule| {
                let ports_match = match &rule.ports {
                    None => true,
                    Some(ports) => ports.iter().any(|port| match port {
                        PortSpec::AllPorts(p) => *p == protocol,
                        PortSpec::Range {
                            protocol: p,
                            first,
                            last,
                        } => *p == protocol && (*first..=*last).contains(&53),
                        PortSpec::Named { protocol: p, name } => {
                            *p == protocol && (name == "dns" || name == "dns-tcp")
                        }
                    }),
                };
                let peers_match = match &rule.peers {
                    None => true,
                    Some(peers) => peers.iter().any(|peer| match peer {
                        Peer::IpBlock { .. } => true,
                        Peer::Pods { namespaces, pods } => {
                            pods.matches(&dns_pod)
                                && match namespaces {
                                    NamespaceScope::Own(namespace) => namespace == "kube-system",
                                    NamespaceScope::Selected(selector) => {
                                        selector.matches(&dns_namespace)
                                    }
                                }
                        }
                    }),
                };
                ports_match && peers_match
            })
    })
}
