use crate::diagnostic::{DiagnosticKind, Severity};
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};

declare_rule! {
    /// ## What it does
    /// Reports everything the Kubernetes API server would reject: YAML or JSON
    /// that does not parse, values of the wrong type, invalid names, labels,
    /// selectors, CIDRs, ports and protocols, `endPort` misuse, a peer with no
    /// field or with both `ipBlock` and a selector, and two objects of one kind
    /// with the same name.
    ///
    /// ## Why it matters
    /// `kubectl apply` fails on these objects, so what is deployed differs from
    /// what is in the repository. netpol leaves a rejected NetworkPolicy out of
    /// its model, because it cannot exist in a cluster.
    ///
    /// ## Example
    /// ```yaml
    /// ingress:
    /// - from:
    ///   - ipBlock: {cidr: 10.0.0.0/8}
    ///     podSelector: {}          # both ipBlock and a selector
    ///   ports:
    ///   - {port: 10, endPort: 1}   # endPort below port
    /// ```
    ///
    /// ## Use instead
    /// One peer per list entry, and `endPort` at least `port`.
    pub struct InvalidManifest {
        code: "NP001",
        name: "invalid-manifest",
        severity: Error,
        summary: "the API server would reject this object",
    }
}

impl Rule for InvalidManifest {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        for diagnostic in context.diagnostics {
            let rejected = matches!(
                diagnostic.kind,
                DiagnosticKind::Syntax
                    | DiagnosticKind::InvalidType
                    | DiagnosticKind::InvalidValue
                    | DiagnosticKind::Duplicate
            );
            if rejected && diagnostic.severity == Severity::Error {
                findings.push(Finding::from_diagnostic(self.info(), diagnostic));
            }
        }
    }
}
