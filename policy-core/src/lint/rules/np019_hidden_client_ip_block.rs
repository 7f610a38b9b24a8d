use std::collections::BTreeSet;

use super::{policy_object, short_list};
use crate::cluster::TrafficPolicy;
use crate::config::ServiceProfile;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::BackendTarget;
use crate::path::FieldPath;
use crate::policy::{Direction, Peer};

declare_rule! {
    /// ## What it does
    /// Reports an ingress `ipBlock` on the backends of a NodePort or
    /// LoadBalancer Service (or one with externalIPs) with
    /// `externalTrafficPolicy: Cluster`, when the block does not cover the
    /// nodes' addresses.
    ///
    /// ## Why it matters
    /// With `Cluster`, kube-proxy forwards outside traffic that arrives on
    /// one node to a backend on another node and masquerades it to the
    /// receiving node's address. The backend's policy then sees a node, not
    /// the client, so an ipBlock on client ranges refuses those connections
    /// (or, on the receiving node, lets the client in): the rule decides by
    /// where the load balancer happened to send the packet. Under the
    /// `client-preserved` profile (Calico eBPF, Cilium DSR) the client is
    /// seen and this rule stays quiet.
    ///
    /// ## Example
    /// ```yaml
    /// kind: Service
    /// spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 443}]}
    /// ---
    /// kind: NetworkPolicy
    /// spec:
    ///   podSelector: {matchLabels: {app: web}}
    ///   ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}]}]
    /// ```
    ///
    /// ## Use instead
    /// Set `externalTrafficPolicy: Local` on the Service (the client
    /// address is kept), or filter clients with `loadBalancerSourceRanges`.
    pub struct HiddenClientIpBlock {
        code: "NP019",
        name: "hidden-client-ip-block",
        severity: Warning,
        summary: "an ipBlock on client ranges where kube-proxy's SNAT hides the client",
    }
}

impl Rule for HiddenClientIpBlock {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        if model.config().service_profile == ServiceProfile::ClientPreserved {
            return;
        }
        let cluster = model.cluster();
        let node_addresses: Vec<std::net::IpAddr> = cluster
            .nodes
            .iter()
            .flat_map(|n| n.addresses.iter().map(|a| a.address))
            .collect();
        // (policy, rule index, peer index) -> Services.
        let mut flagged: std::collections::BTreeMap<(usize, usize, usize), BTreeSet<String>> =
            Default::default();
        for (id, service) in cluster.services.iter().enumerate() {
            let external =
                service.service_type.has_node_ports() || !service.external_ips.is_empty();
            if !external || service.external_traffic_policy != TrafficPolicy::Cluster {
                continue;
            }
            for (index, port) in service.ports.iter().enumerate() {
                for backend in model.service_backends(id, index).backends {
                    let BackendTarget::Endpoint(pod) = backend.target else {
                        continue;
                    };
                    for &policy in model.policies_selecting(pod, Direction::Ingress) {
                        let written = &cluster.policies[policy];
                        for rule in written.rules(Direction::Ingress).unwrap_or_default() {
                            let class = &model.classes()[model.class_of(pod)];
                            let ports_match = model
                                .rule_ids(policy, Direction::Ingress)
                                .map(|i| model.compiled_rule(i))
                                .find(|compiled| compiled.index == rule.index)
                                .is_some_and(|compiled| {
                                    model.ports_of(compiled).allows(
                                        Some(class),
                                        port.protocol,
                                        backend.port,
                                    )
                                });
                            if !ports_match {
                                continue;
                            }
                            for (peer_index, peer) in rule.peers.iter().flatten().enumerate() {
                                let Peer::IpBlock { addresses, .. } = peer else {
                                    continue;
                                };
                                // A block that admits the nodes works either way.
                                if !node_addresses.is_empty()
                                    && node_addresses.iter().all(|a| addresses.contains(*a))
                                {
                                    continue;
                                }
                                flagged
                                    .entry((policy, rule.index, peer_index))
                                    .or_default()
                                    .insert(service.reference());
                            }
                        }
                    }
                }
            }
        }
        for ((policy, rule_index, peer_index), services) in flagged {
            let written = &cluster.policies[policy];
            let rule = written
                .rules(Direction::Ingress)
                .unwrap_or_default()
                .iter()
                .find(|r| r.index == rule_index)
                .expect("rule");
            let Peer::IpBlock { cidr, .. } = &rule.peers.as_ref().expect("peers")[peer_index]
            else {
                unreachable!("flagged peers are ipBlocks")
            };
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "ipBlock {cidr} admits clients of {} (externalTrafficPolicy: Cluster), but traffic forwarded from another node arrives from that node's address: this rule decides by which node received the connection",
                        short_list(services, 3)
                    ),
                )
                .with_help("set externalTrafficPolicy: Local on the Service to keep the client address, or restrict clients with loadBalancerSourceRanges")
                .at(
                    rule.peer_sources.get(peer_index).cloned().flatten(),
                    Some(policy_object(model, policy)),
                    FieldPath::root()
                        .key("spec")
                        .key("ingress")
                        .index(rule_index)
                        .key("from")
                        .index(peer_index)
                        .key("ipBlock"),
                ),
            );
        }
    }
}
