use super::policy_object;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::path::FieldPath;
use crate::policy::Direction;

declare_rule! {
    /// ## What it does
    /// Tells the reader that a policy denies everything in a direction:
    /// `Ingress` (or `Egress`) is among its policy types and it has no rule for
    /// it, whether the list is `[]` or absent. This is information, not a
    /// problem: default-deny policies are good practice.
    ///
    /// ## Why it matters
    /// `ingress: []` and a missing `ingress:` look harmless but isolate every
    /// selected pod; only other policies can then allow traffic.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   podSelector: {}
    ///   policyTypes: [Ingress, Egress]   # denies all traffic in and out
    /// ```
    pub struct DenyAll {
        code: "NP012",
        name: "deny-all",
        severity: Info,
        summary: "the policy denies all ingress or egress of the pods it selects",
    }
}

impl Rule for DenyAll {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        for (id, policy) in model.cluster().policies.iter().enumerate() {
            let denied: Vec<Direction> = [Direction::Ingress, Direction::Egress]
                .into_iter()
                .filter(|&direction| policy.rules(direction).is_some_and(<[_]>::is_empty))
                .collect();
            if denied.is_empty() {
                continue;
            }
            let what = match denied.as_slice() {
                [Direction::Ingress] => "ingress to",
                [Direction::Egress] => "egress from",
                _ => "ingress to and egress from",
            };
            // Point at policyTypes when it is written, else at the empty list or the name.
            let spec = FieldPath::root().key("spec");
            let field = [spec.key("policyTypes"), spec.key(denied[0].field())]
                .into_iter()
                .find(|f| policy.field_sources.iter().any(|(known, _)| known == f))
                .unwrap_or(FieldPath::root());
            let pods = match model.selected_by(id).len() {
                1 => "the 1 pod".to_string(),
                n => format!("the {n} pods"),
            };
            findings.push(
                Finding::new(
                    self.info(),
                    format!("this policy denies all {what} {pods} it selects; only other policies can allow such traffic for them"),
                )
                .at(policy.locate(&field), Some(policy_object(model, id)), field),
            );
        }
    }
}
