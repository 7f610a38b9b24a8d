//! Where the agent's view of the cluster comes from.
//!
//! A source owns its I/O and sends [`SourceEvent`]s over a channel: the
//! complete current state as [`Inputs`] (after its initial sync, and then
//! after each debounced burst of changes), or an error it could not recover
//! from by itself. The agent turns each snapshot into a ruleset; a source
//! never decides anything about policy.

pub mod dir;
pub mod kube;

use policy_core::load::Object;

/// A manifest file, as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path diagnostics name.
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// Everything a source currently holds, in the form the loader reads.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Manifest files (the directory source).
    Files(Vec<SourceFile>),
    /// Typed objects (the Kubernetes source).
    Objects(Vec<Object>),
}

/// What a source reports.
#[derive(Clone, Debug)]
pub enum SourceEvent {
    /// The complete current state.
    Snapshot(Inputs),
    /// A problem reading the source. The agent logs and counts it, and keeps
    /// enforcing what it last applied.
    Error(String),
}
