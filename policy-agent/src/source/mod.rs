//! Where the agent's view of the cluster comes from.
//!
//! A source owns its I/O and sends [`SourceEvent`]s over a channel: the
//! complete current state as [`Inputs`] (after its initial sync), what
//! changed since (after each debounced burst of changes), or an error it
//! could not recover from by itself. The directory source sends a snapshot
//! after every burst; the Kubernetes source sends one snapshot and then
//! only [`ObjectChange`]s, so a pod event costs what it touches rather than
//! a reload of the cluster. The agent turns each into a ruleset; a source
//! never decides anything about policy.

pub mod dir;
pub mod kube;
pub mod packed;

use std::sync::Arc;

use policy_core::diagnostic::ObjectRef;
use policy_core::load::Object;

pub use packed::{PackError, PackedObject, PackedObjects};

/// A manifest file, as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path diagnostics name.
    pub path: String,
    /// The file's text. A file sent again unchanged shares its text with
    /// the previous snapshot (the planner reuses what it read from it).
    pub text: Arc<str>,
}

/// Everything a source currently holds, in the form the loader reads.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Manifest files (the directory source).
    Files(Vec<SourceFile>),
    /// Objects (the Kubernetes source), packed until the planner reads
    /// them ([`packed`]).
    Objects(PackedObjects),
}

/// One change to a source's objects since its last event.
#[derive(Clone, Debug)]
// Most changes carry an object; boxing them would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum ObjectChange {
    /// An object was created or modified: its new state.
    Applied(Object),
    /// An object was deleted (kind, namespace, name as
    /// [`Object::identity`] gives them).
    Deleted(ObjectRef),
    /// A kind was listed again (after its watch could not be resumed): the
    /// complete current list of that kind (`Namespace`, `Pod`, ...). Objects
    /// of the kind that are not in it were deleted meanwhile.
    Relisted {
        /// The kind, as in `kind:`.
        kind: String,
        /// Every object of the kind, packed until the planner reads them.
        objects: PackedObjects,
    },
}

/// What a source reports.
#[derive(Clone, Debug)]
pub enum SourceEvent {
    /// The complete current state.
    Snapshot(Inputs),
    /// Changes since the previous event, in the order they happened. Only
    /// after a [`SourceEvent::Snapshot`] of [`Inputs::Objects`].
    Changes(Vec<ObjectChange>),
    /// A problem reading the source. The agent logs and counts it, and keeps
    /// enforcing what it last applied.
    Error(String),
}
