use super::admin_tiers::{admin_object, rule_field, rule_list, unreachable_rules};
use crate::admin::Action;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports an admin-tier Accept (v1alpha1 `Allow`) rule whose every
    /// connection an earlier Deny rule refuses: a Deny of the same policy
    /// written before it, or of a higher-priority policy of the tier.
    ///
    /// ## Why it matters
    /// The Accept was written to let something through, and it never does:
    /// the traffic it names is denied, whatever NetworkPolicies say. This
    /// is the admin tiers' most common ordering mistake.
    ///
    /// ## Example
    /// ```yaml
    /// # priority 10
    /// ingress: [{action: Deny, from: [{namespaces: {}}]}]
    /// ---
    /// # priority 20, same subject
    /// ingress: [{action: Allow, from: [{namespaces: {matchLabels: {team: monitoring}}}]}]
    /// ```
    ///
    /// ## Use instead
    /// Give the Accept's policy a lower `priority` number than the Deny's,
    /// or write the Accept first in the same policy.
    pub struct DeadAdminAccept {
        code: "NP023",
        name: "dead-admin-accept",
        severity: Warning,
        summary: "an earlier Deny refuses everything this Accept rule names",
    }
}

impl Rule for DeadAdminAccept {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        for (reference, why) in unreachable_rules(model) {
            let Some(rule) = reference.rule(cluster) else {
                continue;
            };
            if rule.action != Action::Accept || !why.by_deny || why.by.is_empty() {
                continue;
            }
            let policy = &cluster.admin_policies[reference.policy];
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "{} never accepts anything: earlier Deny rules refuse all of its traffic: {}",
                        reference.label(cluster),
                        rule_list(model, &why.by)
                    ),
                )
                .with_help("give the Accept's policy a lower priority number than the Deny's, or write the Accept before the Deny")
                .at(
                    rule.source.clone(),
                    Some(admin_object(policy)),
                    rule_field(reference.direction, reference.index),
                ),
            );
        }
    }
}
