//! The agent's Kubernetes source: list+watch of Pods, Namespaces,
//! NetworkPolicies and Nodes, and of the admin tiers where their CRDs are
//! installed ([`ResourceKind::WATCHED`]).
//!
//! # What
//!
//! [`run`] lists every Namespace, Pod, NetworkPolicy and Node in the
//! cluster (all namespaces), and every AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy and ClusterNetworkPolicy the API server
//! serves, and sends them to the agent as one
//! [`SourceEvent::Snapshot`] of [`Inputs::Objects`] once every kind has
//! been listed (or found not served). From then on it sends only what changed, as
//! [`SourceEvent::Changes`]: each object added or modified, each deleted,
//! and the complete list of a kind that had to be listed again.
//!
//! # Why this shape
//!
//! The agent follows changes in place ([`crate::plan::Planner::plan_changes`]),
//! so a pod event in a 100,000-pod cluster costs one object, not a reload
//! of the cluster; and the source keeps no copy of the cluster (the
//! agent's model is the only one), which is most of the agent's memory at
//! that size.
//!
//! A change after a quiet spell (no change for
//! [`KubeSourceOptions::debounce`]) is sent at once, so a single pod event
//! reaches the kernel without waiting. Changes that follow it closely (a
//! Deployment rolling out, a namespace being relabelled) are gathered into
//! one batch, sent once the cluster has been quiet for the debounce, but
//! never more than [`MAX_DELAY`] (or the debounce, if longer) after the
//! first change of the batch: under a constant stream of events the agent
//! plans about once a second, and its CPU use stays bounded.
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
//!   from its pods, so the ruleset depends on them);
//! - for the admin tiers, first discovery:
//!   `GET /apis/policy.networking.k8s.io/v1alpha1` (AdminNetworkPolicy,
//!   BaselineAdminNetworkPolicy; one request answers both) and
//!   `GET /apis/policy.networking.k8s.io/v1alpha2` (ClusterNetworkPolicy).
//!   A kind the answer lists is listed and watched as above
//!   (`/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies`, ...).
//!
//! # Admin tiers without their CRDs
//!
//! A kind whose CRD is not installed (discovery answers 404, or lists
//! other resources only) counts as listed with no objects, so the initial
//! sync does not wait for it; this is logged once, at info, and not sent
//! as an error. Discovery is asked again every
//! [`KubeSourceOptions::discovery_interval`] (60 s by default: one or two
//! cheap requests per node per minute while a CRD is missing, and a CRD
//! installed later is enforced within a minute). When a watched kind's
//! list or watch answers 404 (its CRD was deleted), its objects are dropped
//! (sent as an empty relist), this is logged once, and discovery takes over
//! again. Other discovery failures are sent as errors and retried, from
//! 1 s doubling to 30 s; until discovery has answered, the initial sync
//! waits, as it does for a list that fails. Admin-tier objects are passed
//! on as their JSON text (`Object::Admin`), which the loader reads as it
//! reads a manifest.
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
//! `metadata.managedFields` is dropped from every object as it arrives: it
//! is often half an object's size and no policy reads it. Nothing else is
//! filtered; Pods that have Succeeded or Failed are passed on, and the
//! loader decides what they mean. Pods are trimmed to what the loader
//! reads ([`trim_pod`]), and every listed object is kept packed
//! ([`crate::source::packed`]) until the planner reads it, so the initial
//! list of a large cluster never exists as typed objects all at once.
//!
//! # Relists are atomic
//!
//! A (re)list arrives as `Init`, `InitApply`…, `InitDone`. The source
//! collects the `InitApply` objects and passes them on only at `InitDone`,
//! as one [`ObjectChange::Relisted`] with the kind's complete list, so the
//! agent never sees a partial list: until then it keeps the kind's previous
//! state, and changes of other kinds go on being sent meanwhile.
//!
//! # RBAC
//!
//! The agent's service account needs `get`, `list` and `watch` on `pods`,
//! `namespaces` and `nodes` (core group), on `networkpolicies`
//! (`networking.k8s.io`), and on `adminnetworkpolicies`,
//! `baselineadminnetworkpolicies` and `clusternetworkpolicies`
//! (`policy.networking.k8s.io`), cluster-wide. (The source itself only
//! lists and watches; `get` is the conventional companion. Discovery needs
//! no rule: every authenticated user may read it.) Until it has them, the
//! 403 answers are sent as errors and retried, and no snapshot is sent:
//! an agent that cannot read the admin tiers of a cluster that serves them
//! would enforce a ruleset without them.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Debug;
use std::time::Duration;

use std::sync::Arc;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use policy_core::diagnostic::ObjectRef;
use policy_core::load::Object;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::custom::{self, Discovery};
use super::error::ApiCallError;
use super::kinds::ResourceKind;
use crate::source::{Inputs, ObjectChange, PackedObject, PackedObjects, SourceEvent};

/// The longest a change waits after the first change of a batch, unless the
/// debounce itself is longer.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// How often the API server is asked again whether it serves an admin-tier
/// kind it did not serve, by default.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);

/// The first wait after a discovery request failed; it doubles after each
/// further failure, up to [`MAX_DISCOVERY_BACKOFF`].
const DISCOVERY_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between discovery requests that fail.
const MAX_DISCOVERY_BACKOFF: Duration = Duration::from_secs(30);

/// How the Kubernetes source behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSourceOptions {
    /// How long the cluster must stay quiet after a change before the
    /// changes gathered since are sent (200 ms by default); a change after
    /// such a quiet spell is sent at once. Under a constant stream of
    /// changes a batch is still sent [`MAX_DELAY`] after its first change.
    pub debounce: Duration,
    /// How often to ask the API server again whether it serves an
    /// admin-tier kind whose CRD was missing ([`DISCOVERY_INTERVAL`] by
    /// default).
    pub discovery_interval: Duration,
}

impl Default for KubeSourceOptions {
    fn default() -> Self {
        KubeSourceOptions {
            debounce: Duration::from_millis(200),
            discovery_interval: DISCOVERY_INTERVAL,
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

/// Lists and watches Namespaces, Pods, NetworkPolicies and Nodes in all
/// namespaces, and the admin-tier kinds the API server serves, and sends a
/// snapshot of them, then their changes, to `events` (see the module
/// documentation).
///
/// Runs until the receiver is dropped (then returns `Ok`); errors only for
/// unrecoverable setup problems. Errors talking to the API server are
/// retried, logged and sent as [`SourceEvent::Error`].
pub async fn run(
    client: Client,
    options: KubeSourceOptions,
    events: Sender<SourceEvent>,
) -> Result<(), KubeSourceError> {
    let mut signals: SelectAll<BoxStream<'static, (ResourceKind, Signal)>> = SelectAll::new();
    let discovery = Arc::new(Discovery::new(client.clone(), options.discovery_interval));
    for kind in ResourceKind::WATCHED {
        let signal = match kind {
            ResourceKind::Namespace => {
                watch(kind, Api::<Namespace>::all(client.clone()), typed_object)
            }
            ResourceKind::Pod => watch(kind, Api::<Pod>::all(client.clone()), typed_object),
            ResourceKind::NetworkPolicy => watch(
                kind,
                Api::<NetworkPolicy>::all(client.clone()),
                typed_object,
            ),
            ResourceKind::Node => watch(kind, Api::<Node>::all(client.clone()), typed_object),
            custom => watch_custom(
                custom,
                client.clone(),
                discovery.clone(),
                options.discovery_interval,
            ),
        };
        signals.push(signal);
    }

    let max_delay = MAX_DELAY.max(options.debounce);
    const KINDS: usize = ResourceKind::WATCHED.len();
    // A (re)list in progress, per kind, packed as it arrives: a typed
    // 100,000-Pod list would be most of the agent's peak memory.
    let mut listing: [Option<Vec<PackedObject>>; KINDS] = Default::default();
    // Until the initial sync: every kind's objects, once listed.
    let mut initial: [Option<BTreeMap<ObjectRef, PackedObject>>; KINDS] = Default::default();
    let mut synced = false;
    let mut pending: Vec<ObjectChange> = Vec::new();
    let mut burst: Option<Burst> = None;
    // When the last change was seen.
    let mut last_change: Option<Instant> = None;

    loop {
        let deadline = burst.as_ref().map(|b| b.deadline);
        tokio::select! {
            biased;
            () = events.closed() => return Ok(()),
            () = sleep_until(deadline), if deadline.is_some() => {
                burst = None;
                let changes = std::mem::take(&mut pending);
                tracing::debug!(changes = changes.len(), "sending changes");
                if events.send(SourceEvent::Changes(changes)).await.is_err() {
                    return Ok(());
                }
            }
            signal = signals.next() => {
                let Some((kind, signal)) = signal else {
                    return Err(KubeSourceError::WatchEnded);
                };
                let index = watched_index(kind);
                let change = match signal {
                    Signal::Relisting => {
                        if synced || initial[index].is_some() {
                            tracing::info!(kind = kind.kind(), "relisting");
                        }
                        listing[index] = Some(Vec::new());
                        None
                    }
                    Signal::Listing(object) => {
                        let object = PackedObject::pack(object);
                        listing[index].get_or_insert_with(Vec::new).push(object);
                        None
                    }
                    Signal::Listed => {
                        tracing::debug!(kind = kind.kind(), "list complete");
                        let mut objects = listing[index].take().unwrap_or_default();
                        objects.sort_by(|a, b| a.identity().cmp(&b.identity()));
                        let objects = PackedObjects::from_iter(objects);
                        Some(ObjectChange::Relisted { kind: kind.kind().to_owned(), objects })
                    }
                    Signal::Applied(object) => Some(ObjectChange::Applied(object)),
                    Signal::Deleted(object) => Some(ObjectChange::Deleted(object)),
                    Signal::Absent => {
                        // Not served: listed, with nothing in it.
                        listing[index] = None;
                        let objects = PackedObjects::default();
                        Some(ObjectChange::Relisted { kind: kind.kind().to_owned(), objects })
                    }
                    // watch_custom turns it into Absent.
                    Signal::NotServed => None,
                    Signal::Failed(message) => {
                        tracing::warn!(kind = kind.kind(), error = %message, "watch error");
                        let message = format!("watching {}: {message}", kind.plural());
                        if events.send(SourceEvent::Error(message)).await.is_err() {
                            return Ok(());
                        }
                        None
                    }
                };
                let Some(change) = change else { continue };
                if synced {
                    pending.push(change);
                    let now = Instant::now();
                    let quiet_before = last_change.is_none_or(|at| now - at >= options.debounce);
                    last_change = Some(now);
                    if burst.is_none() && quiet_before {
                        // After a quiet spell: at once.
                        if events.send(SourceEvent::Changes(std::mem::take(&mut pending))).await.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                    let first = burst.as_ref().map_or(now, |b| b.first);
                    burst = Some(Burst {
                        first,
                        deadline: (now + options.debounce).min(first + max_delay),
                    });
                    continue;
                }
                follow_before_sync(&mut initial[index], change);
                if initial.iter().all(Option::is_some) {
                    synced = true;
                    let lists = std::mem::take(&mut initial).map(Option::unwrap_or_default);
                    tracing::info!(
                        namespaces = lists[0].len(),
                        pods = lists[1].len(),
                        networkpolicies = lists[2].len(),
                        nodes = lists[3].len(),
                        adminnetworkpolicies = lists[4].len(),
                        baselineadminnetworkpolicies = lists[5].len(),
                        clusternetworkpolicies = lists[6].len(),
                        "initial sync complete"
                    );
                    let objects: PackedObjects = lists.into_iter().flat_map(BTreeMap::into_values).collect();
                    tracing::debug!(objects = objects.len(), "sending snapshot");
                    let snapshot = SourceEvent::Snapshot(Inputs::Objects(objects));
                    if events.send(snapshot).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Keeps one kind's objects up to date until the initial sync; `None`
/// until the kind is first listed.
fn follow_before_sync(
    objects: &mut Option<BTreeMap<ObjectRef, PackedObject>>,
    change: ObjectChange,
) {
    match change {
        ObjectChange::Relisted {
            objects: listed, ..
        } => {
            let listed = (listed.into_iter())
                .filter_map(|object| Some((object.identity()?.clone(), object)))
                .collect();
            *objects = Some(listed);
        }
        ObjectChange::Applied(object) => {
            if let (Some(objects), Some(key)) = (objects.as_mut(), object.identity()) {
                objects.insert(key, PackedObject::pack(object));
            }
        }
        ObjectChange::Deleted(key) => {
            if let Some(objects) = objects.as_mut() {
                objects.remove(&key);
            }
        }
    }
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

/// One watch event, as the source uses it.
enum Signal {
    /// A (re)list started.
    Relisting,
    /// An object of the list in progress.
    Listing(Object),
    /// The (re)list completed.
    Listed,
    /// An object was added or modified.
    Applied(Object),
    /// An object was deleted.
    Deleted(ObjectRef),
    /// The watcher reported an error; it retries after a backoff.
    Failed(String),
    /// The kind is not served (its CRD is not installed, or was deleted):
    /// there are none of it.
    Absent,
    /// A list or watch answered 404 (only for custom resources, whose CRD
    /// may go away; [`watch_custom`] turns it into [`Signal::Absent`]).
    NotServed,
}

/// How a watched object becomes what the source sends.
type Convert<K> = fn(ResourceKind, K) -> Result<Object, String>;

/// A typed object without `managedFields`, a Pod trimmed to what the
/// loader reads.
fn typed_object<K: Resource + Into<Object>>(
    _: ResourceKind,
    mut object: K,
) -> Result<Object, String> {
    object.meta_mut().managed_fields = None;
    let mut object: Object = object.into();
    if let Object::Pod(pod) = &mut object {
        trim_pod(pod);
    }
    Ok(object)
}

/// An admin-tier object as the loader takes it.
fn admin_object(kind: ResourceKind, object: DynamicObject) -> Result<Object, String> {
    custom::admin_object(kind, object)
        .map_err(|error| format!("cannot pass on a {}: {error}", kind.kind()))
}

/// The watcher of one kind, as a stream of signals.
fn watch<K>(
    kind: ResourceKind,
    api: Api<K>,
    convert: Convert<K>,
) -> BoxStream<'static, (ResourceKind, Signal)>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let converted = |object: K, signal: fn(Object) -> Signal| match convert(kind, object) {
                Ok(object) => signal(object),
                Err(message) => Signal::Failed(message),
            };
            let signal = match event {
                Ok(watcher::Event::Init) => Some(Signal::Relisting),
                Ok(watcher::Event::InitApply(object)) => Some(converted(object, Signal::Listing)),
                Ok(watcher::Event::InitDone) => Some(Signal::Listed),
                Ok(watcher::Event::Apply(object)) => Some(converted(object, Signal::Applied)),
                Ok(watcher::Event::Delete(object)) => match convert(kind, object) {
                    Ok(object) => object.identity().map(Signal::Deleted),
                    Err(message) => Some(Signal::Failed(message)),
                },
                Err(error) if kind.custom() && not_found(&error) => Some(Signal::NotServed),
                Err(error) => Some(Signal::Failed(describe_watch_error(kind, &error))),
            };
            future::ready(signal.map(|signal| (kind, signal)))
        })
        .boxed()
}

/// Whether the API server answered 404: the resource is not served.
fn not_found(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 404,
        watcher::Error::WatchError(status) => status.code == 404,
        _ => false,
    }
}

/// Where [`watch_custom`] is.
enum Phase {
    /// Asking discovery whether the kind is served, after waiting this long.
    Discovering(Duration),
    /// Served: its watcher.
    Watching(BoxStream<'static, (ResourceKind, Signal)>),
}

/// The state of [`watch_custom`].
struct Custom {
    kind: ResourceKind,
    client: Client,
    discovery: Arc<Discovery>,
    interval: Duration,
    phase: Phase,
    /// True once [`Signal::Absent`] was sent, until the kind is listed.
    absent: bool,
    /// Discovery failures in a row.
    failures: u32,
}

/// An admin-tier kind: discovery until the API server serves it, then its
/// watcher, then discovery again if it stops being served (see the module
/// documentation).
fn watch_custom(
    kind: ResourceKind,
    client: Client,
    discovery: Arc<Discovery>,
    interval: Duration,
) -> BoxStream<'static, (ResourceKind, Signal)> {
    let state = Custom {
        kind,
        client,
        discovery,
        interval,
        phase: Phase::Discovering(Duration::ZERO),
        absent: false,
        failures: 0,
    };
    futures::stream::unfold(state, |mut state| async move {
        let signal = state.next().await;
        Some(((state.kind, signal), state))
    })
    .boxed()
}

impl Custom {
    /// The next signal to send.
    async fn next(&mut self) -> Signal {
        let kind = self.kind;
        loop {
            match &mut self.phase {
                Phase::Watching(watcher) => match watcher.next().await {
                    Some((_, Signal::NotServed)) => {
                        self.phase = Phase::Discovering(self.interval);
                        if self.absent {
                            continue;
                        }
                        tracing::info!(
                            kind = kind.kind(),
                            recheck_s = self.interval.as_secs(),
                            "{} are no longer served (404: CRD removed?); dropping them and asking discovery again",
                            kind.plural()
                        );
                        self.absent = true;
                        return Signal::Absent;
                    }
                    Some((_, signal)) => {
                        if matches!(signal, Signal::Listed) {
                            self.absent = false;
                        }
                        return signal;
                    }
                    // kube's watchers do not end; if one did, ask again.
                    None => self.phase = Phase::Discovering(self.interval),
                },
                Phase::Discovering(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(*wait).await;
                    }
                    match self.discovery.serves(kind).await {
                        Ok(true) => {
                            self.failures = 0;
                            if self.absent {
                                tracing::info!(
                                    kind = kind.kind(),
                                    "{} are served now: listing and watching them",
                                    kind.plural()
                                );
                            }
                            let api = Api::<DynamicObject>::all_with(
                                self.client.clone(),
                                &custom::api_resource(kind),
                            );
                            self.phase = Phase::Watching(watch(kind, api, admin_object));
                        }
                        Ok(false) => {
                            self.failures = 0;
                            self.phase = Phase::Discovering(self.interval);
                            if !self.absent {
                                tracing::info!(
                                    kind = kind.kind(),
                                    recheck_s = self.interval.as_secs(),
                                    "{} are not served by the API server (CRD not installed): none to enforce; asking discovery again periodically",
                                    kind.plural()
                                );
                                self.absent = true;
                                return Signal::Absent;
                            }
                        }
                        Err(error) => {
                            let backoff = DISCOVERY_BACKOFF
                                .saturating_mul(1 << self.failures.min(8))
                                .min(MAX_DISCOVERY_BACKOFF);
                            self.failures += 1;
                            self.phase = Phase::Discovering(backoff);
                            return Signal::Failed(format!(
                                "discovery failed (GET /apis/{}): {error}; asking again in {}s",
                                kind.api_version(),
                                backoff.as_secs()
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// Keeps of a Pod only what the loader reads (name, namespace, labels, the
/// `netpol.dev/allow` annotation, owner references; node, host network,
/// container names, ports and restart policies; phase, addresses and the
/// Ready condition), as each one arrives. A listed Pod is mostly what no
/// policy reads (images, environment, volumes, resources, probes, status
/// details); without this, the initial list of 100,000 Pods held about
/// 2.4 GiB until the first plan, and the agent's memory stayed high after.
pub fn trim_pod(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodSpec, PodStatus};
    let metadata = &mut pod.metadata;
    metadata.managed_fields = None;
    metadata.annotations = metadata.annotations.take().and_then(|mut annotations| {
        let allow = annotations.remove_entry(policy_core::load::ALLOW_ANNOTATION)?;
        Some(BTreeMap::from([allow]))
    });
    let keep = |container: Container| Container {
        name: container.name,
        ports: container.ports,
        restart_policy: container.restart_policy,
        ..Container::default()
    };
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        host_network: spec.host_network,
        containers: spec.containers.into_iter().map(keep).collect(),
        init_containers: (spec.init_containers)
            .map(|containers| containers.into_iter().map(keep).collect()),
        ..PodSpec::default()
    });
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        conditions: status.conditions.map(|conditions| {
            (conditions.into_iter())
                .filter(|condition| condition.type_ == "Ready")
                .map(|condition| PodCondition {
                    type_: condition.type_,
                    status: condition.status,
                    ..PodCondition::default()
                })
                .collect()
        }),
        ..PodStatus::default()
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::Loader;

    fn load(pods: Vec<Pod>) -> (policy_core::Cluster, Vec<String>) {
        let mut loader = Loader::new();
        for pod in pods {
            loader.add(Object::Pod(pod));
        }
        let loaded = loader.finish();
        let messages = (loaded.diagnostics.iter())
            .map(|d| format!("{:?} {}", d.object, d.message))
            .collect();
        (loaded.cluster, messages)
    }

    /// Trimming keeps everything the loader reads: the recorded API pods,
    /// and pods with init containers, the allow annotation, a Ready=False
    /// condition, a finished phase and bad values load alike trimmed or not.
    #[test]
    fn a_trimmed_pod_loads_as_the_whole_pod() {
        let text = include_str!("../../../../kube-fake/fixtures/pods.json");
        let list: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut pods: Vec<Pod> = serde_json::from_value(list["items"].clone()).unwrap();
        let more = serde_json::json!([
            {
                "metadata": {"name": "sidecar", "namespace": "shop", "labels": {"app": "web"},
                    "annotations": {"netpol.dev/allow": "NP004", "other": "x".repeat(1000)},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}]},
                "spec": {"nodeName": "node-1", "hostNetwork": false,
                    "initContainers": [
                        {"name": "proxy", "image": "p", "restartPolicy": "Always", "ports": [{"name": "proxy", "containerPort": 15001}]},
                        {"name": "setup", "image": "s", "ports": [{"containerPort": 9999}]}
                    ],
                    "containers": [{"name": "web", "image": "w", "env": [{"name": "A", "value": "b"}],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"containerPort": 70000}, {"containerPort": 53, "protocol": "XDP"}]}]},
                "status": {"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}, {"ip": "bad"}],
                    "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}
            },
            {
                "metadata": {"name": "done", "namespace": "shop"},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
                "status": {"phase": "Succeeded", "podIP": "10.0.0.8"}
            },
            {
                "metadata": {"name": "host", "namespace": "shop", "ownerReferences": [{"apiVersion": "", "kind": "DaemonSet", "name": "d", "uid": ""}]},
                "spec": {"nodeName": "node-2", "hostNetwork": true, "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 9100, "hostPort": 9100}]}]},
                "status": {"podIP": "192.168.0.2"}
            }
        ]);
        pods.extend(serde_json::from_value::<Vec<Pod>>(more).unwrap());
        let mut trimmed = pods.clone();
        trimmed.iter_mut().for_each(trim_pod);
        assert_eq!(load(trimmed.clone()), load(pods));
        // And the trim is real.
        let sidecar = trimmed
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("sidecar"))
            .unwrap();
        assert_eq!(sidecar.metadata.annotations.as_ref().unwrap().len(), 1);
        assert!(sidecar.spec.as_ref().unwrap().containers[0].env.is_none());
    }
}
