use super::admin_tiers::{admin_object, rule_field, rule_list, unreachable_rules};
use crate::admin::Action;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports an admin-tier rule (AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy, ClusterNetworkPolicy) that can never
    /// decide a connection: for every pod its policy selects, earlier rules
    /// of the same policy or of higher-priority policies of the tier
    /// already decide all of its peers and ports (first match wins), or,
    /// for a Baseline rule, NetworkPolicies isolate those pods, so the
    /// Baseline tier is never consulted. An Accept rule that only Deny
    /// rules shadow is NP023 instead.
    ///
    /// ## Why it matters
    /// A rule nothing reaches does nothing: it was usually meant to come
    /// first (a `Pass` for the monitoring namespace written after a
    /// `Deny` for every namespace), or its policy's priority is wrong.
    ///
    /// ## Example
    /// ```yaml
    /// ingress:
    /// - {name: deny-all, action: Deny, from: [{namespaces: {}}]}
    /// - {name: pass-monitoring, action: Pass, from: [{namespaces: {matchLabels: {team: monitoring}}}]}
    /// ```
    ///
    /// ## Use instead
    /// Put the narrower rule first, or give its policy a lower `priority`
    /// number.
    pub struct ShadowedAdminRule {
        code: "NP021",
        name: "shadowed-admin-rule",
        severity: Warning,
        summary: "earlier admin-tier rules decide all of this rule's traffic",
    }
}

impl Rule for ShadowedAdminRule {
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
            if rule.action == Action::Accept && why.by_deny && !why.by.is_empty() {
                continue; // NP023
            }
            let policy = &cluster.admin_policies[reference.policy];
            let mut reasons = Vec::new();
            if !why.by.is_empty() {
                reasons.push(format!(
                    "earlier rules decide all of its traffic first: {}",
                    rule_list(model, &why.by)
                ));
            }
            if why.behind_network_policy {
                reasons.push("NetworkPolicies isolate the pods it selects, so the Baseline tier is never consulted for them".to_string());
            }
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "{} can never decide a connection: {}",
                        reference.label(cluster),
                        reasons.join("; and ")
                    ),
                )
                .with_help("move the rule before the rules that take its traffic, or give its policy a lower priority number; remove it if it is not needed")
                .at(
                    rule.source.clone(),
                    Some(admin_object(policy)),
                    rule_field(reference.direction, reference.index),
                ),
            );
        }
    }
}
