use super::{policy_object, short_list};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;
use crate::policy::{Direction, Peer, PortSpec};
use crate::ports::Protocol;

declare_rule! {
    /// ## What it does
    /// Points out constructs that network plugins enforce differently:
    /// - SCTP ports: plugins without SCTP support cannot filter SCTP (and must
    ///   never treat it as TCP);
    /// - `endPort` ranges: a plugin without `endPort` support (GA since
    ///   Kubernetes 1.25) applies the rule to `port` alone;
    /// - `ipBlock`s that contain pod IPs: Calico and the upstream e2e suite
    ///   match pods by IP, Cilium does not (netpol's `--ip-block` option picks
    ///   one);
    /// - policies that select `hostNetwork` pods: most plugins never apply
    ///   policy to them (netpol's `--host-network` option picks one).
    ///
    /// ## Why it matters
    /// The same YAML can allow different traffic on different clusters.
    ///
    /// ## Example
    /// ```yaml
    /// ports:
    /// - {port: 30000, endPort: 32767}   # one port only without endPort support
    /// ```
    ///
    /// ## Use instead
    /// Check what your plugin supports, or spell out what you need without the
    /// construct.
    pub struct Portability {
        code: "NP011",
        name: "portability",
        severity: Info,
        summary: "a construct that network plugins enforce differently",
    }
}

impl Rule for Portability {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        for (id, policy) in cluster.policies.iter().enumerate() {
            let object = Some(policy_object(model, id));
            for direction in [Direction::Ingress, Direction::Egress] {
                for rule in policy.rules(direction).unwrap_or_default() {
                    let rule_path = FieldPath::root()
                        .key("spec")
                        .key(direction.field())
                        .index(rule.index);
                    for (index, port) in rule.ports.iter().flatten().enumerate() {
                        let source = rule.port_sources.get(index).cloned().flatten();
                        let path = rule_path.key("ports").index(index);
                        if port.protocol() == Protocol::Sctp {
                            findings.push(
                                Finding::new(self.info(), "SCTP: plugins without SCTP support cannot filter it; check that yours does")
                                    .at(source.clone(), object.clone(), path.key("protocol")),
                            );
                        }
                        if let PortSpec::Range { first, last, .. } = port
                            && first != last
                        {
                            findings.push(
                                Finding::new(
                                    self.info(),
                                    format!("endPort: a plugin without endPort support applies this rule to port {first} only, not {first}-{last}"),
                                )
                                .at(source, object.clone(), path.key("endPort")),
                            );
                        }
                    }
                    for (index, peer) in rule.peers.iter().flatten().enumerate() {
                        let Peer::IpBlock {
                            addresses, cidr, ..
                        } = peer
                        else {
                            continue;
                        };
                        let pods: Vec<String> = cluster
                            .endpoints
                            .iter()
                            .enumerate()
                            .filter(|(_, e)| {
                                !e.host_network && e.ips.iter().any(|ip| addresses.contains(*ip))
                            })
                            .map(|(e, _)| cluster.endpoint_name(e).to_string())
                            .collect();
                        if !pods.is_empty() {
                            findings.push(
                                Finding::new(
                                    self.info(),
                                    format!(
                                        "ipBlock {cidr} contains pod IPs ({}): Calico matches those pods here, Cilium does not",
                                        short_list(pods, 3)
                                    ),
                                )
                                .at(
                                    rule.peer_sources.get(index).cloned().flatten(),
                                    object.clone(),
                                    rule_path.key(direction.peers_field()).index(index).key("ipBlock"),
                                ),
                            );
                        }
                    }
                }
            }
            let host_network_pods: Vec<String> = cluster
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.host_network
                        && e.namespace == policy.namespace
                        && policy.pod_selector.matches(&e.labels)
                })
                .map(|(e, _)| cluster.endpoint_name(e).to_string())
                .collect();
            if !host_network_pods.is_empty() {
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "the policy's podSelector matches hostNetwork pods ({}): most plugins never apply policy to them",
                            short_list(host_network_pods, 3)
                        ),
                    )
                    .at(
                        policy.locate(&FieldPath::parse("spec.podSelector")),
                        object.clone(),
                        FieldPath::parse("spec.podSelector"),
                    ),
                );
            }
        }
    }
}
