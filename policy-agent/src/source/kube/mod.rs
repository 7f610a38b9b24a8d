//! The Kubernetes API, read two ways from one place:
//!
//! - [`run`] (`watch.rs`): the agent's source, list+watch into reflector
//!   stores, sending complete snapshots as the cluster changes;
//! - [`list_cluster`] (`list.rs`): a one-shot, paginated read of every kind
//!   netpol knows, for the analysis commands' `--cluster`.
//!
//! Both read the admin tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//! ClusterNetworkPolicy) where their CRDs are installed (`custom.rs`), as
//! JSON text for the loader.
//!
//! Both use the same kinds table ([`ResourceKind`]), the same client setup
//! ([`connect`], as kubectl finds its configuration) and the same
//! explanation of failed calls ([`ApiCallError`]).

mod connect;
mod custom;
mod error;
mod kinds;
mod list;
mod watch;

pub use connect::{ClusterTarget, ConnectError, Connection, DEFAULT_CONNECT_TIMEOUT, connect};
pub use error::{ApiCallError, FailureCause, causes};
pub use kinds::ResourceKind;
pub use list::{ClusterSnapshot, ListError, ListScope, MAX_LIST_ATTEMPTS, PAGE_SIZE, list_cluster};
pub use watch::{DISCOVERY_INTERVAL, KubeSourceError, KubeSourceOptions, MAX_DELAY, run, trim_pod};
