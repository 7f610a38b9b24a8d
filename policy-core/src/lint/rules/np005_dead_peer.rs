use super::policy_object;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;
use crate::policy::{Direction, NamespaceScope, Peer};

declare_rule! {
    /// ## What it does
    /// Reports a `from` or `to` entry that matches nothing: a
    /// `namespaceSelector` that no namespace satisfies, or a pod selector that
    /// no pod of the selected namespaces satisfies (when the input has pods or
    /// workloads there).
    ///
    /// ## Why it matters
    /// The rule that holds the peer does not allow what its author meant,
    /// often because of a label typo, or because namespaces are selected by a
    /// label they do not carry (namespace names are not labels, except the
    /// automatic `kubernetes.io/metadata.name`).
    ///
    /// ## Example
    /// ```yaml
    /// from:
    /// - namespaceSelector: {matchLabels: {name: monitoring}}   # no such label
    /// ```
    ///
    /// ## Use instead
    /// `namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}`.
    pub struct DeadPeer {
        code: "NP005",
        name: "dead-peer",
        severity: Warning,
        summary: "a peer matches no pod and no namespace",
    }
}

impl Rule for DeadPeer {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        // Namespaces and their labels are known only if some Namespace
        // object was given; created namespaces carry just their name label.
        let namespace_labels_known = cluster.namespaces.iter().any(|n| n.declared);
        let mut index = model.selector_index();
        let namespaces_with_pods: std::collections::HashSet<&str> = cluster
            .endpoints
            .iter()
            .map(|endpoint| endpoint.namespace.as_str())
            .collect();
        for (id, policy) in cluster.policies.iter().enumerate() {
            for direction in [Direction::Ingress, Direction::Egress] {
                for rule in policy.rules(direction).unwrap_or_default() {
                    for (peer_index, peer) in rule.peers.iter().flatten().enumerate() {
                        let Peer::Pods { namespaces, pods } = peer else {
                            continue;
                        };
                        let field = FieldPath::root()
                            .key("spec")
                            .key(direction.field())
                            .index(rule.index)
                            .key(direction.peers_field())
                            .index(peer_index);
                        let source = rule.peer_sources.get(peer_index).cloned().flatten();
                        let message = match namespaces {
                            NamespaceScope::Selected(selector) => {
                                let matching = index.matching_namespaces(selector);
                                if matching.is_empty() {
                                    // Without Namespace objects the input is not the whole
                                    // cluster (a chart, say): the namespace may exist elsewhere.
                                    if !namespace_labels_known {
                                        continue;
                                    }
                                    Some(format!(
                                        "namespaceSelector {selector} matches no namespace"
                                    ))
                                } else {
                                    // Judge pods only where the input has pods: a selected
                                    // namespace without any may hold matching pods elsewhere.
                                    let has_pods = matching.iter().all(|namespace| {
                                        namespaces_with_pods.contains(&**namespace)
                                    });
                                    let mut matched = index.pods(pods).clone();
                                    matched.intersect_with(index.namespaces(namespaces));
                                    matched.intersect_with(index.selectable());
                                    (has_pods && matched.is_clear()).then(|| {
                                        format!(
                                            "no pod matches podSelector {pods} in the namespaces namespaceSelector {selector} selects ({})",
                                            super::short_list(matching.iter().map(|n| n.to_string()), 5)
                                        )
                                    })
                                }
                            }
                            NamespaceScope::Own(namespace) => {
                                let has_pods = namespaces_with_pods.contains(namespace.as_str());
                                let mut matched = index.pods(pods).clone();
                                matched.intersect_with(index.namespaces(namespaces));
                                matched.intersect_with(index.selectable());
                                (has_pods && matched.is_clear()).then(|| {
                                    format!(
                                        "no pod in namespace {namespace} matches podSelector {pods}"
                                    )
                                })
                            }
                        };
                        if let Some(message) = message {
                            findings.push(
                                Finding::new(self.info(), format!("this peer matches nothing: {message}"))
                                    .with_help("check the labels; namespaces are selected by their labels, not their names (except kubernetes.io/metadata.name)")
                                    .at(source, Some(policy_object(model, id)), field),
                            );
                        }
                    }
                }
            }
        }
    }
}
