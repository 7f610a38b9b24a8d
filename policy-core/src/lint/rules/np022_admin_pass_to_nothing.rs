use super::admin_tiers::{admin_object, rule_field};
use crate::admin::{Action, Tier};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::policy::Direction;

declare_rule! {
    /// ## What it does
    /// Reports an Admin-tier `Pass` rule when no pod its policy selects has
    /// anything behind it in that direction: no NetworkPolicy isolates the
    /// pod and no Baseline-tier rule applies to it.
    ///
    /// ## Why it matters
    /// `Pass` hands a connection to the namespace owners' NetworkPolicies
    /// and then to the Baseline tier. With neither there, the default
    /// decides, and the default allows: the rule acts as an Allow. That is
    /// seldom what was meant by delegating.
    ///
    /// ## Example
    /// ```yaml
    /// # no NetworkPolicy in `shop`, no BaselineAdminNetworkPolicy
    /// subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
    /// ingress: [{action: Pass, from: [{namespaces: {}}]}]
    /// ```
    ///
    /// ## Use instead
    /// Write the NetworkPolicies (or the Baseline rule) the Pass delegates
    /// to, or say `Allow`/`Accept` if allowing is the intent.
    pub struct AdminPassToNothing {
        code: "NP022",
        name: "admin-pass-to-nothing",
        severity: Warning,
        summary: "a Pass rule hands over to no NetworkPolicy and no Baseline rule",
    }
}

impl Rule for AdminPassToNothing {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        for (policy_id, policy) in cluster.admin_policies.iter().enumerate() {
            if policy.tier != Tier::Admin {
                continue;
            }
            let subjects = &model.admin_subjects()[policy_id];
            if subjects.is_clear() {
                continue;
            }
            for direction in [Direction::Ingress, Direction::Egress] {
                let behind_nothing = subjects.ones().all(|class| {
                    model.grants(direction, class).is_none()
                        && model
                            .tier_rules(Tier::Baseline, direction, class)
                            .is_empty()
                });
                if !behind_nothing {
                    continue;
                }
                for rule in policy.rules(direction) {
                    if rule.action != Action::Pass {
                        continue;
                    }
                    let reference = crate::model::AdminRuleRef {
                        policy: policy_id,
                        direction,
                        index: rule.index,
                    };
                    findings.push(
                        Finding::new(
                            self.info(),
                            format!(
                                "{} passes to nothing: no NetworkPolicy isolates the pods it selects for {} and no Baseline rule applies to them, so the default allows what it passes",
                                reference.label(cluster),
                                direction.as_str().to_lowercase()
                            ),
                        )
                        .with_help("write the NetworkPolicies or the Baseline rule the Pass delegates to, or use Allow/Accept if allowing is meant")
                        .at(
                            rule.source.clone(),
                            Some(admin_object(policy)),
                            rule_field(direction, rule.index),
                        ),
                    );
                }
            }
        }
    }
}
