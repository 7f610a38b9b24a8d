//! A fake Kubernetes API server on loopback, for tests of everything that
//! talks to the API: the agent's watch source and the analysis commands'
//! `--cluster` read.
//!
//! It speaks plain HTTP/1.1 (one request per connection, `Connection:
//! close`) and the real list and watch protocol for the collections netpol
//! reads ([`Res`]), cluster-wide (`/api/v1/pods`) and per namespace
//! (`/api/v1/namespaces/shop/pods`), plus `GET` of one Namespace:
//!
//! - list: `GET <collection>?limit=N[&continue=T]` answers a `<Kind>List`
//!   with `metadata.resourceVersion`; when the page is cut short (by `limit`
//!   or by a test's page cap) it carries `metadata.continue` and
//!   `remainingItemCount`, and the next pages are served from the same
//!   point in time, as the API server does;
//! - watch: `GET <collection>?watch=true&resourceVersion=N…` answers a
//!   chunked stream of newline-delimited watch events: the events of that
//!   collection after `N` (replayed from history), then live ones. A
//!   resourceVersion older than the compaction point gets the API server's
//!   `ERROR` event (410 Expired) and the end of the stream.
//!   `allowWatchBookmarks=true` lets [`FakeApiServer::bookmark`] send
//!   `BOOKMARK` events; `timeoutSeconds` ends the stream cleanly.
//!
//! The admin-tier custom resources ([`Res::ADMIN`]) are served only once a
//! test installs their CRD ([`FakeApiServer::serve`]); until then their
//! collections answer 404. Discovery of a group version
//! (`GET /apis/policy.networking.k8s.io/v1alpha1`) answers the
//! `APIResourceList` of the resources served in it, or the API server's
//! plain-text `404 page not found` when it serves none.
//!
//! Resource versions are one counter for all collections, as etcd's are.
//! Tests script it: change objects (`apply`, `delete`), fail or hold list
//! requests, cap page sizes, end watches cleanly or abruptly, expire them
//! with 410, refuse requests as RBAC would (403, with the API server's
//! message), stop serving a resource (404, as for a missing CRD), require a
//! bearer token (401), and read the log of requests it received.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A collection the fake server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Res {
    Namespaces,
    Pods,
    Deployments,
    StatefulSets,
    DaemonSets,
    ReplicaSets,
    ReplicationControllers,
    Jobs,
    CronJobs,
    Services,
    NetworkPolicies,
    Nodes,
    EndpointSlices,
    Ingresses,
    IngressClasses,
    AdminNetworkPolicies,
    BaselineAdminNetworkPolicies,
    ClusterNetworkPolicies,
}

impl Res {
    pub const ALL: [Res; 18] = [
        Res::Namespaces,
        Res::Pods,
        Res::Deployments,
        Res::StatefulSets,
        Res::DaemonSets,
        Res::ReplicaSets,
        Res::ReplicationControllers,
        Res::Jobs,
        Res::CronJobs,
        Res::Services,
        Res::NetworkPolicies,
        Res::Nodes,
        Res::EndpointSlices,
        Res::Ingresses,
        Res::IngressClasses,
        Res::AdminNetworkPolicies,
        Res::BaselineAdminNetworkPolicies,
        Res::ClusterNetworkPolicies,
    ];

    /// The built-in collections the agent's source watches (it watches
    /// [`Res::ADMIN`] too, where served).
    pub const WATCHED: [Res; 4] = [Res::Namespaces, Res::Pods, Res::NetworkPolicies, Res::Nodes];

    /// The admin-tier custom resources: not served until a test installs
    /// their CRD with [`FakeApiServer::serve`].
    pub const ADMIN: [Res; 3] = [
        Res::AdminNetworkPolicies,
        Res::BaselineAdminNetworkPolicies,
        Res::ClusterNetworkPolicies,
    ];

    /// Whether objects of this collection live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Res::Namespaces | Res::Nodes | Res::IngressClasses) && !self.custom()
    }

    /// A custom resource, served only once its CRD is installed.
    pub fn custom(self) -> bool {
        Res::ADMIN.contains(&self)
    }

    /// The API group and version prefix: `/api/v1`, `/apis/apps/v1`, ...
    fn prefix(self) -> &'static str {
        match self {
            Res::Namespaces
            | Res::Pods
            | Res::ReplicationControllers
            | Res::Services
            | Res::Nodes => "/api/v1",
            Res::EndpointSlices => "/apis/discovery.k8s.io/v1",
            Res::Ingresses | Res::IngressClasses => "/apis/networking.k8s.io/v1",
            Res::Deployments | Res::StatefulSets | Res::DaemonSets | Res::ReplicaSets => {
                "/apis/apps/v1"
            }
            Res::Jobs | Res::CronJobs => "/apis/batch/v1",
            Res::NetworkPolicies => "/apis/networking.k8s.io/v1",
            Res::AdminNetworkPolicies | Res::BaselineAdminNetworkPolicies => {
                "/apis/policy.networking.k8s.io/v1alpha1"
            }
            Res::ClusterNetworkPolicies => "/apis/policy.networking.k8s.io/v1alpha2",
        }
    }

    /// The cluster-wide collection path.
    pub fn path(self) -> String {
        format!("{}/{}", self.prefix(), self.plural())
    }

    /// The collection path in one namespace.
    pub fn namespaced_path(self, namespace: &str) -> String {
        format!("{}/namespaces/{namespace}/{}", self.prefix(), self.plural())
    }

    pub fn kind(self) -> &'static str {
        match self {
            Res::Namespaces => "Namespace",
            Res::Pods => "Pod",
            Res::Deployments => "Deployment",
            Res::StatefulSets => "StatefulSet",
            Res::DaemonSets => "DaemonSet",
            Res::ReplicaSets => "ReplicaSet",
            Res::ReplicationControllers => "ReplicationController",
            Res::Jobs => "Job",
            Res::CronJobs => "CronJob",
            Res::Services => "Service",
            Res::NetworkPolicies => "NetworkPolicy",
            Res::Nodes => "Node",
            Res::EndpointSlices => "EndpointSlice",
            Res::Ingresses => "Ingress",
            Res::IngressClasses => "IngressClass",
            Res::AdminNetworkPolicies => "AdminNetworkPolicy",
            Res::BaselineAdminNetworkPolicies => "BaselineAdminNetworkPolicy",
            Res::ClusterNetworkPolicies => "ClusterNetworkPolicy",
        }
    }

    pub fn api_version(self) -> &'static str {
        self.prefix()
            .trim_start_matches("/apis/")
            .trim_start_matches("/api/")
    }

    /// The API group, as RBAC messages name it ("" for core).
    pub fn group(self) -> &'static str {
        match self.api_version().rsplit_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Res::Namespaces => "namespaces",
            Res::Pods => "pods",
            Res::Deployments => "deployments",
            Res::StatefulSets => "statefulsets",
            Res::DaemonSets => "daemonsets",
            Res::ReplicaSets => "replicasets",
            Res::ReplicationControllers => "replicationcontrollers",
            Res::Jobs => "jobs",
            Res::CronJobs => "cronjobs",
            Res::Services => "services",
            Res::NetworkPolicies => "networkpolicies",
            Res::Nodes => "nodes",
            Res::EndpointSlices => "endpointslices",
            Res::Ingresses => "ingresses",
            Res::IngressClasses => "ingressclasses",
            Res::AdminNetworkPolicies => "adminnetworkpolicies",
            Res::BaselineAdminNetworkPolicies => "baselineadminnetworkpolicies",
            Res::ClusterNetworkPolicies => "clusternetworkpolicies",
        }
    }

    /// Which collection a path names, and in which namespace (None:
    /// cluster-wide).
    fn from_path(path: &str) -> Option<(Res, Option<String>)> {
        Res::ALL.into_iter().find_map(|res| {
            if path == res.path() {
                return Some((res, None));
            }
            let rest = path
                .strip_prefix(res.prefix())?
                .strip_prefix("/namespaces/")?;
            let (namespace, plural) = rest.split_once('/')?;
            (res.namespaced() && plural == res.plural() && !namespace.is_empty())
                .then(|| (res, Some(namespace.to_string())))
        })
    }

    /// `GET /api/v1/namespaces/<name>`: the name.
    fn namespace_get(path: &str) -> Option<&str> {
        let name = path.strip_prefix("/api/v1/namespaces/")?;
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }

    /// `GET /apis/<group>/<version>` (or `/api/v1`): the collections of
    /// that group version, if it is one the server knows.
    fn discovery(path: &str) -> Option<Vec<Res>> {
        let in_it: Vec<Res> = Res::ALL
            .into_iter()
            .filter(|res| res.prefix() == path)
            .collect();
        (!in_it.is_empty()).then_some(in_it)
    }

    /// This collection's entries in its group version's `APIResourceList`,
    /// as the API server lists a CRD: the resource and its status.
    fn discovery_entries(self) -> [Value; 2] {
        let short = match self {
            Res::AdminNetworkPolicies => json!(["anp"]),
            Res::BaselineAdminNetworkPolicies => json!(["banp"]),
            Res::ClusterNetworkPolicies => json!(["cnp"]),
            _ => json!([]),
        };
        [
            json!({
                "name": self.plural(),
                "singularName": self.kind().to_lowercase(),
                "namespaced": self.namespaced(),
                "kind": self.kind(),
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                "shortNames": short,
            }),
            json!({
                "name": format!("{}/status", self.plural()),
                "singularName": "",
                "namespaced": self.namespaced(),
                "kind": self.kind(),
                "verbs": ["get", "patch", "update"],
            }),
        ]
    }

    /// The recorded objects the server starts with (empty for the kinds
    /// without a fixture).
    fn fixture(self) -> &'static str {
        match self {
            Res::Namespaces => include_str!("../fixtures/namespaces.json"),
            Res::Pods => include_str!("../fixtures/pods.json"),
            Res::NetworkPolicies => include_str!("../fixtures/networkpolicies.json"),
            _ => "",
        }
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub res: Res,
    /// The namespace of a namespaced collection path, or of a Namespace
    /// get; None for cluster-wide collections.
    pub namespace: Option<String>,
    /// A `GET` of one object (a Namespace), not a list or watch.
    pub get: bool,
    pub query: BTreeMap<String, String>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn is_watch(&self) -> bool {
        self.param("watch") == Some("true")
    }

    /// A list request for the first page (a list from scratch).
    pub fn is_list_start(&self) -> bool {
        !self.get && !self.is_watch() && self.param("continue").is_none()
    }

    pub fn is_list_continue(&self) -> bool {
        !self.get && !self.is_watch() && self.param("continue").is_some()
    }
}

/// Holds requests until opened (or dropped).
pub struct Gate(watch::Sender<bool>);

impl Gate {
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

enum WatchCommand {
    /// Send this line (a watch event and its newline).
    Line(String),
    /// End the stream cleanly (the terminating chunk).
    Close,
    /// Drop the connection without ending the chunked body.
    Abort,
}

struct Watcher {
    commands: mpsc::UnboundedSender<WatchCommand>,
    bookmarks: bool,
}

#[derive(Default)]
struct Collection {
    /// By (namespace, name); each object with kind and apiVersion.
    objects: BTreeMap<(String, String), Value>,
    /// (resourceVersion, watch event) for every change.
    history: Vec<(u64, Value)>,
    /// The oldest resourceVersion a watch can start from; older ones get 410.
    oldest_watchable: u64,
    watchers: Vec<Watcher>,
    list_failures: VecDeque<(u16, Value)>,
    page_cap: Option<usize>,
    list_gate: Option<watch::Receiver<bool>>,
    continue_gate: Option<watch::Receiver<bool>>,
    watch_gate: Option<watch::Receiver<bool>>,
    /// Continue token → (list resourceVersion, items still to send).
    continues: HashMap<String, (u64, VecDeque<Value>)>,
    /// Scopes in which requests are refused with 403: None for
    /// cluster-wide requests, Some(ns) for that namespace's.
    forbidden: Vec<Option<String>>,
    /// Answer 404 for every request: the resource is not served.
    not_served: bool,
}

struct State {
    resource_version: u64,
    collections: BTreeMap<Res, Collection>,
    requests: Vec<Request>,
    /// The paths of discovery requests (`/apis/<group>/<version>`).
    discoveries: Vec<String>,
    /// Discovery requests to fail next: path, code, `Status`.
    discovery_failures: Vec<(String, u16, Value)>,
    next_token: u64,
    /// When set, requests without `Authorization: Bearer <token>` get 401.
    token: Option<String>,
    /// The user RBAC messages name.
    user: String,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every request and every change, for [`FakeApiServer::wait_for`].
    changed: watch::Sender<u64>,
    addr: SocketAddr,
}

/// The fake server; clones share it.
#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Inner>,
}

impl FakeApiServer {
    /// Starts a server on 127.0.0.1 holding the recorded fixtures.
    pub async fn start() -> FakeApiServer {
        let server = FakeApiServer::start_empty().await;
        for res in Res::ALL {
            if res.fixture().is_empty() {
                continue;
            }
            let list: Value = serde_json::from_str(res.fixture()).expect("fixture is JSON");
            assert_eq!(list["kind"], format!("{}List", res.kind()));
            for item in list["items"].as_array().expect("items") {
                server.apply(res, item.clone());
            }
        }
        server
    }

    /// Starts a server on 127.0.0.1 holding nothing.
    pub async fn start_empty() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let server = FakeApiServer {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    resource_version: 48213,
                    collections: Res::ALL
                        .into_iter()
                        .map(|res| {
                            let collection = Collection {
                                // No CRD installed yet.
                                not_served: res.custom(),
                                ..Collection::default()
                            };
                            (res, collection)
                        })
                        .collect(),
                    requests: Vec::new(),
                    discoveries: Vec::new(),
                    discovery_failures: Vec::new(),
                    next_token: 1,
                    token: None,
                    user: "system:serviceaccount:kube-system:netpol".to_string(),
                }),
                changed: watch::channel(0).0,
                addr,
            }),
        };
        let inner = server.inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(inner.clone(), stream));
            }
        });
        server
    }

    /// A client for this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("URL"));
        kube::Client::try_from(config).expect("client")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kubeconfig whose context `context` points at this server (with the
    /// bearer token, when [`FakeApiServer::require_token`] set one).
    pub fn kubeconfig(&self, context: &str) -> String {
        let token = self.lock().token.clone().unwrap_or_else(|| "fake".into());
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\n\
             clusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: tester\n  user: {{token: \"{token}\"}}\n\
             contexts:\n- name: {context}\n  context: {{cluster: fake, user: tester}}\n",
            self.url()
        )
    }

    /// From now on, requests need `Authorization: Bearer <token>`; others
    /// get 401 Unauthorized.
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_string());
    }

    /// Refuses every request for `res` in `namespace` (None: cluster-wide
    /// requests) with 403 Forbidden and the API server's RBAC message.
    pub fn forbid(&self, res: Res, namespace: Option<&str>) {
        self.lock()
            .collections
            .get_mut(&res)
            .expect("collection")
            .forbidden
            .push(namespace.map(str::to_string));
    }

    /// Stops serving `res` at all (404), as when a CRD is not installed or
    /// an API group is disabled. Running watches of it end, as when a CRD
    /// is deleted; its objects stay, to be served again by
    /// [`FakeApiServer::serve`].
    pub fn stop_serving(&self, res: Res) {
        {
            let mut state = self.lock();
            let collection = state.collections.get_mut(&res).expect("collection");
            collection.not_served = true;
            for watcher in collection.watchers.drain(..) {
                let _ = watcher.commands.send(WatchCommand::Close);
            }
        }
        self.touch();
    }

    /// Serves `res` (again), as when its CRD is installed: its collection,
    /// and its entry in discovery.
    pub fn serve(&self, res: Res) {
        self.lock()
            .collections
            .get_mut(&res)
            .expect("collection")
            .not_served = false;
        self.touch();
    }

    /// Whether `res` is served (its CRD installed, for a custom resource).
    pub fn serves(&self, res: Res) -> bool {
        !self.lock().collections[&res].not_served
    }

    /// The next discovery request for `path` (`/apis/<group>/<version>`)
    /// fails with this status.
    pub fn fail_next_discovery(&self, path: &str, code: u16, reason: &str, message: &str) {
        self.lock().discovery_failures.push((
            path.to_string(),
            code,
            status(code, reason, message),
        ));
    }

    /// The paths of the discovery requests received, in order.
    pub fn discovery_requests(&self) -> Vec<String> {
        self.lock().discoveries.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("fake server state")
    }

    fn touch(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// Adds many objects at once without watch events, as if they had
    /// existed before any client came (for benchmarks with large clusters:
    /// no history is kept for them, so a watch must start from a list made
    /// after this). Returns the resourceVersion they all carry.
    pub fn preload(&self, res: Res, objects: Vec<Value>) -> u64 {
        let rv = {
            let mut state = self.lock();
            state.resource_version += 1;
            let rv = state.resource_version;
            let collection = state.collections.get_mut(&res).expect("collection");
            for mut object in objects {
                object["kind"] = json!(res.kind());
                object["apiVersion"] = json!(res.api_version());
                let metadata = &mut object["metadata"];
                metadata["resourceVersion"] = json!(rv.to_string());
                if metadata.get("uid").is_none() {
                    metadata["uid"] = json!(format!("00000000-0000-4000-8000-{rv:012}"));
                }
                collection.objects.insert(key_of(&object), object);
            }
            collection.oldest_watchable = rv;
            rv
        };
        self.touch();
        rv
    }

    /// Creates or replaces an object, as `kubectl apply` would; returns its
    /// new resourceVersion.
    pub fn apply(&self, res: Res, mut object: Value) -> u64 {
        let rv = {
            let mut state = self.lock();
            state.resource_version += 1;
            let rv = state.resource_version;
            object["kind"] = json!(res.kind());
            object["apiVersion"] = json!(res.api_version());
            let key = key_of(&object);
            let collection = state.collections.get_mut(&res).expect("collection");
            let previous = collection.objects.get(&key);
            let event_type = if previous.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            let metadata = &mut object["metadata"];
            metadata["resourceVersion"] = json!(rv.to_string());
            if metadata.get("uid").is_none() {
                metadata["uid"] = json!(format!("00000000-0000-4000-8000-{rv:012}"));
            }
            if metadata.get("creationTimestamp").is_none() {
                metadata["creationTimestamp"] = json!("2025-03-06T10:00:00Z");
            }
            collection.objects.insert(key, object.clone());
            collection.record(rv, event_type, object);
            rv
        };
        self.touch();
        rv
    }

    /// Changes an object in place (and sends MODIFIED); returns the new
    /// resourceVersion.
    pub fn modify(&self, res: Res, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) -> u64 {
        let mut object = self.get(res, namespace, name).expect("object to modify");
        f(&mut object);
        self.apply(res, object)
    }

    /// Deletes an object (and sends DELETED); returns the deletion's
    /// resourceVersion.
    pub fn delete(&self, res: Res, namespace: &str, name: &str) -> u64 {
        let rv = {
            let mut state = self.lock();
            state.resource_version += 1;
            let rv = state.resource_version;
            let collection = state.collections.get_mut(&res).expect("collection");
            let mut object = collection
                .objects
                .remove(&(namespace.to_string(), name.to_string()))
                .expect("object to delete");
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            collection.record(rv, "DELETED", object);
            rv
        };
        self.touch();
        rv
    }

    pub fn get(&self, res: Res, namespace: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        state.collections[&res]
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The stored objects, by namespace and name.
    pub fn objects(&self, res: Res) -> Vec<Value> {
        self.lock().collections[&res]
            .objects
            .values()
            .cloned()
            .collect()
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// Sends a BOOKMARK at the current resourceVersion to the watches of
    /// `res` that allowed bookmarks; returns that resourceVersion.
    pub fn bookmark(&self, res: Res) -> u64 {
        let mut state = self.lock();
        let rv = state.resource_version;
        // What the API server sends: an empty object of the kind, only its
        // resourceVersion set.
        let event = json!({
            "type": "BOOKMARK",
            "object": {
                "kind": res.kind(),
                "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null},
            },
        });
        let line = format!("{event}\n");
        let collection = state.collections.get_mut(&res).expect("collection");
        collection
            .watchers
            .retain(|w| !w.bookmarks || w.commands.send(WatchCommand::Line(line.clone())).is_ok());
        rv
    }

    /// Compacts the history of `res` at the current resourceVersion: a watch
    /// from any older one gets 410 Expired. Running watches are not touched.
    pub fn compact(&self, res: Res) {
        let mut state = self.lock();
        let current = state.resource_version;
        state
            .collections
            .get_mut(&res)
            .expect("collection")
            .oldest_watchable = current;
    }

    /// Compacts the history of `res` and ends its running watches with the
    /// API server's `ERROR` event 410 Expired.
    pub fn expire_watches(&self, res: Res) {
        {
            let mut state = self.lock();
            let current = state.resource_version;
            let collection = state.collections.get_mut(&res).expect("collection");
            collection.oldest_watchable = current;
            let line = format!("{}\n", expired_event(current.saturating_sub(1), current));
            for watcher in collection.watchers.drain(..) {
                let _ = watcher.commands.send(WatchCommand::Line(line.clone()));
                let _ = watcher.commands.send(WatchCommand::Close);
            }
        }
        self.touch();
    }

    /// Ends the running watches of `res` with an `ERROR` event carrying
    /// this status, then the end of the stream.
    pub fn fail_watches(&self, res: Res, code: u16, reason: &str, message: &str) {
        {
            let mut state = self.lock();
            let collection = state.collections.get_mut(&res).expect("collection");
            let event = json!({"type": "ERROR", "object": status(code, reason, message)});
            let line = format!("{event}\n");
            for watcher in collection.watchers.drain(..) {
                let _ = watcher.commands.send(WatchCommand::Line(line.clone()));
                let _ = watcher.commands.send(WatchCommand::Close);
            }
        }
        self.touch();
    }

    /// Ends the running watches of `res`: cleanly (as at `timeoutSeconds`),
    /// or by dropping the connection in the middle of the chunked body.
    pub fn close_watches(&self, res: Res, abrupt: bool) {
        {
            let mut state = self.lock();
            let collection = state.collections.get_mut(&res).expect("collection");
            for watcher in collection.watchers.drain(..) {
                let command = if abrupt {
                    WatchCommand::Abort
                } else {
                    WatchCommand::Close
                };
                let _ = watcher.commands.send(command);
            }
        }
        self.touch();
    }

    /// The watches of `res` currently streaming.
    pub fn watch_count(&self, res: Res) -> usize {
        self.lock().collections[&res]
            .watchers
            .iter()
            .filter(|w| !w.commands.is_closed())
            .count()
    }

    /// The next list request (first page) of `res` fails with this status.
    pub fn fail_next_list(&self, res: Res, code: u16, reason: &str, message: &str) {
        let mut state = self.lock();
        let collection = state.collections.get_mut(&res).expect("collection");
        collection
            .list_failures
            .push_back((code, status(code, reason, message)));
    }

    /// Lists of `res` return at most `cap` items per page.
    pub fn set_page_cap(&self, res: Res, cap: Option<usize>) {
        self.lock()
            .collections
            .get_mut(&res)
            .expect("collection")
            .page_cap = cap;
    }

    /// Holds list requests of `res` (first pages, or continuations) until the
    /// gate is opened or dropped.
    pub fn hold_lists(&self, res: Res, continuations: bool) -> Gate {
        let (tx, rx) = watch::channel(false);
        let mut state = self.lock();
        let collection = state.collections.get_mut(&res).expect("collection");
        if continuations {
            collection.continue_gate = Some(rx);
        } else {
            collection.list_gate = Some(rx);
        }
        Gate(tx)
    }

    /// Holds watch requests of `res` until the gate is opened or dropped;
    /// the requested resourceVersion is judged when the request goes on.
    pub fn hold_watches(&self, res: Res) -> Gate {
        let (tx, rx) = watch::channel(false);
        self.lock()
            .collections
            .get_mut(&res)
            .expect("collection")
            .watch_gate = Some(rx);
        Gate(tx)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Waits until `condition` holds, re-checking after every request and
    /// change; panics after `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&FakeApiServer) -> bool,
    ) {
        let mut changes = self.inner.changed.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if condition(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; requests: {:#?}",
                    self.requests()
                );
            }
        }
    }
}

impl Collection {
    fn record(&mut self, rv: u64, event_type: &str, object: Value) {
        let event = json!({"type": event_type, "object": object});
        let line = format!("{event}\n");
        self.history.push((rv, event));
        self.watchers
            .retain(|w| w.commands.send(WatchCommand::Line(line.clone())).is_ok());
    }
}

fn key_of(object: &Value) -> (String, String) {
    let metadata = &object["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&metadata["namespace"]), text(&metadata["name"]))
}

/// A `metav1.Status` failure.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The event the API server sends to a watch from a compacted
/// resourceVersion.
fn expired_event(requested: u64, oldest: u64) -> Value {
    json!({
        "type": "ERROR",
        "object": status(
            410,
            "Expired",
            &format!("too old resource version: {requested} ({oldest})"),
        ),
    })
}

async fn serve(inner: Arc<Inner>, mut stream: TcpStream) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query: BTreeMap<String, String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    if method != "GET" {
        let body = status(405, "MethodNotAllowed", "the fake server only serves GET");
        let _ = respond(&mut stream, 405, &body).await;
        return;
    }
    if let Some(in_group_version) = Res::discovery(path) {
        serve_discovery(&inner, stream, path, &head, &in_group_version).await;
        return;
    }
    let route = match Res::from_path(path) {
        Some((res, namespace)) => Some((res, namespace, false)),
        None => {
            Res::namespace_get(path).map(|name| (Res::Namespaces, Some(name.to_string()), true))
        }
    };
    let Some((res, namespace, get)) = route else {
        let body = status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        let _ = respond(&mut stream, 404, &body).await;
        return;
    };
    let request = Request {
        res,
        namespace,
        get,
        query,
    };
    let refusal = {
        let mut state = inner.state.lock().expect("state");
        state.requests.push(request.clone());
        refusal(&state, &request, &head)
    };
    inner.changed.send_modify(|n| *n += 1);
    if let Some((code, body)) = refusal {
        let _ = respond(&mut stream, code, &body).await;
        return;
    }
    if request.get {
        serve_get_namespace(&inner, stream, &request).await;
    } else if request.is_watch() {
        serve_watch(&inner, stream, request).await;
    } else {
        serve_list(&inner, stream, request).await;
    }
}

/// The 401, 403 or 404 a request gets before it is served, if any.
fn refusal(state: &State, request: &Request, head: &str) -> Option<(u16, Value)> {
    if let Some(refused) = unauthorized(state, head) {
        return Some(refused);
    }
    let res = request.res;
    let collection = &state.collections[&res];
    if collection.not_served {
        return Some((
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ));
    }
    // A namespace get is authorized cluster-wide (Namespaces are cluster-scoped).
    let scope = if request.get {
        None
    } else {
        request.namespace.clone()
    };
    if collection.forbidden.contains(&scope) {
        let verb = if request.get {
            "get"
        } else if request.is_watch() {
            "watch"
        } else {
            "list"
        };
        let resource = match (request.get, &request.namespace) {
            (true, Some(name)) => format!("namespaces \"{name}\" is forbidden"),
            _ => format!("{} is forbidden", res.plural()),
        };
        let place = match &scope {
            Some(namespace) => format!("in the namespace \"{namespace}\""),
            None => "at the cluster scope".to_string(),
        };
        let message = format!(
            "{resource}: User \"{}\" cannot {verb} resource \"{}\" in API group \"{}\" {place}",
            state.user,
            res.plural(),
            res.group()
        );
        return Some((403, status(403, "Forbidden", &message)));
    }
    None
}

/// `GET /apis/<group>/<version>`: the served resources of the group
/// version, or, when it serves none, the API server's plain-text 404.
async fn serve_discovery(
    inner: &Inner,
    mut stream: TcpStream,
    path: &str,
    head: &str,
    in_group_version: &[Res],
) {
    let answer: Result<Vec<Res>, (u16, Value)> = {
        let mut state = inner.state.lock().expect("state");
        state.discoveries.push(path.to_string());
        let failure = (state.discovery_failures.iter())
            .position(|(failing, _, _)| failing == path)
            .map(|index| state.discovery_failures.remove(index));
        match (unauthorized(&state, head), failure) {
            (Some(refused), _) => Err(refused),
            (None, Some((_, code, body))) => Err((code, body)),
            (None, None) => Ok((in_group_version.iter().copied())
                .filter(|res| !state.collections[res].not_served)
                .collect()),
        }
    };
    inner.changed.send_modify(|n| *n += 1);
    let served = match answer {
        Ok(served) => served,
        Err((code, body)) => {
            let _ = respond(&mut stream, code, &body).await;
            return;
        }
    };
    if served.is_empty() {
        let _ = respond_page_not_found(&mut stream).await;
        return;
    }
    let group_version = path
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/");
    let list = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": served.iter().flat_map(|res| res.discovery_entries()).collect::<Vec<_>>(),
    });
    let _ = respond(&mut stream, 200, &list).await;
}

/// The 401 a request without the required token gets.
fn unauthorized(state: &State, head: &str) -> Option<(u16, Value)> {
    let token = state.token.as_ref()?;
    let expected = format!("authorization: bearer {token}");
    let authorized = head
        .lines()
        .any(|line| line.trim().eq_ignore_ascii_case(&expected));
    (!authorized).then(|| (401, status(401, "Unauthorized", "Unauthorized")))
}

async fn serve_get_namespace(inner: &Inner, mut stream: TcpStream, request: &Request) {
    let name = request.namespace.clone().unwrap_or_default();
    let object = inner.state.lock().expect("state").collections[&Res::Namespaces]
        .objects
        .get(&(String::new(), name.clone()))
        .cloned();
    let (code, body) = match object {
        Some(object) => (200, object),
        None => (
            404,
            status(404, "NotFound", &format!("namespaces \"{name}\" not found")),
        ),
    };
    let _ = respond(&mut stream, code, &body).await;
}

async fn serve_list(inner: &Inner, mut stream: TcpStream, request: Request) {
    let res = request.res;
    let continue_token = request.param("continue").map(str::to_string);
    let gate = {
        let state = inner.state.lock().expect("state");
        let collection = &state.collections[&res];
        if continue_token.is_some() {
            collection.continue_gate.clone()
        } else {
            collection.list_gate.clone()
        }
    };
    if let Some(mut gate) = gate {
        // A dropped gate releases the request too.
        let _ = gate.wait_for(|open| *open).await;
    }
    let (code, body) = {
        let mut guard = inner.state.lock().expect("state");
        let state = &mut *guard;
        let collection = state.collections.get_mut(&res).expect("collection");
        let start = if continue_token.is_none() {
            collection.list_failures.pop_front()
        } else {
            None
        };
        if let Some((code, body)) = start {
            (code, body)
        } else {
            let limit = request
                .param("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|&l| l > 0);
            let page = match (limit, collection.page_cap) {
                (Some(l), Some(c)) => l.min(c),
                (Some(n), None) | (None, Some(n)) => n,
                (None, None) => usize::MAX,
            };
            let taken = match &continue_token {
                Some(token) => collection.continues.remove(token),
                None => Some((
                    state.resource_version,
                    collection
                        .objects
                        .iter()
                        .filter(|((namespace, _), _)| {
                            request.namespace.as_ref().is_none_or(|n| n == namespace)
                        })
                        .map(|(_, object)| {
                            // Items of built-in kinds carry no kind or
                            // apiVersion; custom resources' do.
                            let mut item = object.clone();
                            if !res.custom() {
                                let map = item.as_object_mut().expect("object");
                                map.remove("kind");
                                map.remove("apiVersion");
                            }
                            item
                        })
                        .collect(),
                )),
            };
            match taken {
                None => (
                    410,
                    status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result.",
                    ),
                ),
                Some((list_rv, mut remaining)) => {
                    let n = page.min(remaining.len());
                    let items: Vec<Value> = remaining.drain(..n).collect();
                    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
                    if !remaining.is_empty() {
                        let token = format!("fake-continue-{}", state.next_token);
                        state.next_token += 1;
                        metadata["continue"] = json!(token);
                        metadata["remainingItemCount"] = json!(remaining.len());
                        collection.continues.insert(token, (list_rv, remaining));
                    }
                    let list = json!({
                        "kind": format!("{}List", res.kind()),
                        "apiVersion": res.api_version(),
                        "metadata": metadata,
                        "items": items,
                    });
                    (200, list)
                }
            }
        }
    };
    let _ = respond(&mut stream, code, &body).await;
}

async fn serve_watch(inner: &Inner, mut stream: TcpStream, request: Request) {
    let res = request.res;
    let from = request.param("resourceVersion").unwrap_or("");
    let timeout = request
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let bookmarks = request.param("allowWatchBookmarks") == Some("true");
    let gate = inner.state.lock().expect("state").collections[&res]
        .watch_gate
        .clone();
    if let Some(mut gate) = gate {
        let _ = gate.wait_for(|open| *open).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (replay, expired) = {
        let mut state = inner.state.lock().expect("state");
        let collection = state.collections.get_mut(&res).expect("collection");
        match from {
            // "0" or none: start now, with a synthetic ADDED for every object.
            "" | "0" => {
                let replay = collection
                    .objects
                    .values()
                    .map(|o| format!("{}\n", json!({"type": "ADDED", "object": o})))
                    .collect();
                collection.watchers.push(Watcher {
                    commands: tx,
                    bookmarks,
                });
                (replay, false)
            }
            _ => {
                let from: u64 = from.parse().unwrap_or(0);
                if from < collection.oldest_watchable {
                    let event = expired_event(from, collection.oldest_watchable);
                    (vec![format!("{event}\n")], true)
                } else {
                    // Replay and registration under one lock: no event is
                    // missed or sent twice.
                    let replay = collection
                        .history
                        .iter()
                        .filter(|(rv, _)| *rv > from)
                        .map(|(_, event)| format!("{event}\n"))
                        .collect();
                    collection.watchers.push(Watcher {
                        commands: tx,
                        bookmarks,
                    });
                    (replay, false)
                }
            }
        }
    };
    inner.changed.send_modify(|n| *n += 1);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for line in replay {
        if write_chunk(&mut stream, &line).await.is_err() {
            return;
        }
    }
    if expired {
        let _ = stream.write_all(b"0\r\n\r\n").await;
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(WatchCommand::Line(line)) => {
                    if write_chunk(&mut stream, &line).await.is_err() {
                        return;
                    }
                }
                Some(WatchCommand::Close) | None => {
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                    return;
                }
                Some(WatchCommand::Abort) => return,
            },
            () = tokio::time::sleep_until(deadline) => {
                let _ = stream.write_all(b"0\r\n\r\n").await;
                return;
            }
        }
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 64 * 1024 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buffer).ok()
}

async fn respond(stream: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        500 => "Internal Server Error",
        _ => "Unknown",
    };
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// What the API server answers for a path nothing serves: plain text.
async fn respond_page_not_found(stream: &mut TcpStream) -> std::io::Result<()> {
    let body = "404 page not found\n";
    let head = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn write_chunk(stream: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let chunk = format!("{:x}\r\n{data}\r\n", data.len());
    stream.write_all(chunk.as_bytes()).await?;
    stream.flush().await
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
