//! The Kubernetes source against a fake API server on loopback
//! (the `kube-fake` crate), which speaks the real list and watch protocol
//! with recorded objects (`kube-fake/fixtures/`).
//!
//! Each test checks what the source tells: its first snapshot, and then
//! each batch of changes applied to it, is turned into a [`View`] and
//! compared with the server's objects read as typed k8s-openapi objects
//! without `managedFields` (the admin-tier custom resources, which have no
//! typed form, as their JSON).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube_fake::{FakeApiServer, Res};
use policy_agent::plan::Plan;
use policy_agent::source::kube::{KubeSourceError, KubeSourceOptions, run};
use policy_agent::source::{Inputs, ObjectChange, SourceEvent};
use policy_agent::{OnUnreadable, Planner};
use policy_core::load::{AdminJson, Object};
use policy_core::model::RebuildReason;
use policy_core::{Config, PortQuery, Protocol, QueryEndpoint};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Long enough for anything that should happen "soon" on a loaded machine;
/// only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the source has told so far, keyed by `namespace/name` (or name).
#[derive(Clone, Debug, PartialEq)]
struct View {
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<String, Pod>,
    policies: BTreeMap<String, NetworkPolicy>,
    nodes: BTreeMap<String, Node>,
    /// Admin-tier objects by `Kind/name`, as JSON.
    admin: BTreeMap<String, Value>,
}

/// The admin-tier kind of a collection, and its order in a snapshot.
fn admin_order(kind: &str) -> Option<usize> {
    Res::ADMIN
        .iter()
        .position(|res| res.kind() == kind)
        .map(|i| 4 + i)
}

impl View {
    /// Reads a snapshot, checking its documented order: namespaces, pods,
    /// policies, each sorted by namespace and name.
    fn from_objects(objects: Vec<Object>) -> View {
        let mut order = Vec::new();
        let mut view = View {
            namespaces: BTreeMap::new(),
            pods: BTreeMap::new(),
            policies: BTreeMap::new(),
            nodes: BTreeMap::new(),
            admin: BTreeMap::new(),
        };
        for object in objects {
            match object {
                Object::Namespace(ns) => {
                    let key = ns.metadata.name.clone().unwrap();
                    order.push((0, key.clone()));
                    assert!(view.namespaces.insert(key, ns).is_none(), "duplicate");
                }
                Object::Pod(pod) => {
                    let key = key_of(&pod.metadata);
                    order.push((1, key.clone()));
                    assert!(view.pods.insert(key, pod).is_none(), "duplicate");
                }
                Object::NetworkPolicy(np) => {
                    let key = key_of(&np.metadata);
                    order.push((2, key.clone()));
                    assert!(view.policies.insert(key, np).is_none(), "duplicate");
                }
                Object::Node(node) => {
                    let key = node.metadata.name.clone().unwrap();
                    order.push((3, key.clone()));
                    assert!(view.nodes.insert(key, node).is_none(), "duplicate");
                }
                Object::Admin(admin) => {
                    let key = admin.name().unwrap().to_string();
                    order.push((admin_order(admin.kind().as_str()).unwrap(), key));
                    let (key, value) = admin_entry(&admin);
                    assert!(view.admin.insert(key, value).is_none(), "duplicate");
                }
                other => panic!("unexpected object in a snapshot: {other:?}"),
            }
        }
        assert!(order.is_sorted(), "snapshot not in order: {order:?}");
        view
    }

    /// The server's current objects as the source should pass them on:
    /// typed, without managedFields, Pods trimmed to what the loader reads.
    fn expected(server: &FakeApiServer) -> View {
        View {
            namespaces: typed::<Namespace>(server, Res::Namespaces)
                .map(|ns| (ns.metadata.name.clone().unwrap(), ns))
                .collect(),
            pods: typed::<Pod>(server, Res::Pods)
                .map(|mut pod| {
                    policy_agent::source::kube::trim_pod(&mut pod);
                    (key_of(&pod.metadata), pod)
                })
                .collect(),
            policies: typed::<NetworkPolicy>(server, Res::NetworkPolicies)
                .map(|np| (key_of(&np.metadata), np))
                .collect(),
            nodes: typed::<Node>(server, Res::Nodes)
                .map(|node| (node.metadata.name.clone().unwrap(), node))
                .collect(),
            // Only what the server serves: a CRD removed hides its objects.
            admin: (Res::ADMIN.into_iter())
                .filter(|&res| server.serves(res))
                .flat_map(|res| server.objects(res))
                .map(|mut object| {
                    let metadata = object["metadata"].as_object_mut().unwrap();
                    metadata.remove("managedFields");
                    let key = format!(
                        "{}/{}",
                        object["kind"].as_str().unwrap(),
                        object["metadata"]["name"].as_str().unwrap()
                    );
                    (key, object)
                })
                .collect(),
        }
    }

    /// Applies a batch of changes.
    fn follow(&mut self, changes: Vec<ObjectChange>) {
        for change in changes {
            match change {
                ObjectChange::Applied(object) => self.insert(object),
                ObjectChange::Deleted(object) => {
                    let key = if object.namespace.is_empty() {
                        object.name.clone()
                    } else {
                        format!("{}/{}", object.namespace, object.name)
                    };
                    let removed = match object.kind.as_str() {
                        "Namespace" => self.namespaces.remove(&key).is_some(),
                        "Pod" => self.pods.remove(&key).is_some(),
                        "NetworkPolicy" => self.policies.remove(&key).is_some(),
                        "Node" => self.nodes.remove(&key).is_some(),
                        kind if admin_order(kind).is_some() => {
                            self.admin.remove(&format!("{kind}/{key}")).is_some()
                        }
                        other => panic!("deleted {other}"),
                    };
                    assert!(removed, "deleted {object}, which was never sent");
                }
                ObjectChange::Relisted { kind, objects } => {
                    match kind.as_str() {
                        "Namespace" => self.namespaces.clear(),
                        "Pod" => self.pods.clear(),
                        "NetworkPolicy" => self.policies.clear(),
                        "Node" => self.nodes.clear(),
                        kind if admin_order(kind).is_some() => self
                            .admin
                            .retain(|key, _| !key.starts_with(&format!("{kind}/"))),
                        other => panic!("relisted {other}"),
                    }
                    for object in objects.unpack().unwrap() {
                        assert_eq!(object.identity().unwrap().kind, kind);
                        self.insert(object);
                    }
                }
            }
        }
    }

    fn insert(&mut self, object: Object) {
        match object {
            Object::Namespace(ns) => {
                self.namespaces
                    .insert(ns.metadata.name.clone().unwrap(), ns);
            }
            Object::Pod(pod) => {
                self.pods.insert(key_of(&pod.metadata), pod);
            }
            Object::NetworkPolicy(np) => {
                self.policies.insert(key_of(&np.metadata), np);
            }
            Object::Node(node) => {
                self.nodes.insert(node.metadata.name.clone().unwrap(), node);
            }
            Object::Admin(admin) => {
                let (key, value) = admin_entry(&admin);
                self.admin.insert(key, value);
            }
            other => panic!("unexpected object: {other:?}"),
        }
    }

    /// Everything, in the order of a snapshot.
    fn objects(&self) -> Vec<Object> {
        let namespaces = self.namespaces.values().cloned().map(Object::Namespace);
        let pods = self.pods.values().cloned().map(Object::Pod);
        let policies = self.policies.values().cloned().map(Object::NetworkPolicy);
        let nodes = self.nodes.values().cloned().map(Object::Node);
        // `Kind/name` sorts the kinds as a snapshot does.
        let admin = (self.admin.values())
            .map(|value| Object::Admin(AdminJson::new(value.to_string()).unwrap()));
        namespaces
            .chain(pods)
            .chain(policies)
            .chain(nodes)
            .chain(admin)
            .collect()
    }

    fn pod_names(&self) -> BTreeSet<&str> {
        self.pods.keys().map(String::as_str).collect()
    }

    fn all_without_managed_fields(&self) -> bool {
        self.namespaces
            .values()
            .map(|o| &o.metadata)
            .chain(self.pods.values().map(|o| &o.metadata))
            .chain(self.policies.values().map(|o| &o.metadata))
            .all(|m| m.managed_fields.is_none())
    }
}

/// An admin-tier object as the view keeps it: `Kind/name`, and its JSON.
fn admin_entry(admin: &AdminJson) -> (String, Value) {
    let value: Value = serde_json::from_str(admin.text()).expect("JSON");
    let key = format!("{}/{}", admin.kind(), admin.name().unwrap());
    (key, value)
}

fn key_of(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default()
    )
}

fn typed<
    K: DeserializeOwned
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    server: &FakeApiServer,
    res: Res,
) -> impl Iterator<Item = K> {
    server.objects(res).into_iter().map(|value| {
        let mut object: K = serde_json::from_value(value).expect("typed object");
        object.metadata_mut().managed_fields = None;
        object
    })
}

/// The source under test, running on the test's runtime.
struct Source {
    events: mpsc::Receiver<SourceEvent>,
    task: JoinHandle<Result<(), KubeSourceError>>,
    /// Errors received so far, in order.
    errors: Vec<String>,
    /// What the source has told so far.
    view: Option<View>,
    /// The size of the last batch of changes (`None` for a snapshot).
    last_batch: Option<usize>,
}

impl Source {
    fn start(server: &FakeApiServer, debounce: Duration) -> Source {
        let options = KubeSourceOptions {
            debounce,
            ..KubeSourceOptions::default()
        };
        Source::start_with(server, options)
    }

    fn start_with(server: &FakeApiServer, options: KubeSourceOptions) -> Source {
        let (tx, events) = mpsc::channel(64);
        let task = tokio::spawn(run(server.client(), options, tx));
        Source {
            events,
            task,
            errors: Vec::new(),
            view: None,
            last_batch: None,
        }
    }

    /// The next event, within `within`.
    async fn next(&mut self, within: Duration) -> SourceEvent {
        match tokio::time::timeout(within, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the source ended: {:?}", (&mut self.task).await),
            Err(_) => panic!("no event from the source within {within:?}"),
        }
    }

    /// The source's state after its next snapshot or batch of changes,
    /// within `within`, recording errors on the way. Only the first event
    /// is a snapshot; every later one is changes.
    async fn next_snapshot(&mut self, within: Duration) -> View {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                SourceEvent::Snapshot(Inputs::Objects(objects)) => {
                    assert!(self.view.is_none(), "a second snapshot");
                    self.last_batch = None;
                    let view = View::from_objects(objects.unpack().unwrap());
                    self.view = Some(view.clone());
                    return view;
                }
                SourceEvent::Snapshot(Inputs::Files(_)) => {
                    panic!("files from the Kubernetes source")
                }
                SourceEvent::Changes(changes) => {
                    assert!(!changes.is_empty(), "an empty batch of changes");
                    self.last_batch = Some(changes.len());
                    let view = self.view.as_mut().expect("changes before the snapshot");
                    view.follow(changes);
                    return view.clone();
                }
                SourceEvent::Error(message) => self.errors.push(message),
            }
        }
    }

    /// Snapshots until one satisfies `done` (within `within`): all of them,
    /// the last one satisfying `done`.
    async fn snapshots_until(
        &mut self,
        within: Duration,
        done: impl Fn(&View) -> bool,
    ) -> Vec<View> {
        let deadline = Instant::now() + within;
        let mut views = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let view = self.next_snapshot(left).await;
            let finished = done(&view);
            views.push(view);
            if finished {
                return views;
            }
        }
    }

    /// Nothing was sent so far.
    fn assert_nothing_sent(&mut self) {
        match self.events.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => {}
            other => panic!("expected nothing from the source, got {other:?}"),
        }
    }

    /// Nothing is sent during `window`.
    async fn assert_quiet_for(&mut self, window: Duration) {
        if let Ok(event) = tokio::time::timeout(window, self.events.recv()).await {
            panic!("expected nothing from the source for {window:?}, got {event:?}");
        }
    }
}

fn with_label(key: &str, value: &str) -> impl FnOnce(&mut Value) {
    let (key, value) = (key.to_string(), value.to_string());
    move |object| {
        object["metadata"]["labels"][key] = json!(value);
    }
}

/// A new pod, as the API server stores it after scheduling.
fn new_pod(namespace: &str, name: &str, app: &str, ip: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": app},
            "managedFields": [{
                "manager": "kubectl-run",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2025-03-06T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
            }]
        },
        "spec": {
            "containers": [{
                "name": app,
                "image": "ghcr.io/example/shop-web:1.8.2",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
            }],
            "nodeName": "worker-1",
            "restartPolicy": "Always"
        },
        "status": {
            "phase": "Running",
            "hostIP": "172.18.0.3",
            "hostIPs": [{"ip": "172.18.0.3"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}]
        }
    })
}

fn lists_of(server: &FakeApiServer, res: Res) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.res == res && r.is_list_start())
        .count()
}

fn watches_of(server: &FakeApiServer, res: Res) -> Vec<kube_fake::Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.res == res && r.is_watch())
        .collect()
}

/// Starts a source and returns it with its first snapshot, checked against
/// the server.
async fn synced(server: &FakeApiServer, debounce: Duration) -> (Source, View) {
    let mut source = Source::start(server, debounce);
    let first = source.next_snapshot(PATIENCE).await;
    assert_eq!(first, View::expected(server));
    (source, first)
}

#[tokio::test]
async fn initial_snapshot_waits_for_all_three_lists_and_drops_managed_fields() {
    let server = FakeApiServer::start().await;
    // Pods come in pages of two; NetworkPolicies are held back.
    server.set_page_cap(Res::Pods, Some(2));
    let policies_gate = server.hold_lists(Res::NetworkPolicies, false);
    for res in Res::WATCHED {
        assert!(
            server
                .objects(res)
                .iter()
                .all(|o| !o["metadata"]["managedFields"]
                    .as_array()
                    .unwrap()
                    .is_empty()),
            "fixtures carry managedFields"
        );
    }

    let mut source = Source::start(&server, Duration::from_millis(50));
    // A watch starts right after its list is complete: namespaces and pods
    // are listed, the policy list is pending.
    server
        .wait_for("namespace and pod watches, policy list", PATIENCE, |s| {
            !watches_of(s, Res::Namespaces).is_empty()
                && !watches_of(s, Res::Pods).is_empty()
                && lists_of(s, Res::NetworkPolicies) == 1
        })
        .await;
    source.assert_nothing_sent();
    source.assert_quiet_for(Duration::from_millis(300)).await;
    assert!(watches_of(&server, Res::NetworkPolicies).is_empty());

    policies_gate.open();
    let first = source.next_snapshot(PATIENCE).await;
    assert_eq!(first, View::expected(&server));
    assert!(first.all_without_managed_fields());
    assert_eq!(first.namespaces.len(), 3);
    assert_eq!(first.pods.len(), 5);
    assert_eq!(first.policies.len(), 4);
    assert!(source.errors.is_empty(), "{:?}", source.errors);

    // The contents the agent needs survive: labels, IPs, node, phase, ports.
    let shop = &first.namespaces["shop"];
    assert_eq!(
        shop.metadata.labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
        "shop"
    );
    let web = &first.pods["shop/web-6f8d7c9b5-x2k4p"];
    let status = web.status.as_ref().unwrap();
    let ips: Vec<&str> = status
        .pod_ips
        .as_ref()
        .unwrap()
        .iter()
        .map(|ip| ip.ip.as_str())
        .collect();
    assert_eq!(ips, ["10.244.1.12", "fd00:10:244:1::c"]);
    assert_eq!(
        web.spec.as_ref().unwrap().node_name.as_deref(),
        Some("worker-1")
    );
    let port = &web.spec.as_ref().unwrap().containers[0]
        .ports
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 8080)
    );
    // Finished pods are passed on; the loader decides.
    let migrate = &first.pods["shop/migrate-28514720-7xkcd"];
    assert_eq!(
        migrate.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    let egress = first.policies["shop/egress-dns-and-db"]
        .spec
        .as_ref()
        .unwrap()
        .egress
        .as_ref()
        .unwrap();
    assert_eq!(
        egress[2].to.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .cidr,
        "10.0.0.0/8"
    );

    // What kube 5's watcher asked for: a paginated list (limit 500, no
    // resourceVersion: a consistent read), then a watch from the list's
    // resourceVersion with bookmarks, no streaming list.
    let requests = server.requests();
    let pod_lists: Vec<_> = requests
        .iter()
        .filter(|r| r.res == Res::Pods && !r.is_watch())
        .collect();
    assert_eq!(
        pod_lists.len(),
        3,
        "five pods in pages of two: {pod_lists:?}"
    );
    for list in &pod_lists {
        assert_eq!(list.param("limit"), Some("500"));
        assert_eq!(list.param("resourceVersion"), None);
        assert_eq!(list.param("resourceVersionMatch"), None);
    }
    assert!(pod_lists[1].param("continue").is_some() && pod_lists[2].param("continue").is_some());
    let pod_watch = &watches_of(&server, Res::Pods)[0];
    assert_eq!(pod_watch.param("allowWatchBookmarks"), Some("true"));
    assert_eq!(pod_watch.param("timeoutSeconds"), Some("290"));
    assert_eq!(pod_watch.param("sendInitialEvents"), None);
    let list_rv = server.resource_version().to_string();
    assert_eq!(
        pod_watch.param("resourceVersion"),
        Some(list_rv.as_str()),
        "the list's"
    );
}

#[tokio::test]
async fn added_modified_and_deleted_objects_are_each_sent_as_a_change() {
    let server = FakeApiServer::start().await;
    let (mut source, _) = synced(&server, Duration::from_millis(50)).await;
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;
    let bound = Duration::from_secs(2);

    // Added.
    let started = Instant::now();
    server.apply(Res::Pods, new_pod("shop", "web-new", "web", "10.244.1.40"));
    let view = source.next_snapshot(bound).await;
    assert!(started.elapsed() < bound);
    assert_eq!(view, View::expected(&server));
    assert_eq!(source.last_batch, Some(1), "only the new pod is sent");
    let added = &view.pods["shop/web-new"];
    assert_eq!(
        added.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.244.1.40")
    );
    assert!(added.metadata.managed_fields.is_none());

    // Modified: a namespace gains a label.
    let started = Instant::now();
    server.modify(
        Res::Namespaces,
        "",
        "shop",
        with_label("ingress", "allowed"),
    );
    let view = source.next_snapshot(bound).await;
    assert!(started.elapsed() < bound);
    assert_eq!(view, View::expected(&server));
    assert_eq!(
        view.namespaces["shop"].metadata.labels.as_ref().unwrap()["ingress"],
        "allowed"
    );

    // Deleted: a policy goes away.
    let started = Instant::now();
    server.delete(Res::NetworkPolicies, "shop", "db-from-web");
    let view = source.next_snapshot(bound).await;
    assert!(started.elapsed() < bound);
    assert_eq!(view, View::expected(&server));
    assert!(!view.policies.contains_key("shop/db-from-web"));
    assert_eq!(view.policies.len(), 3);

    // A node appears: its addresses are node traffic for its pods.
    let started = Instant::now();
    server.apply(
        Res::Nodes,
        json!({"metadata": {"name": "worker-3"},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.13"}]}}),
    );
    let view = source.next_snapshot(bound).await;
    assert!(started.elapsed() < bound);
    assert_eq!(view, View::expected(&server));
    assert_eq!(
        view.nodes["worker-3"]
            .status
            .as_ref()
            .unwrap()
            .addresses
            .as_ref()
            .unwrap()[0]
            .address,
        "192.168.0.13"
    );

    // A pod that finishes is kept, with its new phase.
    let started = Instant::now();
    server.modify(Res::Pods, "shop", "web-new", |pod| {
        pod["status"]["phase"] = json!("Failed");
    });
    let view = source.next_snapshot(bound).await;
    assert!(started.elapsed() < bound);
    assert_eq!(
        view.pods["shop/web-new"]
            .status
            .as_ref()
            .unwrap()
            .phase
            .as_deref(),
        Some("Failed")
    );
    assert_eq!(view, View::expected(&server));
    assert!(source.errors.is_empty(), "{:?}", source.errors);
}

#[tokio::test]
async fn a_burst_of_events_gives_one_batch() {
    let server = FakeApiServer::start().await;
    let debounce = Duration::from_millis(100);
    let (mut source, _) = synced(&server, debounce).await;
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;

    // Fifty changes in five groups 10 ms apart, well within the debounce:
    // new pods, relabelled pods, a deleted pod.
    for group in 0..4 {
        for i in group * 10..group * 10 + 10 {
            server.apply(
                Res::Pods,
                new_pod(
                    "shop",
                    &format!("batch-{i:02}"),
                    "batch",
                    &format!("10.244.3.{i}"),
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..9 {
        server.modify(
            Res::Pods,
            "shop",
            &format!("batch-{i:02}"),
            with_label("wave", "2"),
        );
    }
    server.delete(Res::Pods, "shop", "db-0");
    let expected = View::expected(&server);

    let views = source.snapshots_until(PATIENCE, |v| *v == expected).await;
    assert!(views.len() <= 2, "{} snapshots for one burst", views.len());
    let last = views.last().unwrap();
    assert_eq!(last.pods.len(), 5 - 1 + 40);
    assert_eq!(
        last.pods["shop/batch-03"].metadata.labels.as_ref().unwrap()["wave"],
        "2"
    );
    // And nothing trails it.
    source.assert_quiet_for(debounce * 4).await;
}

#[tokio::test]
async fn a_change_after_a_quiet_spell_is_sent_at_once_and_the_next_waits() {
    let server = FakeApiServer::start().await;
    let debounce = Duration::from_secs(2);
    let (mut source, _) = synced(&server, debounce).await;
    server
        .wait_for("four watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;
    // Nothing changed for a debounce since the sync.
    tokio::time::sleep(debounce).await;
    let started = Instant::now();
    server.apply(Res::Pods, new_pod("shop", "web-a", "web", "10.244.1.60"));
    let view = source.next_snapshot(PATIENCE).await;
    assert!(
        started.elapsed() < debounce / 2,
        "the change took {:?}",
        started.elapsed()
    );
    assert_eq!(view, View::expected(&server));

    // Right after it: gathered until the cluster is quiet again.
    let started = Instant::now();
    server.apply(Res::Pods, new_pod("shop", "web-b", "web", "10.244.1.61"));
    server.apply(Res::Pods, new_pod("shop", "web-c", "web", "10.244.1.62"));
    source.assert_quiet_for(debounce / 2).await;
    let view = source.next_snapshot(PATIENCE).await;
    assert!(started.elapsed() >= debounce, "{:?}", started.elapsed());
    assert_eq!(source.last_batch, Some(2));
    assert_eq!(view, View::expected(&server));
}

#[tokio::test]
async fn a_constant_stream_of_events_still_gives_a_batch_each_second() {
    let server = FakeApiServer::start().await;
    let debounce = Duration::from_millis(200);
    let (mut source, _) = synced(&server, debounce).await;
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;

    // One change every 50 ms, more often than the debounce, for 2.5 s.
    let trickle = {
        let server = server.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                server.modify(
                    Res::Pods,
                    "shop",
                    "db-0",
                    with_label("tick", &i.to_string()),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let first = source.next_snapshot(PATIENCE).await;
    let waited = started.elapsed();
    assert!(
        !trickle.is_finished(),
        "the first snapshot came only after the stream ended"
    );
    assert!(
        waited < Duration::from_millis(1600),
        "first snapshot after {waited:?}"
    );
    let tick: u32 = first.pods["shop/db-0"].metadata.labels.as_ref().unwrap()["tick"]
        .parse()
        .unwrap();
    assert!(tick < 40, "snapshot reflects tick {tick}");

    trickle.await.unwrap();
    let expected = View::expected(&server);
    let views = source.snapshots_until(PATIENCE, |v| *v == expected).await;
    // 2.5 s of changes at most one second apart, plus the final one.
    assert!(views.len() <= 4, "{} more snapshots", views.len());
    assert_eq!(
        views.last().unwrap().pods["shop/db-0"]
            .metadata
            .labels
            .as_ref()
            .unwrap()["tick"],
        "49"
    );
}

#[tokio::test]
async fn after_410_gone_the_relist_replaces_the_state_without_dropping_objects() {
    let server = FakeApiServer::start().await;
    // Relists come in pages of one, and the pages after the first wait, so
    // the test can look at snapshots taken in the middle of a relist.
    server.set_page_cap(Res::Pods, Some(1));
    let (mut source, before) = synced(&server, Duration::from_millis(50)).await;
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;
    let continuations = server.hold_lists(Res::Pods, true);

    // The watch falls out of the window: ERROR 410 Expired, and while the
    // source is away a pod is deleted and another added.
    server.expire_watches(Res::Pods);
    server.delete(Res::Pods, "shop", "web-6f8d7c9b5-q9z7m");
    let relist_rv = server.apply(
        Res::Pods,
        new_pod("shop", "web-6f8d7c9b5-n3w9p", "web", "10.244.2.21"),
    );
    let after = View::expected(&server);

    match source.next(PATIENCE).await {
        SourceEvent::Error(message) => {
            assert!(
                message.contains("pods") && message.contains("too old resource version"),
                "{message}"
            );
        }
        other => panic!("expected the 410 as an error first, got {other:?}"),
    }
    // kube lists again from scratch (after its backoff) ...
    server
        .wait_for("a pod relist held at its second page", PATIENCE, |s| {
            let pods: Vec<_> = s
                .requests()
                .into_iter()
                .filter(|r| r.res == Res::Pods)
                .collect();
            let relist = pods.iter().filter(|r| r.is_list_start()).nth(1);
            relist.is_some() && pods.last().unwrap().is_list_continue()
        })
        .await;
    source.assert_nothing_sent();
    // ... and a snapshot taken now (a namespace changed) still has every
    // pod of the old list: the store swaps a relist in only when complete.
    server.modify(Res::Namespaces, "", "shop", with_label("relist", "pending"));
    let during = source.next_snapshot(PATIENCE).await;
    assert_eq!(during.pods, before.pods);
    assert_eq!(
        during.namespaces["shop"].metadata.labels.as_ref().unwrap()["relist"],
        "pending"
    );

    continuations.open();
    let views = source
        .snapshots_until(PATIENCE, |v| v.pods == after.pods)
        .await;
    for view in &views {
        // Pods in both lists are never missing.
        for name in before.pod_names().intersection(&after.pod_names()) {
            assert!(view.pods.contains_key(*name), "{name} missing in between");
        }
    }
    assert_eq!(views.last().unwrap(), &View::expected(&server));
    assert!(
        views
            .last()
            .unwrap()
            .pods
            .contains_key("shop/web-6f8d7c9b5-n3w9p")
    );
    assert!(
        !views
            .last()
            .unwrap()
            .pods
            .contains_key("shop/web-6f8d7c9b5-q9z7m")
    );

    // The watch resumes from the relist's resourceVersion and works.
    server
        .wait_for("a new pod watch", PATIENCE, |s| {
            s.watch_count(Res::Pods) == 1
        })
        .await;
    let rewatch = watches_of(&server, Res::Pods).pop().unwrap();
    assert_eq!(
        rewatch.param("resourceVersion"),
        Some(relist_rv.to_string().as_str())
    );
    server.delete(Res::Pods, "shop", "web-6f8d7c9b5-n3w9p");
    let view = source.next_snapshot(PATIENCE).await;
    assert_eq!(view, View::expected(&server));
    assert_eq!(
        source.errors.len(),
        0,
        "only the one 410: {:?}",
        source.errors
    );
}

#[tokio::test]
async fn a_rewatch_from_a_compacted_version_gets_410_and_relists() {
    let server = FakeApiServer::start().await;
    let (mut source, _) = synced(&server, Duration::from_millis(50)).await;
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;

    // The connection ends; before the source's re-watch is served, a policy
    // is deleted and the history it would resume from is compacted.
    let watch_gate = server.hold_watches(Res::NetworkPolicies);
    server.close_watches(Res::NetworkPolicies, false);
    server
        .wait_for("the re-watch", PATIENCE, |s| {
            watches_of(s, Res::NetworkPolicies).len() == 2
        })
        .await;
    server.delete(Res::NetworkPolicies, "shop", "web-from-anywhere");
    server.compact(Res::NetworkPolicies);
    drop(watch_gate);

    match source.next(PATIENCE).await {
        SourceEvent::Error(message) => {
            assert!(message.contains("too old resource version"), "{message}")
        }
        other => panic!("expected the 410 as an error first, got {other:?}"),
    }
    let expected = View::expected(&server);
    let views = source.snapshots_until(PATIENCE, |v| *v == expected).await;
    assert_eq!(views.len(), 1, "one snapshot, after the relist");
    assert!(!views[0].policies.contains_key("shop/web-from-anywhere"));
    assert_eq!(lists_of(&server, Res::NetworkPolicies), 2, "a relist");
    server
        .wait_for("a watch after the relist", PATIENCE, |s| {
            s.watch_count(Res::NetworkPolicies) == 1
        })
        .await;
    let watches = watches_of(&server, Res::NetworkPolicies);
    assert_eq!(
        watches.len(),
        3,
        "watch, re-watch (410), watch after relist"
    );
    assert_eq!(
        watches[0].param("resourceVersion"),
        watches[1].param("resourceVersion")
    );
}

#[tokio::test]
async fn a_dropped_watch_is_resumed_from_the_last_resource_version() {
    let server = FakeApiServer::start().await;
    let (mut source, _) = synced(&server, Duration::from_millis(50)).await;
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;

    // A pod event, then other kinds move the resourceVersion on and a
    // bookmark tells the pod watch about it.
    server.apply(Res::Pods, new_pod("shop", "web-a", "web", "10.244.1.50"));
    server.modify(Res::Namespaces, "", "default", with_label("touched", "yes"));
    // The first change is sent at once, the second in a batch of its own.
    let expected = View::expected(&server);
    source.snapshots_until(PATIENCE, |v| *v == expected).await;
    let bookmark_rv = server.bookmark(Res::Pods);

    // The connection drops in the middle of the chunked stream (no final
    // chunk); a pod is added while the source is away.
    let pod_lists = lists_of(&server, Res::Pods);
    server.close_watches(Res::Pods, true);
    server.apply(Res::Pods, new_pod("shop", "web-b", "web", "10.244.1.51"));
    let view = source
        .snapshots_until(PATIENCE, |v| v.pods.contains_key("shop/web-b"))
        .await
        .pop()
        .unwrap();
    assert_eq!(view, View::expected(&server));
    server
        .wait_for("a new pod watch", PATIENCE, |s| {
            s.watch_count(Res::Pods) == 1
        })
        .await;
    let watches = watches_of(&server, Res::Pods);
    assert_eq!(watches.len(), 2);
    assert_eq!(
        watches[1].param("resourceVersion"),
        Some(bookmark_rv.to_string().as_str()),
        "resumed from the bookmark"
    );
    assert_eq!(lists_of(&server, Res::Pods), pod_lists, "no relist");

    // Later events still arrive.
    server.delete(Res::Pods, "shop", "web-a");
    let view = source.next_snapshot(PATIENCE).await;
    assert_eq!(view, View::expected(&server));
    assert!(!view.pods.contains_key("shop/web-a"));

    // A clean end of a watch (as at timeoutSeconds) is resumed as well,
    // from the last event's resourceVersion.
    let namespace_rv = server.modify(
        Res::Namespaces,
        "",
        "default",
        with_label("touched", "again"),
    );
    let view = source.next_snapshot(PATIENCE).await;
    assert_eq!(view, View::expected(&server));
    server.close_watches(Res::Namespaces, false);
    server
        .wait_for("a new namespace watch", PATIENCE, |s| {
            watches_of(s, Res::Namespaces).len() == 2
        })
        .await;
    assert_eq!(
        watches_of(&server, Res::Namespaces)[1].param("resourceVersion"),
        Some(namespace_rv.to_string().as_str())
    );
    let blog = json!({
        "metadata": {"name": "blog", "labels": {"kubernetes.io/metadata.name": "blog"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    });
    server.apply(Res::Namespaces, blog);
    let view = source.next_snapshot(PATIENCE).await;
    assert_eq!(view, View::expected(&server));
    assert!(view.namespaces.contains_key("blog"));
    assert_eq!(lists_of(&server, Res::Namespaces), 1, "no relist");
    // kube 5 takes a connection dropped in the middle of the chunked body
    // for the end of the watch, not an error.
    assert!(source.errors.is_empty(), "{:?}", source.errors);
}

#[tokio::test]
async fn watcher_errors_are_sent_as_errors_and_retried() {
    let server = FakeApiServer::start().await;
    // The service account may not list namespaces yet (RBAC still being
    // applied): the first list is forbidden.
    server.fail_next_list(
        Res::Namespaces,
        403,
        "Forbidden",
        "namespaces is forbidden: User \"system:serviceaccount:netpol:netpol-agent\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
    );
    let mut source = Source::start(&server, Duration::from_millis(50));
    match source.next(PATIENCE).await {
        SourceEvent::Error(message) => {
            assert!(
                message.contains("namespaces") && message.contains("forbidden"),
                "{message}"
            );
        }
        other => panic!("expected the error before any snapshot, got {other:?}"),
    }
    // Retried after the backoff; then the first snapshot.
    let first = source.next_snapshot(PATIENCE).await;
    assert_eq!(first, View::expected(&server));
    assert_eq!(lists_of(&server, Res::Namespaces), 2);

    // A watch that ends with an ERROR event other than 410: reported, and
    // the watch resumes from where it was.
    server
        .wait_for("three watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;
    server.fail_watches(
        Res::NetworkPolicies,
        500,
        "InternalError",
        "Internal error occurred: etcd leader changed",
    );
    match source.next(PATIENCE).await {
        SourceEvent::Error(message) => {
            assert!(
                message.contains("networkpolicies") && message.contains("etcd leader changed"),
                "{message}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    server.modify(Res::NetworkPolicies, "shop", "default-deny", |np| {
        np["spec"]["policyTypes"] = json!(["Ingress"]);
    });
    let view = source.next_snapshot(PATIENCE).await;
    assert_eq!(view, View::expected(&server));
    let types = view.policies["shop/default-deny"]
        .spec
        .as_ref()
        .unwrap()
        .policy_types
        .clone();
    assert_eq!(types, Some(vec!["Ingress".to_string()]));
    assert_eq!(
        lists_of(&server, Res::NetworkPolicies),
        1,
        "resumed, not relisted"
    );
    assert!(source.errors.is_empty(), "{:?}", source.errors);
}

/// What the agent does with the source: its first snapshot is planned,
/// then every batch of changes is followed in place.
struct Agent {
    source: Source,
    planner: Planner,
    /// What the source has told so far.
    view: Option<View>,
    /// Batches of changes planned.
    batches: usize,
}

impl Agent {
    fn start(server: &FakeApiServer, options: KubeSourceOptions) -> Agent {
        Agent {
            source: Source::start_with(server, options),
            planner: Planner::new("worker-1", Config::default(), OnUnreadable::KeepLastGood),
            view: None,
            batches: 0,
        }
    }

    /// Plans the source's events until it has told the server's current
    /// objects; returns the last plan made, if any was needed. Source
    /// errors are recorded in `source.errors`.
    async fn catch_up(&mut self, server: &FakeApiServer) -> Option<Plan> {
        let expected = View::expected(server);
        let mut last = None;
        while self.view.as_ref() != Some(&expected) {
            let plan = match self.source.next(PATIENCE).await {
                SourceEvent::Snapshot(Inputs::Objects(objects)) => {
                    assert!(self.view.is_none(), "a second snapshot");
                    self.view = Some(View::from_objects(objects.clone().unpack().unwrap()));
                    self.planner.plan(Inputs::Objects(objects)).unwrap()
                }
                SourceEvent::Changes(changes) => {
                    self.batches += 1;
                    let view = self.view.as_mut().expect("changes before the snapshot");
                    view.follow(changes.clone());
                    self.planner.plan_changes(changes).unwrap()
                }
                SourceEvent::Error(message) => {
                    self.source.errors.push(message);
                    continue;
                }
                other => panic!("{other:?}"),
            };
            last = Some(plan);
        }
        last
    }

    /// [`Agent::catch_up`], then checks that the planner holds what
    /// planning the server's objects afresh gives.
    async fn catch_up_as_fresh(&mut self, server: &FakeApiServer, what: &str) -> Option<Plan> {
        let last = self.catch_up(server).await;
        let expected = View::expected(server);
        let mut fresh = Planner::new("worker-1", Config::default(), OnUnreadable::KeepLastGood);
        let planned = fresh
            .plan(Inputs::Objects(expected.objects().into_iter().collect()))
            .unwrap();
        let following = self.planner.model().unwrap();
        assert_eq!(
            following.cluster(),
            fresh.model().unwrap().cluster(),
            "after {what}"
        );
        let followed = self.planner.plan_changes(Vec::new()).unwrap();
        assert_eq!(
            followed.ruleset.element_count(),
            planned.ruleset.element_count(),
            "after {what}"
        );
        assert_eq!(
            followed.ruleset.group_count(),
            planned.ruleset.group_count(),
            "after {what}"
        );
        assert_eq!(followed.errors.len(), planned.errors.len(), "after {what}");
        last
    }

    /// The admin-tier policies of the planner's model, as `Kind name`.
    fn admin_policies(&self) -> Vec<String> {
        let cluster = self.planner.model().unwrap().cluster();
        cluster
            .admin_policies
            .iter()
            .map(|p| p.reference())
            .collect()
    }

    /// What the planner's model answers for `from` → `to` on TCP `port`.
    fn allows(&self, from: &str, to: &str, port: u16) -> bool {
        let model = self.planner.model().unwrap();
        let end =
            |name: &str| QueryEndpoint::Endpoint(model.cluster().find_endpoint(name).unwrap());
        let verdict = model.query(end(from), end(to), &PortQuery::Number(port), Protocol::Tcp);
        verdict.unwrap().allowed()
    }
}

/// After each step the planner following the source must hold what
/// planning the server's objects afresh gives.
#[tokio::test]
async fn a_planner_following_the_source_agrees_with_planning_the_server_afresh() {
    let server = FakeApiServer::start().await;
    let options = KubeSourceOptions {
        debounce: Duration::from_millis(30),
        ..KubeSourceOptions::default()
    };
    let mut agent = Agent::start(&server, options);
    agent.catch_up_as_fresh(&server, "the first snapshot").await;
    server
        .wait_for("four watches", PATIENCE, |s| {
            Res::WATCHED.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;

    server.apply(Res::Pods, new_pod("shop", "web-new", "web", "10.244.1.40"));
    agent.catch_up_as_fresh(&server, "a new pod").await;
    server.modify(Res::Pods, "shop", "web-new", with_label("app", "db"));
    agent.catch_up_as_fresh(&server, "a relabelled pod").await;
    server.delete(Res::Pods, "shop", "db-0");
    agent.catch_up_as_fresh(&server, "a deleted pod").await;
    server.modify(
        Res::Namespaces,
        "",
        "shop",
        with_label("ingress", "allowed"),
    );
    agent
        .catch_up_as_fresh(&server, "a relabelled namespace")
        .await;
    server.delete(Res::NetworkPolicies, "shop", "db-from-web");
    agent.catch_up_as_fresh(&server, "a deleted policy").await;
    server.apply(
        Res::Pods,
        new_pod("blog", "writer", "writer", "10.244.1.41"),
    );
    agent
        .catch_up_as_fresh(&server, "a pod in a new namespace")
        .await;
    server.delete(Res::Pods, "blog", "writer");
    agent
        .catch_up_as_fresh(&server, "that namespace emptied")
        .await;
    // A relist after 410 Gone, with a pod deleted and one added meanwhile.
    server.expire_watches(Res::Pods);
    server.delete(Res::Pods, "shop", "web-new");
    server.apply(
        Res::Pods,
        new_pod("shop", "web-later", "web", "10.244.1.42"),
    );
    agent.catch_up_as_fresh(&server, "a pod relist").await;
    assert!(agent.batches >= 8, "{} batches", agent.batches);
}

/// An admin-tier object as `kubectl apply` would send it.
fn admin_policy(name: &str, spec: Value) -> Value {
    json!({
        "metadata": {
            "name": name,
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "policy.networking.k8s.io/v1alpha1",
                "time": "2025-03-06T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {}}
            }]
        },
        "spec": spec,
    })
}

/// An AdminNetworkPolicy that decides web → db on 5432 with `action`.
fn guard_db(action: &str) -> Value {
    admin_policy(
        "guard-db",
        json!({
            "priority": 10,
            "subject": {"pods": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                "podSelector": {"matchLabels": {"app": "db"}}}},
            "ingress": [{
                "name": "web-to-db",
                "action": action,
                "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}}],
                "ports": [{"portNumber": {"protocol": "TCP", "port": 5432}}]}],
        }),
    )
}

fn baseline() -> Value {
    admin_policy(
        "default",
        json!({
            "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
        }),
    )
}

fn dns_egress(priority: u32) -> Value {
    admin_policy(
        "dns",
        json!({
            "tier": "Admin",
            "priority": priority,
            "subject": {"namespaces": {}},
            "egress": [{
                "action": "Accept",
                "to": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                "protocols": [{"udp": {"destinationPort": {"number": 53}}}]}],
        }),
    )
}

const WEB: &str = "shop/web-6f8d7c9b5-x2k4p";
const DB: &str = "shop/db-0";
const V1ALPHA1: &str = "/apis/policy.networking.k8s.io/v1alpha1";
const V1ALPHA2: &str = "/apis/policy.networking.k8s.io/v1alpha2";

fn discoveries_of(server: &FakeApiServer, path: &str) -> usize {
    (server.discovery_requests().iter())
        .filter(|p| *p == path)
        .count()
}

/// Where no admin-tier CRD is installed, the source syncs and the agent
/// enforces NetworkPolicies as before: no error, nothing listed or
/// watched for them, and discovery asked again once per interval, not in a
/// loop, without a word to the agent.
#[tokio::test]
async fn without_the_admin_crds_the_agent_syncs_and_asks_discovery_now_and_then() {
    let server = FakeApiServer::start().await;
    let interval = Duration::from_millis(300);
    let options = KubeSourceOptions {
        debounce: Duration::from_millis(30),
        discovery_interval: interval,
    };
    let mut agent = Agent::start(&server, options);
    let plan = agent
        .catch_up_as_fresh(&server, "the first snapshot")
        .await
        .expect("a plan");
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!((plan.counts.policies, plan.counts.admin_policies), (4, 0));
    assert!(agent.admin_policies().is_empty());
    // The NetworkPolicies decide: db takes web on 5432 only.
    assert!(agent.allows(WEB, DB, 5432));
    assert!(!agent.allows(WEB, DB, 80));
    // One discovery request per group version answered both kinds of it.
    assert_eq!(discoveries_of(&server, V1ALPHA1), 1);
    assert_eq!(discoveries_of(&server, V1ALPHA2), 1);

    // Asked again every interval, and nothing is sent meanwhile.
    agent.source.assert_quiet_for(interval * 4).await;
    let asked = discoveries_of(&server, V1ALPHA1);
    assert!((2..=8).contains(&asked), "{asked} discoveries of v1alpha1");
    // (Either may have been asked once more by the time both are read.)
    let other = discoveries_of(&server, V1ALPHA2);
    assert!(other.abs_diff(asked) <= 1, "{asked} and {other}");
    assert!(agent.source.errors.is_empty(), "{:?}", agent.source.errors);
    assert!(
        !server.requests().iter().any(|r| r.res.custom()),
        "no list or watch of an unserved kind"
    );
}

/// A discovery request that fails other than with 404 is sent as an
/// error and retried; until it is answered, the initial sync waits (the
/// kind may be served, with policies that must be enforced).
#[tokio::test]
async fn a_failed_discovery_is_sent_as_an_error_and_retried() {
    let server = FakeApiServer::start().await;
    // (kube's client retries 429, 503 and 504 by itself.)
    server.fail_next_discovery(
        V1ALPHA2,
        500,
        "InternalError",
        "Internal error occurred: the server is currently unable to handle the request",
    );
    let mut source = Source::start(&server, Duration::from_millis(30));
    match source.next(PATIENCE).await {
        SourceEvent::Error(message) => {
            assert!(
                message.contains("watching clusternetworkpolicies: discovery failed")
                    && message.contains("unable to handle the request"),
                "{message}"
            );
        }
        other => panic!("expected the error before any snapshot, got {other:?}"),
    }
    let first = source.next_snapshot(PATIENCE).await;
    assert_eq!(first, View::expected(&server));
    assert_eq!(discoveries_of(&server, V1ALPHA2), 2, "retried once");
    assert!(source.errors.is_empty(), "{:?}", source.errors);
}

/// Where the CRDs are installed, the admin-tier policies listed at start
/// and every one added, modified or deleted later reach the planner's
/// model, which answers with them.
#[tokio::test]
async fn admin_policies_are_listed_and_watched_where_their_crds_are_installed() {
    let server = FakeApiServer::start().await;
    for res in Res::ADMIN {
        server.serve(res);
    }
    server.apply(Res::AdminNetworkPolicies, guard_db("Deny"));
    server.apply(Res::BaselineAdminNetworkPolicies, baseline());
    server.apply(Res::ClusterNetworkPolicies, dns_egress(5));
    let options = KubeSourceOptions {
        debounce: Duration::from_millis(30),
        ..KubeSourceOptions::default()
    };
    let mut agent = Agent::start(&server, options);
    let plan = agent
        .catch_up_as_fresh(&server, "the first snapshot")
        .await
        .expect("a plan");
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert_eq!(plan.counts.admin_policies, 3);
    assert_eq!(
        agent.admin_policies(),
        [
            "ClusterNetworkPolicy dns",
            "AdminNetworkPolicy guard-db",
            "BaselineAdminNetworkPolicy default"
        ]
    );
    // The view holds each object as the server does, without managedFields.
    let view = agent.view.as_ref().unwrap();
    let banp = &view.admin["BaselineAdminNetworkPolicy/default"];
    assert_eq!(banp["apiVersion"], "policy.networking.k8s.io/v1alpha1");
    assert!(banp["metadata"].get("managedFields").is_none());
    // The admin tier decides before the NetworkPolicy that allows it.
    assert!(!agent.allows(WEB, DB, 5432));
    // Each group version was asked once.
    assert_eq!(discoveries_of(&server, V1ALPHA1), 1);
    assert_eq!(discoveries_of(&server, V1ALPHA2), 1);
    server
        .wait_for("the admin-tier watches", PATIENCE, |s| {
            Res::ADMIN.iter().all(|&r| s.watch_count(r) == 1)
        })
        .await;

    // Added.
    let mut other = guard_db("Deny");
    other["metadata"]["name"] = json!("guard-db-later");
    other["spec"]["priority"] = json!(20);
    server.apply(Res::AdminNetworkPolicies, other);
    let plan = agent
        .catch_up_as_fresh(&server, "an added ANP")
        .await
        .unwrap();
    assert_eq!(
        plan.model_update.and_then(|u| u.rebuilt),
        Some(RebuildReason::AdminPolicies)
    );
    assert!(
        (agent.admin_policies().iter()).any(|p| p == "AdminNetworkPolicy guard-db-later"),
        "{:?}",
        agent.admin_policies()
    );
    // Modified: the first one now allows, and decides first.
    server.modify(Res::AdminNetworkPolicies, "", "guard-db", |anp| {
        anp["spec"]["ingress"][0]["action"] = json!("Allow");
    });
    agent.catch_up_as_fresh(&server, "a modified ANP").await;
    assert!(agent.allows(WEB, DB, 5432));
    server.modify(Res::ClusterNetworkPolicies, "", "dns", |cnp| {
        cnp["spec"]["priority"] = json!(50);
    });
    agent.catch_up_as_fresh(&server, "a modified CNP").await;
    let model = agent.planner.model().unwrap();
    let dns = (model.cluster().admin_policies.iter())
        .find(|p| p.name == "dns")
        .unwrap();
    assert_eq!(dns.priority, Some(50));
    // Deleted.
    server.delete(Res::BaselineAdminNetworkPolicies, "", "default");
    agent.catch_up_as_fresh(&server, "a deleted BANP").await;
    server.delete(Res::AdminNetworkPolicies, "", "guard-db");
    agent.catch_up_as_fresh(&server, "a deleted ANP").await;
    assert_eq!(
        agent.admin_policies(),
        [
            "AdminNetworkPolicy guard-db-later",
            "ClusterNetworkPolicy dns"
        ]
    );
    assert!(!agent.allows(WEB, DB, 5432), "guard-db-later decides now");
    assert!(agent.source.errors.is_empty(), "{:?}", agent.source.errors);
    assert!(agent.batches >= 5, "{} batches", agent.batches);
}

/// An admin-tier object the API server would refuse (netpol checks what
/// its CRD schema and CEL rules say; this fake server checks nothing) is
/// reported as the loader reports a manifest and left out; one that
/// becomes invalid is enforced in its last good version, as other
/// unreadable objects are.
#[tokio::test]
async fn an_invalid_admin_policy_is_reported_and_left_out() {
    let server = FakeApiServer::start().await;
    for res in Res::ADMIN {
        server.serve(res);
    }
    let mut invalid = guard_db("Deny");
    invalid["spec"]["priority"] = json!(5000);
    server.apply(Res::AdminNetworkPolicies, invalid);
    server.apply(Res::ClusterNetworkPolicies, dns_egress(5));
    let options = KubeSourceOptions {
        debounce: Duration::from_millis(30),
        ..KubeSourceOptions::default()
    };
    let mut agent = Agent::start(&server, options);
    let plan = agent.catch_up(&server).await.expect("a plan");
    let errors: Vec<(String, String)> = (plan.errors.iter())
        .map(|d| (d.object.as_ref().unwrap().to_string(), d.field.to_string()))
        .collect();
    assert_eq!(
        errors,
        [(
            "AdminNetworkPolicy guard-db".to_string(),
            "spec.priority".to_string()
        )]
    );
    assert!(plan.kept_last_good.is_empty(), "nothing to keep yet");
    assert_eq!(agent.admin_policies(), ["ClusterNetworkPolicy dns"]);
    assert!(agent.allows(WEB, DB, 5432), "the invalid ANP is left out");

    // A valid policy turned invalid: reported, its last good version kept.
    server.modify(Res::ClusterNetworkPolicies, "", "dns", |cnp| {
        cnp["spec"]["tier"] = json!("Middle");
    });
    let plan = agent.catch_up(&server).await.expect("a plan");
    let mut objects: Vec<String> = (plan.errors.iter())
        .map(|d| d.object.as_ref().unwrap().to_string())
        .collect();
    objects.sort();
    assert_eq!(
        objects,
        ["AdminNetworkPolicy guard-db", "ClusterNetworkPolicy dns"]
    );
    assert_eq!(
        (plan.kept_last_good.iter())
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["ClusterNetworkPolicy dns"]
    );
    assert_eq!(agent.admin_policies(), ["ClusterNetworkPolicy dns"]);
    // Fixed: it decides.
    server.modify(Res::AdminNetworkPolicies, "", "guard-db", |anp| {
        anp["spec"]["priority"] = json!(10);
    });
    let plan = agent.catch_up(&server).await.expect("a plan");
    assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
    assert!(!agent.allows(WEB, DB, 5432));
    assert!(agent.source.errors.is_empty(), "{:?}", agent.source.errors);
}

/// A CRD installed after the agent started is found by the next discovery
/// and its objects enforced; when it is removed (its list and watch answer
/// 404), its objects are dropped and discovery takes over again.
#[tokio::test]
async fn a_crd_installed_later_is_picked_up_and_one_removed_is_dropped() {
    let server = FakeApiServer::start().await;
    let interval = Duration::from_millis(300);
    let options = KubeSourceOptions {
        debounce: Duration::from_millis(30),
        discovery_interval: interval,
    };
    let mut agent = Agent::start(&server, options);
    agent.catch_up_as_fresh(&server, "the first snapshot").await;
    assert!(agent.admin_policies().is_empty());

    let installed = Instant::now();
    server.serve(Res::AdminNetworkPolicies);
    server.apply(Res::AdminNetworkPolicies, guard_db("Deny"));
    agent
        .catch_up_as_fresh(&server, "the ANP CRD installed")
        .await
        .expect("a plan");
    assert!(
        installed.elapsed() < interval + PATIENCE,
        "{:?}",
        installed.elapsed()
    );
    assert_eq!(agent.admin_policies(), ["AdminNetworkPolicy guard-db"]);
    assert!(!agent.allows(WEB, DB, 5432));
    server
        .wait_for("the ANP watch", PATIENCE, |s| {
            s.watch_count(Res::AdminNetworkPolicies) == 1
        })
        .await;
    server.modify(Res::AdminNetworkPolicies, "", "guard-db", |anp| {
        anp["spec"]["priority"] = json!(11);
    });
    agent.catch_up_as_fresh(&server, "a watched change").await;

    // Removed: the re-watch answers 404, and the objects go.
    server.stop_serving(Res::AdminNetworkPolicies);
    agent
        .catch_up_as_fresh(&server, "the ANP CRD removed")
        .await
        .expect("a plan");
    assert!(agent.admin_policies().is_empty());
    assert!(agent.allows(WEB, DB, 5432));
    // Nothing more is sent while it stays away.
    agent.source.assert_quiet_for(interval * 3).await;
    assert!(agent.source.errors.is_empty(), "{:?}", agent.source.errors);

    // And back again.
    server.serve(Res::AdminNetworkPolicies);
    agent
        .catch_up_as_fresh(&server, "the ANP CRD reinstalled")
        .await;
    assert_eq!(agent.admin_policies(), ["AdminNetworkPolicy guard-db"]);
    assert!(agent.source.errors.is_empty(), "{:?}", agent.source.errors);
}

#[tokio::test]
async fn run_returns_when_the_receiver_is_dropped() {
    let server = FakeApiServer::start().await;
    let (source, _) = synced(&server, Duration::from_millis(50)).await;
    let Source { events, task, .. } = source;
    drop(events);
    let result = tokio::time::timeout(PATIENCE, task)
        .await
        .expect("run returns")
        .unwrap();
    assert_eq!(result, Ok(()));
}

#[test]
fn options_default_to_a_200_ms_debounce() {
    assert_eq!(
        KubeSourceOptions::default().debounce,
        Duration::from_millis(200)
    );
    let error = KubeSourceError::WatchEnded;
    assert_eq!(
        error.to_string(),
        "the Kubernetes watch streams ended unexpectedly"
    );
}
