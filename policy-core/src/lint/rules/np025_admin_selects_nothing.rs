use super::admin_tiers::admin_object;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;

declare_rule! {
    /// ## What it does
    /// Reports an AdminNetworkPolicy, BaselineAdminNetworkPolicy or
    /// ClusterNetworkPolicy whose `subject` selects no pod of the input
    /// (host-networked pods are never subjects). It runs only when the
    /// input has pods or workloads.
    ///
    /// ## Why it matters
    /// A cluster-wide guardrail that selects nothing protects nothing,
    /// usually because of a namespace label typo or a label the namespaces
    /// do not carry.
    ///
    /// ## Example
    /// ```yaml
    /// subject: {namespaces: {matchLabels: {enviroment: production}}}
    /// ```
    ///
    /// ## Use instead
    /// `subject: {namespaces: {matchLabels: {environment: production}}}`.
    pub struct AdminSelectsNothing {
        code: "NP025",
        name: "admin-selects-nothing",
        severity: Warning,
        summary: "the admin policy selects no pod",
    }
}

impl Rule for AdminSelectsNothing {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        if cluster.endpoints.iter().all(|e| e.host_network) {
            return;
        }
        for (policy_id, policy) in cluster.admin_policies.iter().enumerate() {
            if !model.admin_subjects()[policy_id].is_clear() {
                continue;
            }
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "{} selects no pod: its subject matches none of the input's pods",
                        policy.reference()
                    ),
                )
                .with_help("compare the subject's selectors with the namespace and pod labels")
                .at(
                    policy.source.clone(),
                    Some(admin_object(policy)),
                    FieldPath::root().key("spec").key("subject"),
                ),
            );
        }
    }
}
