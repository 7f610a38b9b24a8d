use super::{policy_object, short_list};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::policy::{Direction, Peer};

declare_rule! {
    /// ## What it does
    /// Reports an `ipBlock` that contains a Service's ClusterIP.
    ///
    /// ## Why it matters
    /// NetworkPolicy sees traffic after kube-proxy has translated the
    /// ClusterIP to a backend pod's address, so an ipBlock over the Service
    /// range matches nothing on most CNIs. The rule looks like it allows the
    /// Service; it allows nothing.
    ///
    /// ## Example
    /// ```yaml
    /// egress:
    /// - to: [{ipBlock: {cidr: 10.96.0.0/12}}]   # the Service CIDR
    /// ```
    ///
    /// ## Use instead
    /// Select the Service's pods with a `podSelector` (and a
    /// `namespaceSelector`), on the target port.
    pub struct IpBlockOnServiceAddress {
        code: "NP016",
        name: "ip-block-on-service-address",
        severity: Warning,
        summary: "an ipBlock over a Service's ClusterIP, which policy never sees",
    }
}

impl Rule for IpBlockOnServiceAddress {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        for (policy_id, policy) in cluster.policies.iter().enumerate() {
            for direction in [Direction::Ingress, Direction::Egress] {
                for rule in policy.rules(direction).unwrap_or_default() {
                    for (index, peer) in rule.peers.iter().flatten().enumerate() {
                        let Peer::IpBlock {
                            addresses, cidr, ..
                        } = peer
                        else {
                            continue;
                        };
                        let services: Vec<String> = cluster
                            .services
                            .iter()
                            .filter(|s| s.cluster_ips.iter().any(|ip| addresses.contains(*ip)))
                            .map(|s| s.reference())
                            .collect();
                        if services.is_empty() {
                            continue;
                        }
                        findings.push(
                            Finding::new(
                                self.info(),
                                format!(
                                    "ipBlock {cidr} contains the ClusterIP of {}: policy sees the backend pods' addresses after DNAT, so this matches none of their traffic",
                                    short_list(services, 3)
                                ),
                            )
                            .with_help("select the Service's pods with podSelector/namespaceSelector on the target port")
                            .at(
                                rule.peer_sources.get(index).cloned().flatten(),
                                Some(policy_object(model, policy_id)),
                                crate::path::FieldPath::root()
                                    .key("spec")
                                    .key(direction.field())
                                    .index(rule.index)
                                    .key(direction.peers_field())
                                    .index(index)
                                    .key("ipBlock"),
                            ),
                        );
                    }
                }
            }
        }
    }
}
