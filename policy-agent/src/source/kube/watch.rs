//! The agent's Kubernetes source: list+watch of Pods, Namespaces,
//! NetworkPolicies and Nodes ([`ResourceKind::WATCHED`]).
//!
//! # What
//!
//! [`run`] keeps an in-memory copy of every Namespace, Pod and NetworkPolicy
//! in the cluster (all namespaces) and sends it to the agent as one
//! [`SourceEvent::Snapshot`] of [`Inputs::Objects`]: first once all three
//! kinds have been listed, then after each burst of changes.
//!
//! # Why this shape
//!
//! The agent recompiles the node's whole ruleset from a complete view of the
//! cluster, so the source sends complete snapshots, never deltas. A burst of
//! watch events (a Deployment rolling out, a namespace being relabelled) is
//! folded into one snapshot: after a change, the source waits until
//! [`KubeSourceOptions::debounce`] has passed without another change, but
//! never more than [`MAX_DELAY`] (or the debounce, if longer) after the first
//! change of the burst, so a constant trickle of events cannot hold
//! enforcement back.
//!
//! # API calls
//!
//! One `kube::runtime::watcher` per kind, with the default
//! `watcher::Config` (list, then watch; pages of 500; bookmarks on):
//!
//! - `GET /api/v1/namespaces?limit=500[&continue=…]`, then
//!   `GET /api/v1/namespaces?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=N`;
//! - the same for `/api/v1/pods`, `/apis/networking.k8s.io/v1/networkpolicies`
//!   and `/api/v1/nodes` (a node's own addresses are always allowed to and
//!   from its pods, so the ruleset depends on them).
//!
//! When a watch ends (server timeout, dropped connection), the watcher
//! re-watches from the last resourceVersion it saw (an object's or a
//! bookmark's). When the API server answers `410 Gone` (the resourceVersion
//! was compacted away), on a running watch or at its start, the watcher
//! lists again from scratch; other `ERROR` events resume the watch from the
//! same resourceVersion. Errors are
//! retried with the watcher's default backoff (exponential from 0.8 s to
//! 30 s, with jitter); each is logged and sent as [`SourceEvent::Error`].
//!
//! Each kind's events feed a `kube::runtime::reflector` store.
//! `metadata.managedFields` is dropped from every object before it is
//! stored: it is often half an object's size and no policy reads it. Nothing
//! else is filtered; Pods that have Succeeded or Failed are passed on, and
//! the loader decides what they mean.
//!
//! # Relists are atomic
//!
//! A (re)list arrives as `Init`, `InitApply`…, `InitDone`. The kube 5 store
//! writer buffers the `InitApply` objects and swaps them in as a whole at
//! `InitDone`, so until then the store keeps the previous state: a snapshot
//! taken during a relist (triggered by a change of another kind) shows the
//! old, complete list of the relisting kind, never a partial one. The stores
//! are only written while this task polls the watch streams, and snapshots
//! are taken by the same task, so a snapshot never interleaves with a write.
//!
//! # RBAC
//!
//! The agent's service account needs `get`, `list` and `watch` on `pods`,
//! `namespaces` and `nodes` (core group) and on `networkpolicies`
//! (`networking.k8s.io`), cluster-wide. (The source itself only lists and
//! watches; `get` is the conventional companion.) Until it has them, the
//! 403 answers are sent as errors and retried, and no snapshot is sent.

use std::fmt;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use policy_core::load::Object;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::error::ApiCallError;
use super::kinds::ResourceKind;
use crate::source::{Inputs, SourceEvent};

/// The longest a snapshot waits after the first change of a burst, unless the
/// debounce itself is longer.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// How the Kubernetes source behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSourceOptions {
    /// How long the cluster must stay quiet after a change before a snapshot
    /// is sent (200 ms by default). Under a constant stream of changes a
    /// snapshot is still sent [`MAX_DELAY`] after the first one.
    pub debounce: Duration,
}

impl Default for KubeSourceOptions {
    fn default() -> Self {
        KubeSourceOptions {
            debounce: Duration::from_millis(200),
        }
    }
}

/// A problem the Kubernetes source cannot recover from by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KubeSourceError {
    /// The watch streams ended. kube's watchers retry forever, so this
    /// does not happen unless the runtime is shutting down.
    WatchEnded,
}

impl fmt::Display for KubeSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeSourceError::WatchEnded => {
                f.write_str("the Kubernetes watch streams ended unexpectedly")
            }
        }
    }
}

impl std::error::Error for KubeSourceError {}

/// Lists and watches Namespaces, Pods and NetworkPolicies in all namespaces
/// and sends snapshots of them to `events` (see the module documentation).
///
/// Runs until the receiver is dropped (then returns `Ok`); errors only for
/// unrecoverable setup problems. Errors talking to the API server are
/// retried, logged and sent as [`SourceEvent::Error`].
pub async fn run(
    client: Client,
    options: KubeSourceOptions,
    events: Sender<SourceEvent>,
) -> Result<(), KubeSourceError> {
    let (namespaces, namespace_writer) = reflector::store::<Namespace>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (policies, policy_writer) = reflector::store::<NetworkPolicy>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let stores = Stores {
        namespaces,
        pods,
        policies,
        nodes,
    };

    let mut signals: SelectAll<BoxStream<'static, (ResourceKind, Signal)>> = SelectAll::new();
    signals.push(watch(
        ResourceKind::Namespace,
        Api::<Namespace>::all(client.clone()),
        namespace_writer,
    ));
    signals.push(watch(
        ResourceKind::Pod,
        Api::<Pod>::all(client.clone()),
        pod_writer,
    ));
    signals.push(watch(
        ResourceKind::NetworkPolicy,
        Api::<NetworkPolicy>::all(client.clone()),
        policy_writer,
    ));
    signals.push(watch(
        ResourceKind::Node,
        Api::<Node>::all(client),
        node_writer,
    ));

    let max_delay = MAX_DELAY.max(options.debounce);
    let mut listed = [false; ResourceKind::WATCHED.len()];
    let mut synced = false;
    let mut burst: Option<Burst> = None;

    loop {
        let deadline = burst.as_ref().map(|b| b.deadline);
        tokio::select! {
            biased;
            () = events.closed() => return Ok(()),
            () = sleep_until(deadline), if deadline.is_some() => {
                burst = None;
                if !send_snapshot(&events, &stores).await {
                    return Ok(());
                }
            }
            signal = signals.next() => {
                let Some((kind, signal)) = signal else {
                    return Err(KubeSourceError::WatchEnded);
                };
                let changed = match signal {
                    Signal::Relisting => {
                        if listed[watched_index(kind)] {
                            tracing::info!(kind = kind.kind(), "relisting");
                        }
                        false
                    }
                    Signal::Listed => {
                        listed[watched_index(kind)] = true;
                        tracing::debug!(kind = kind.kind(), "list complete");
                        true
                    }
                    Signal::Changed => true,
                    Signal::Failed(message) => {
                        tracing::warn!(kind = kind.kind(), error = %message, "watch error");
                        let message = format!("watching {}: {message}", kind.plural());
                        if events.send(SourceEvent::Error(message)).await.is_err() {
                            return Ok(());
                        }
                        false
                    }
                };
                if !synced {
                    if listed.iter().all(|&l| l) {
                        synced = true;
                        tracing::info!(
                            namespaces = stores.namespaces.state().len(),
                            pods = stores.pods.state().len(),
                            networkpolicies = stores.policies.state().len(),
                            nodes = stores.nodes.state().len(),
                            "initial sync complete"
                        );
                        if !send_snapshot(&events, &stores).await {
                            return Ok(());
                        }
                    }
                } else if changed {
                    let now = Instant::now();
                    let first = burst.as_ref().map_or(now, |b| b.first);
                    burst = Some(Burst {
                        first,
                        deadline: (now + options.debounce).min(first + max_delay),
                    });
                }
            }
        }
    }
}

/// Sends everything the stores hold; false if the receiver is gone.
async fn send_snapshot(events: &Sender<SourceEvent>, stores: &Stores) -> bool {
    let objects = stores.snapshot();
    tracing::debug!(objects = objects.len(), "sending snapshot");
    let snapshot = SourceEvent::Snapshot(Inputs::Objects(objects));
    events.send(snapshot).await.is_ok()
}

/// A burst of changes not yet sent.
struct Burst {
    /// When its first change was seen.
    first: Instant,
    /// When to send the snapshot.
    deadline: Instant,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => future::pending().await,
    }
}

/// The position of a watched kind in [`ResourceKind::WATCHED`].
fn watched_index(kind: ResourceKind) -> usize {
    ResourceKind::WATCHED
        .iter()
        .position(|k| *k == kind)
        .expect("only watched kinds are watched")
}

/// What one watch event means for the snapshot.
enum Signal {
    /// A (re)list started; the store keeps its contents until it completes.
    Relisting,
    /// A (re)list completed and replaced the store's contents.
    Listed,
    /// An object was added, modified or deleted.
    Changed,
    /// The watcher reported an error; it retries after a backoff.
    Failed(String),
}

/// The watcher of one kind, reflected into `writer`, as a stream of signals.
fn watch<K>(
    kind: ResourceKind,
    api: Api<K>,
    writer: Writer<K>,
) -> BoxStream<'static, (ResourceKind, Signal)>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .reflect(writer)
        .filter_map(move |event| {
            let signal = match event {
                Ok(watcher::Event::Init) => Some(Signal::Relisting),
                Ok(watcher::Event::InitApply(_)) => None,
                Ok(watcher::Event::InitDone) => Some(Signal::Listed),
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => Some(Signal::Changed),
                Err(error) => Some(Signal::Failed(describe_watch_error(kind, &error))),
            };
            future::ready(signal.map(|signal| (kind, signal)))
        })
        .boxed()
}

/// A watcher error in the words of [`ApiCallError`] where a call failed:
/// which call, why, and what to do.
fn describe_watch_error(kind: ResourceKind, error: &watcher::Error) -> String {
    let (verb, query, cause) = match error {
        watcher::Error::InitialListFailed(cause) => ("list", "?limit=500", cause),
        watcher::Error::WatchStartFailed(cause) => ("watch", "?watch=true", cause),
        other => return other.to_string(),
    };
    let call = ApiCallError::new(
        kind,
        verb,
        None,
        format!("GET {}{query}", kind.collection_path(None)),
        "the API server",
        cause,
    );
    format!("{call} ({})", call.help())
}

/// The read sides of the stores.
struct Stores {
    namespaces: Store<Namespace>,
    pods: Store<Pod>,
    policies: Store<NetworkPolicy>,
    nodes: Store<Node>,
}

impl Stores {
    /// Everything currently stored: namespaces, then pods, then policies,
    /// each sorted by namespace and name.
    fn snapshot(&self) -> Vec<Object> {
        let mut objects = Vec::new();
        objects.extend(sorted(&self.namespaces).map(Object::Namespace));
        objects.extend(sorted(&self.pods).map(Object::Pod));
        objects.extend(sorted(&self.policies).map(Object::NetworkPolicy));
        objects.extend(sorted(&self.nodes).map(Object::Node));
        objects
    }
}

fn sorted<K>(store: &Store<K>) -> impl Iterator<Item = K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut objects: Vec<Arc<K>> = store.state();
    objects.sort_by(|a, b| {
        let (a, b) = (a.meta(), b.meta());
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    objects.into_iter().map(Arc::unwrap_or_clone)
}
