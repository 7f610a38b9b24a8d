use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports a named port in a rule that no destination of the rule defines,
    /// or defines only under another protocol, and a named port in an egress
    /// rule that reaches only IP blocks. A named port resolves against the
    /// destination pod's container ports, with the rule's protocol (TCP unless
    /// written).
    ///
    /// ## Why it matters
    /// The port entry matches nothing, so the traffic it was meant to allow is
    /// denied. A DNS port named `dns` that the pods declare as UDP needs
    /// `protocol: UDP` in the rule.
    ///
    /// ## Example
    /// ```yaml
    /// ports:
    /// - port: dns          # the pods define `dns` for UDP; this means TCP
    /// ```
    ///
    /// ## Use instead
    /// `- {port: dns, protocol: UDP}`.
    pub struct UnresolvedNamedPort {
        code: "NP006",
        name: "unresolved-named-port",
        severity: Warning,
        summary: "a named port that no destination defines with that protocol",
    }
}

impl Rule for UnresolvedNamedPort {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        for unresolved in context.model.unresolved_named_ports() {
            let diagnostic = unresolved.diagnostic(context.model);
            findings.push(Finding::from_diagnostic(self.info(), &diagnostic));
        }
    }
}
