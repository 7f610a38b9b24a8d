use super::admin_tiers::admin_object;
use crate::admin::AdminPeer;
use crate::bitset::BitSet;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;
use crate::policy::NamespaceScope;

declare_rule! {
    /// ## What it does
    /// Reports a peer of an admin-tier rule that matches nothing in the
    /// input: a `namespaces` or `pods` peer that selects no pod (run only
    /// when the input has pods), or a `nodes` peer that selects no Node
    /// (run only when the input has Nodes).
    ///
    /// ## Why it matters
    /// A peer that matches nothing makes its part of the rule a no-op: a
    /// Deny that protects nothing, an Accept that lets nothing through.
    /// The cause is usually a label typo.
    ///
    /// ## Example
    /// ```yaml
    /// ingress: [{action: Allow, from: [{namespaces: {matchLabels: {team: monitorng}}}]}]
    /// ```
    ///
    /// ## Use instead
    /// `from: [{namespaces: {matchLabels: {team: monitoring}}}]`.
    pub struct DeadAdminPeer {
        code: "NP026",
        name: "dead-admin-peer",
        severity: Warning,
        summary: "an admin rule's peer matches nothing",
    }
}

impl Rule for DeadAdminPeer {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        let has_pods = cluster.endpoints.iter().any(|e| !e.host_network);
        let has_nodes = !cluster.nodes.is_empty();
        let mut selectors = model.selector_index();
        let pod_network = model.pod_network_classes();
        let mut pod_classes =
            |namespaces: &crate::selector::Selector, pods: Option<&crate::selector::Selector>| {
                let mut classes: BitSet = selectors
                    .namespaces(&NamespaceScope::Selected(namespaces.clone()))
                    .clone();
                if let Some(pods) = pods {
                    classes.intersect_with(selectors.pods(pods));
                }
                classes.intersect_with(pod_network);
                classes.is_clear()
            };
        for policy in &cluster.admin_policies {
            for rule in policy.ingress.iter().chain(&policy.egress) {
                for (position, peer) in rule.peers.iter().enumerate() {
                    let dead = match peer {
                        AdminPeer::Namespaces(namespaces) => {
                            has_pods && pod_classes(namespaces, None)
                        }
                        AdminPeer::Pods { namespaces, pods } => {
                            has_pods && pod_classes(namespaces, Some(pods))
                        }
                        AdminPeer::Nodes(selector) => {
                            has_nodes && !cluster.nodes.iter().any(|n| selector.matches(&n.labels))
                        }
                        _ => false,
                    };
                    if !dead {
                        continue;
                    }
                    let what = match peer {
                        AdminPeer::Nodes(_) => "no Node of the input",
                        _ => "no pod of the input",
                    };
                    let list = match rule.direction {
                        crate::policy::Direction::Ingress => "ingress",
                        crate::policy::Direction::Egress => "egress",
                    };
                    let field = FieldPath::root()
                        .key("spec")
                        .key(list)
                        .index(rule.index)
                        .key(rule.direction.peers_field())
                        .index(position);
                    findings.push(
                        Finding::new(
                            self.info(),
                            format!(
                                "peer {position} of {} matches {what}",
                                crate::model::AdminRuleRef {
                                    policy: cluster
                                        .admin_policies
                                        .iter()
                                        .position(|p| std::ptr::eq(p, policy))
                                        .unwrap_or_default(),
                                    direction: rule.direction,
                                    index: rule.index,
                                }
                                .label(cluster)
                            ),
                        )
                        .with_help("compare the selectors with the labels of the namespaces, pods or nodes it should match")
                        .at(rule.source.clone(), Some(admin_object(policy)), field),
                    );
                }
            }
        }
    }
}
