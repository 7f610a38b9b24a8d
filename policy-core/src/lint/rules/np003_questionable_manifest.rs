use crate::diagnostic::{DiagnosticKind, Severity};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports input that the API server accepts today but that is ambiguous or
    /// on its way out: CIDRs with bits set beyond the prefix or leading zeros
    /// (rejected by servers with strict IP validation), API versions that are
    /// no longer served, and documents that are not Kubernetes objects.
    ///
    /// ## Why it matters
    /// `10.0.1.1/4` means `0.0.0.0/4`, which is rarely what the author meant,
    /// and newer clusters refuse it. A removed API version fails to apply.
    ///
    /// ## Example
    /// ```yaml
    /// - ipBlock: {cidr: 10.0.1.1/24}   # means 10.0.1.0/24
    /// ```
    ///
    /// ## Use instead
    /// `10.0.1.0/24`, and current API versions (`networking.k8s.io/v1`, `apps/v1`).
    pub struct QuestionableManifest {
        code: "NP003",
        name: "questionable-manifest",
        severity: Warning,
        summary: "accepted today, but ambiguous, legacy or not a Kubernetes object",
    }
}

impl Rule for QuestionableManifest {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        for diagnostic in context.diagnostics {
            let questionable = matches!(
                diagnostic.kind,
                DiagnosticKind::Questionable
                    | DiagnosticKind::UnsupportedVersion
                    | DiagnosticKind::NotAnObject
            );
            if questionable && diagnostic.severity != Severity::Error {
                findings.push(Finding::from_diagnostic(self.info(), diagnostic));
            }
        }
    }
}
