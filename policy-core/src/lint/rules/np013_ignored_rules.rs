use super::policy_object;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;
use crate::policy::Direction;

declare_rule! {
    /// ## What it does
    /// Reports ingress or egress rules in a policy whose explicit `policyTypes`
    /// leaves that direction out. Such rules have no effect.
    ///
    /// ## Why it matters
    /// Explicit `policyTypes` wins over the rules that are present: a policy
    /// with `policyTypes: [Ingress]` and an `egress` section does not restrict
    /// egress at all, which is rarely what its author meant.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   policyTypes: [Ingress]
    ///   egress:                       # ignored
    ///   - to: [{podSelector: {matchLabels: {app: db}}}]
    /// ```
    ///
    /// ## Use instead
    /// `policyTypes: [Ingress, Egress]`, or remove the rules.
    pub struct IgnoredRules {
        code: "NP013",
        name: "ignored-rules",
        severity: Warning,
        summary: "rules in a direction that policyTypes leaves out",
    }
}

impl Rule for IgnoredRules {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        for (id, policy) in model.cluster().policies.iter().enumerate() {
            for (index, direction) in [Direction::Ingress, Direction::Egress]
                .into_iter()
                .enumerate()
            {
                let count = policy.ignored_rules[index];
                if count == 0 {
                    continue;
                }
                let field = FieldPath::root().key("spec").key(direction.field());
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "{count} {} rule{} ignored: policyTypes does not include {direction}",
                            direction.field(),
                            if count == 1 { " is" } else { "s are" }
                        ),
                    )
                    .with_help(format!(
                        "add {direction} to policyTypes, or remove the rules"
                    ))
                    .at(
                        policy.locate(&field),
                        Some(policy_object(model, id)),
                        field,
                    ),
                );
            }
        }
    }
}
