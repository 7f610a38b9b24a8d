use crate::diagnostic::DiagnosticKind;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports keys that the object's type does not define, usually typos, with
    /// the closest known field and what the object means without the key.
    ///
    /// ## Why it matters
    /// A misspelt `ingress:` silently turns a policy into "deny all ingress";
    /// a misspelt `podSelector` inside a peer turns it into "every pod of the
    /// namespace". `kubectl` rejects unknown fields by default, but other
    /// clients and older servers drop them without a word.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   podSelector: {matchLabels: {app: db}}
    ///   ingres:                     # unknown: the policy denies all ingress
    ///   - from: [{podSelector: {matchLabels: {app: api}}}]
    /// ```
    ///
    /// ## Use instead
    /// `ingress:`.
    pub struct UnknownField {
        code: "NP002",
        name: "unknown-field",
        severity: Error,
        summary: "a field the object's type does not define (often a typo)",
    }
}

impl Rule for UnknownField {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        for diagnostic in context.diagnostics {
            if diagnostic.kind == DiagnosticKind::UnknownField {
                findings.push(Finding::from_diagnostic(self.info(), diagnostic));
            }
        }
    }
}
