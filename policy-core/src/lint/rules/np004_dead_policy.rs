use super::policy_object;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports a NetworkPolicy whose `podSelector` selects no pod of its
    /// namespace. It runs only when the input has pods or workloads in that
    /// namespace, so a directory of policies alone is not reported.
    ///
    /// ## Why it matters
    /// A policy that selects nothing has no effect: the pods it was written
    /// for are not isolated, usually because of a label typo or a label that
    /// changed in the workload.
    ///
    /// ## Example
    /// ```yaml
    /// # the Deployment's pods are labelled app: checkout
    /// spec:
    ///   podSelector: {matchLabels: {app: chekout}}
    /// ```
    ///
    /// ## Use instead
    /// `podSelector: {matchLabels: {app: checkout}}`.
    pub struct DeadPolicy {
        code: "NP004",
        name: "dead-policy",
        severity: Warning,
        summary: "the policy selects no pod",
    }
}

impl Rule for DeadPolicy {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        let namespaces_with_pods: std::collections::HashSet<&str> = cluster
            .endpoints
            .iter()
            .map(|endpoint| endpoint.namespace.as_str())
            .collect();
        let selected = model.classes_selected_by_each_policy();
        for (id, policy) in cluster.policies.iter().enumerate() {
            let namespace_has_pods = namespaces_with_pods.contains(policy.namespace.as_str());
            if !namespace_has_pods || !selected[id].is_empty() {
                continue;
            }
            let field = FieldPath::root().key("spec").key("podSelector");
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "the policy selects no pod: no pod in namespace {} matches {}",
                        policy.namespace, policy.pod_selector
                    ),
                )
                .with_help("compare the selector with the pod template labels; a policy that selects nothing has no effect")
                .at(policy.locate(&field), Some(policy_object(model, id)), field),
            );
        }
    }
}
