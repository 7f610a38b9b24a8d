//! Lint rules: what is wrong, suspicious or worth knowing about a set of
//! manifests.
//!
//! Each rule lives in its own file under `rules/`, declared with
//! [`declare_rule!`]: a stable code (`NP004`), a kebab-case name, a default
//! severity, a one-line summary, and a doc comment with the sections *What it
//! does*, *Why it matters* and *Example*. The doc comment is also what
//! `netpol rules NP004` prints. [`RULES`] is the registry.
//!
//! Rules decide on the model, not on text: "redundant" means "removing it
//! changes no allowed connection", not "looks like another rule".
//!
//! To add a rule: write `rules/npNNN_name.rs`, add it to [`RULES`], and add
//! fixtures under `testdata/lint/NPNNN/` (`fires.yaml` with `# expect: NPNNN`
//! on each line that must be reported, and `clean.yaml`).

mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::diagnostic::{Diagnostic, ObjectRef, Severity, SourceLocation};
use crate::model::Model;
use crate::path::FieldPath;

pub use rules::RULES;

/// What the registry knows about a rule.
#[derive(Debug)]
pub struct RuleInfo {
    /// Stable code, e.g. `NP004`.
    pub code: &'static str,
    /// Kebab-case name, e.g. `dead-policy`.
    pub name: &'static str,
    /// Severity unless configured otherwise.
    pub severity: Severity,
    /// One line: what the rule reports.
    pub summary: &'static str,
    /// The rule's documentation (its doc comment), in Markdown.
    pub doc: &'static str,
}

impl RuleInfo {
    /// The documentation without rustdoc's leading spaces.
    pub fn documentation(&self) -> String {
        self.doc
            .lines()
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    }
}

/// A lint rule.
pub trait Rule: Sync {
    /// Code, name, severity and documentation.
    fn info(&self) -> &'static RuleInfo;
    /// Adds the rule's findings to `findings`.
    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>);
}

/// Declares a rule type whose doc comment is also its `netpol rules` text.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            code: $code:literal,
            name: $kebab:literal,
            severity: $severity:ident,
            summary: $summary:literal $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl $name {
            /// Code, name, severity and documentation of this rule.
            pub const INFO: $crate::lint::RuleInfo = $crate::lint::RuleInfo {
                code: $code,
                name: $kebab,
                severity: $crate::diagnostic::Severity::$severity,
                summary: $summary,
                doc: concat!($($doc, "\n"),*),
            };
        }
    };
}
pub(crate) use declare_rule;

/// One finding of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule's code.
    pub code: &'static str,
    /// The severity (the rule's, or as configured).
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// Where.
    pub source: Option<SourceLocation>,
    /// The object concerned.
    pub object: Option<ObjectRef>,
    /// The field concerned.
    pub field: FieldPath,
}

impl Finding {
    /// A finding of `rule` with its default severity.
    pub fn new(rule: &RuleInfo, message: impl Into<String>) -> Self {
        Finding {
            code: rule.code,
            severity: rule.severity,
            message: message.into(),
            help: None,
            source: None,
            object: None,
            field: FieldPath::root(),
        }
    }

    /// A finding carrying a loader diagnostic.
    pub fn from_diagnostic(rule: &RuleInfo, diagnostic: &Diagnostic) -> Self {
        Finding {
            code: rule.code,
            severity: rule.severity,
            message: diagnostic.message.clone(),
            help: diagnostic.help.clone(),
            source: diagnostic.source.clone(),
            object: diagnostic.object.clone(),
            field: diagnostic.field.clone(),
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets where the finding points.
    pub fn at(
        mut self,
        source: Option<SourceLocation>,
        object: Option<ObjectRef>,
        field: FieldPath,
    ) -> Self {
        self.source = source;
        self.object = object;
        self.field = field;
        self
    }

    /// The rule that produced this finding.
    pub fn rule(&self) -> &'static RuleInfo {
        rule_info(self.code).expect("findings come from registered rules")
    }
}

impl fmt::Display for Finding {
    /// `file:line:col: severity[CODE]: message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(source) = &self.source {
            write!(f, "{source}: ")?;
        }
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)
    }
}

/// What the rules look at.
pub struct LintContext<'a> {
    /// The loader's diagnostics.
    pub diagnostics: &'a [Diagnostic],
    /// The model.
    pub model: &'a Model,
}

/// Which rules run and how severe their findings are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LintOptions {
    /// Codes of rules not to run.
    pub allow: BTreeSet<String>,
    /// Severity overrides by code.
    pub severity: BTreeMap<String, Severity>,
}

/// The rule with this code (case-insensitive).
pub fn rule_info(code: &str) -> Option<&'static RuleInfo> {
    RULES
        .iter()
        .map(|rule| rule.info())
        .find(|info| info.code.eq_ignore_ascii_case(code) || info.name == code)
}

/// Runs every enabled rule and returns the findings in source order.
///
/// `allowances` are per-object opt-outs (from the `netpol.dev/allow`
/// annotation); a finding about an object that allows its code, or `all`, is
/// dropped.
pub fn lint(
    diagnostics: &[Diagnostic],
    allowances: &BTreeMap<ObjectRef, Vec<String>>,
    model: &Model,
    options: &LintOptions,
) -> Vec<Finding> {
    let context = LintContext { diagnostics, model };
    let mut findings = Vec::new();
    for rule in RULES {
        let info = rule.info();
        if options.allow.contains(info.code) {
            continue;
        }
        let start = findings.len();
        rule.check(&context, &mut findings);
        if let Some(severity) = options.severity.get(info.code) {
            for finding in &mut findings[start..] {
                finding.severity = *severity;
            }
        }
    }
    findings.retain(|finding| {
        let Some(object) = &finding.object else {
            return true;
        };
        !allowances.get(object).is_some_and(|codes| {
            codes
                .iter()
                .any(|code| code == finding.code || code == "ALL")
        })
    });
    findings.sort_by(|a, b| {
        let key = |f: &Finding| (f.source.clone(), f.code, f.message.clone());
        key(a).cmp(&key(b))
    });
    findings.dedup();
    findings
}
