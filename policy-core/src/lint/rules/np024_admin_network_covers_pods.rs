use super::admin_tiers::{admin_object, rule_field};
use crate::admin::AdminPeer;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::AdminRuleRef;
use crate::policy::Direction;

declare_rule! {
    /// ## What it does
    /// Reports an admin-tier egress rule whose `networks` hold pod
    /// addresses (of pods in the input, or a node's `podCIDRs`), unless an
    /// earlier rule of the same policy already decides every port toward
    /// all of those pods (the API's advice: a `Pass` or `Accept` for pods
    /// before a rule on `0.0.0.0/0`).
    ///
    /// ## Why it matters
    /// Unlike a NetworkPolicy `ipBlock`, whose effect on pod addresses is
    /// left to the CNI, an admin `networks` peer matches every address in
    /// it, pods included: "deny egress to 10.0.0.0/8" written to fence off
    /// a corporate network also denies pod-to-pod traffic on a cluster
    /// whose pod network is inside it.
    ///
    /// ## Example
    /// ```yaml
    /// egress: [{action: Deny, to: [{networks: [10.0.0.0/8]}]}]   # pods are 10.244.0.0/16
    /// ```
    ///
    /// ## Use instead
    /// Put a `Pass` (or `Accept`) rule for pods first:
    /// `{action: Pass, to: [{namespaces: {}}]}`, or narrow the networks.
    pub struct AdminNetworkCoversPods {
        code: "NP024",
        name: "admin-network-covers-pods",
        severity: Warning,
        summary: "an admin networks peer also matches pod addresses",
    }
}

impl Rule for AdminNetworkCoversPods {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        for (policy_id, policy) in cluster.admin_policies.iter().enumerate() {
            let compiled = model.admin_policy_rules(policy_id, Direction::Egress);
            for (position, rule) in policy.egress.iter().enumerate() {
                let cidrs: Vec<_> = (rule.peers.iter())
                    .filter_map(|peer| match peer {
                        AdminPeer::Networks(cidrs) => Some(cidrs),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                if cidrs.is_empty() {
                    continue;
                }
                let inside = |ip: &std::net::IpAddr| cidrs.iter().any(|c| c.contains(*ip));
                let pods: Vec<usize> = (cluster.endpoints.iter().enumerate())
                    .filter(|(_, e)| !e.host_network && e.ips.iter().any(inside))
                    .map(|(id, _)| id)
                    .collect();
                let pod_cidrs: Vec<String> = (cluster.nodes.iter())
                    .flat_map(|node| node.pod_cidrs.iter())
                    .filter(|pod_cidr| {
                        cidrs.iter().any(|c| {
                            c.family() == pod_cidr.family()
                                && (c.contains(pod_cidr.address())
                                    || pod_cidr.contains(c.address()))
                        })
                    })
                    .map(ToString::to_string)
                    .collect();
                if pods.is_empty() && pod_cidrs.is_empty() {
                    continue;
                }
                // An earlier rule of the policy for every port toward all of
                // these pods: the networks never see them.
                let handled = !pods.is_empty()
                    && pod_cidrs.is_empty()
                    && compiled[..position].iter().any(|earlier| {
                        earlier.ports.all
                            && (earlier.peers.everyone
                                || pods.iter().all(|&pod| {
                                    earlier.peers.classes.contains(model.class_of(pod))
                                }))
                    });
                if handled {
                    continue;
                }
                let reference = AdminRuleRef {
                    policy: policy_id,
                    direction: Direction::Egress,
                    index: rule.index,
                };
                let mut what = Vec::new();
                if let Some(&first) = pods.first() {
                    what.push(format!(
                        "the addresses of {} pod{} (e.g. {})",
                        pods.len(),
                        if pods.len() == 1 { "" } else { "s" },
                        cluster.endpoint_name(first)
                    ));
                }
                if !pod_cidrs.is_empty() {
                    what.push(format!("the node pod CIDRs {}", pod_cidrs.join(", ")));
                }
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "the networks of {} cover {}: an admin `networks` peer matches pod-to-pod traffic too",
                            reference.label(cluster),
                            what.join(" and ")
                        ),
                    )
                    .with_help("put a Pass or Accept rule for pods (`to: [{namespaces: {}}]`) before it, or narrow the networks")
                    .at(
                        rule.source.clone(),
                        Some(admin_object(policy)),
                        rule_field(Direction::Egress, rule.index),
                    ),
                );
            }
        }
    }
}
