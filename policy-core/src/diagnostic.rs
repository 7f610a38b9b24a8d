//! Diagnostics: what went wrong while loading, and where.

use std::fmt;
use std::sync::Arc;

use crate::path::FieldPath;
use crate::yaml::Location;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational: nothing is wrong, but the reader should know.
    Info,
    /// Suspicious input that the model still interprets in a defined way.
    Warning,
    /// Input the API server would reject, or that cannot be read.
    Error,
}

impl Severity {
    /// Lower-case name: `error`, `warning`, `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of problem a diagnostic reports. Stable: tools may match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiagnosticKind {
    /// The text is not valid YAML or JSON.
    Syntax,
    /// The document is not a Kubernetes object (no `apiVersion` or `kind`).
    NotAnObject,
    /// A value has the wrong type for its field.
    InvalidType,
    /// A key the object's type does not define (often a typo).
    UnknownField,
    /// A value the API server would reject (validation).
    InvalidValue,
    /// Two objects of the same kind share a namespace and name.
    Duplicate,
    /// An `apiVersion` that no current API server serves for this kind.
    UnsupportedVersion,
    /// A value the API server accepts but that is ambiguous or legacy.
    Questionable,
    /// A document that was read but deliberately left out of the model.
    Skipped,
}

impl DiagnosticKind {
    /// Stable kebab-case identifier, used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticKind::Syntax => "syntax",
            DiagnosticKind::NotAnObject => "not-an-object",
            DiagnosticKind::InvalidType => "invalid-type",
            DiagnosticKind::UnknownField => "unknown-field",
            DiagnosticKind::InvalidValue => "invalid-value",
            DiagnosticKind::Duplicate => "duplicate",
            DiagnosticKind::UnsupportedVersion => "unsupported-version",
            DiagnosticKind::Questionable => "questionable",
            DiagnosticKind::Skipped => "skipped",
        }
    }
}

/// A reference to one Kubernetes object, for messages: `NetworkPolicy shop/allow-web`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: String,
    /// The namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Where a value was read from: a file (or `-` for standard input) and a position.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SourceLocation {
    /// The source name as given to the loader (a path, or `-`).
    pub file: Arc<str>,
    /// Line and column in that source.
    pub location: Location,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(
                f,
                "{}:{}:{}",
                self.file, self.location.line, self.location.column
            )
        }
    }
}

/// One problem found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// What kind of problem it is.
    pub kind: DiagnosticKind,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it, when there is something to say.
    pub help: Option<String>,
    /// Where it is; `None` for objects given programmatically.
    pub source: Option<SourceLocation>,
    /// The object it concerns, when known.
    pub object: Option<ObjectRef>,
    /// The field it concerns inside that object; empty for the whole object.
    pub field: FieldPath,
}

impl Diagnostic {
    /// A diagnostic with no source, object or field yet.
    pub fn new(severity: Severity, kind: DiagnosticKind, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            kind,
            message: message.into(),
            help: None,
            source: None,
            object: None,
            field: FieldPath::root(),
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the field path.
    pub fn with_field(mut self, field: FieldPath) -> Self {
        self.field = field;
        self
    }

    /// Sets the object.
    pub fn with_object(mut self, object: Option<ObjectRef>) -> Self {
        self.object = object;
        self
    }

    /// Sets the source location.
    pub fn with_source(mut self, source: Option<SourceLocation>) -> Self {
        self.source = source;
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: message [object, field]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(source) = &self.source {
            write!(f, "{source}: ")?;
        }
        write!(f, "{}: {}", self.severity, self.message)?;
        match (&self.object, self.field.is_empty()) {
            (Some(object), false) => write!(f, " ({object}, field {})", self.field)?,
            (Some(object), true) => write!(f, " ({object})")?,
            (None, false) => write!(f, " (field {})", self.field)?,
            (None, true) => {}
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}
