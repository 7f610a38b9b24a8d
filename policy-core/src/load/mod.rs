//! Loading manifests into a [`Cluster`].
//!
//! The [`Loader`] takes source texts (YAML streams or JSON) or typed
//! k8s-openapi objects, and produces a [`Cluster`] plus [`Diagnostic`]s. It
//! never stops at the first problem: every document is read, and each
//! diagnostic names its file, line and field.
//!
//! What is kept when something is wrong:
//! - a NetworkPolicy the API server would reject is left out of the model,
//!   because it cannot exist in a cluster;
//! - other objects are kept, without the fields that cannot be read;
//! - unknown fields are reported as errors (`kubectl` rejects them), and the
//!   object is read without them, as an API server in `Warn` field-validation
//!   mode stores it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Node as K8sNode;
use k8s_openapi::api::core::v1::{
    Namespace as K8sNamespace, Pod, PodSpec, PodTemplateSpec, ReplicationController,
    Service as K8sService,
};
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sEndpointSlice;
use k8s_openapi::api::networking::v1::{
    Ingress as K8sIngress, IngressClass as K8sIngressClass, NetworkPolicy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::admin::{AdminKind, AdminObject, AdminPolicy};
use crate::cluster::{
    Cluster, ContainerPort, Endpoint, EndpointKind, NAMESPACE_NAME_LABEL, Namespace, Owner,
    Service, WorkloadKind,
};
use crate::decode::{DecodeError, UnknownField, decode_lean};
use crate::diagnostic::{Diagnostic, DiagnosticKind, ObjectRef, Severity, SourceLocation};
use crate::labels::{LabelInterner, Labels};
use crate::path::{FieldPath, PathStep};
use crate::policy::Policy;
use crate::ports::Protocol;
use crate::validate;
use crate::yaml::{Node, Value, for_each_document};

mod admin_json;
mod network;

pub use admin_json::{AdminJson, AdminJsonError};

/// A Kubernetes object the loader understands: typed, or for the admin-tier
/// custom resources, which k8s-openapi has no types for, JSON text
/// ([`AdminJson`]).
#[derive(Clone, Debug)]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Object {
    Namespace(K8sNamespace),
    Pod(Pod),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    ReplicaSet(ReplicaSet),
    ReplicationController(ReplicationController),
    Job(Job),
    CronJob(CronJob),
    Service(K8sService),
    NetworkPolicy(NetworkPolicy),
    Node(K8sNode),
    EndpointSlice(K8sEndpointSlice),
    Ingress(K8sIngress),
    IngressClass(K8sIngressClass),
    /// An AdminNetworkPolicy, BaselineAdminNetworkPolicy or
    /// ClusterNetworkPolicy, read as a manifest of its text would be.
    Admin(AdminJson),
}

macro_rules! object_from {
    ($($variant:ident => $type:ty),* $(,)?) => {
        $(impl From<$type> for Object {
            fn from(object: $type) -> Self {
                Object::$variant(object)
            }
        })*
    };
}

object_from! {
    Namespace => K8sNamespace,
    Pod => Pod,
    Deployment => Deployment,
    StatefulSet => StatefulSet,
    DaemonSet => DaemonSet,
    ReplicaSet => ReplicaSet,
    ReplicationController => ReplicationController,
    Job => Job,
    CronJob => CronJob,
    Service => K8sService,
    NetworkPolicy => NetworkPolicy,
    Node => K8sNode,
    EndpointSlice => K8sEndpointSlice,
    Ingress => K8sIngress,
    IngressClass => K8sIngressClass,
    Admin => AdminJson,
}

impl Object {
    /// Kind, namespace and name, as the loader tells duplicates apart: the
    /// namespace is empty for cluster-scoped kinds and `default` for a
    /// namespaced object that names none. `None` without a name.
    pub fn identity(&self) -> Option<ObjectRef> {
        identity_of(self).map(|(kind, namespace, name)| ObjectRef {
            kind,
            namespace,
            name,
        })
    }
}

/// The result of loading: the cluster and everything worth telling the user.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The cluster.
    pub cluster: Cluster,
    /// Problems and notes, in input order.
    pub diagnostics: Vec<Diagnostic>,
    /// Documents that were read but are not part of the model, counted by
    /// `Kind (apiVersion)` or by reason.
    pub skipped: BTreeMap<String, usize>,
    /// Lint rules each object allows (opts out of), from its
    /// [`ALLOW_ANNOTATION`] annotation: rule codes such as `NP004`, or `all`.
    pub allowances: BTreeMap<ObjectRef, Vec<String>>,
}

/// The annotation that turns lint rules off for one object:
/// `netpol.dev/allow: "NP004, NP009"`.
pub const ALLOW_ANNOTATION: &str = "netpol.dev/allow";

impl Loaded {
    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Builds a [`Cluster`] from manifests. See the module documentation.
#[derive(Clone, Default)]
pub struct Loader {
    diagnostics: Vec<Diagnostic>,
    skipped: BTreeMap<String, usize>,
    namespaces: Vec<Namespace>,
    pods: Vec<Endpoint>,
    workloads: Vec<Endpoint>,
    services: Vec<Service>,
    policies: Vec<Policy>,
    admin_policies: Vec<AdminPolicy>,
    nodes: Vec<crate::cluster::Node>,
    endpoint_slices: Vec<crate::cluster::EndpointSlice>,
    ingresses: Vec<crate::cluster::Ingress>,
    ingress_classes: Vec<crate::cluster::IngressClass>,
    seen: HashMap<(String, String, String), Option<SourceLocation>>,
    allowances: BTreeMap<ObjectRef, Vec<String>>,
    /// Objects read from a running cluster, merged under the manifests at
    /// [`Loader::finish`].
    live: Vec<Object>,
    /// Indices into `workloads` and `pods` of the objects that came from `live`.
    live_workloads: HashSet<usize>,
    live_pods: HashSet<usize>,
    /// Indices into `workloads` of those with `spec.replicas: 0`: they have
    /// no pods to stand for.
    scaled_to_zero: HashSet<usize>,
    /// One shared copy of each distinct label string and label set read.
    labels: LabelInterner,
}

/// One file read on its own by [`Loader::read_file`]: what loading its text
/// adds, kept to add again without parsing.
#[derive(Clone)]
pub struct LoadedFile(Loader);

/// Where an object was read from, to locate its fields.
pub(super) struct Origin<'a> {
    file: &'a Arc<str>,
    node: &'a Node,
}

impl Origin<'_> {
    fn locate(&self, path: &FieldPath) -> SourceLocation {
        SourceLocation {
            file: self.file.clone(),
            location: path.locate(self.node),
        }
    }
}

/// The API versions each kind is served at; the first is current, the
/// others are removed versions read as the current one, with a warning.
const KINDS: &[(&str, &[&str])] = &[
    ("Namespace", &["v1"]),
    ("Pod", &["v1"]),
    ("Service", &["v1"]),
    ("ReplicationController", &["v1"]),
    (
        "Deployment",
        &[
            "apps/v1",
            "apps/v1beta2",
            "apps/v1beta1",
            "extensions/v1beta1",
        ],
    ),
    ("StatefulSet", &["apps/v1", "apps/v1beta2", "apps/v1beta1"]),
    (
        "DaemonSet",
        &["apps/v1", "apps/v1beta2", "extensions/v1beta1"],
    ),
    (
        "ReplicaSet",
        &["apps/v1", "apps/v1beta2", "extensions/v1beta1"],
    ),
    ("Job", &["batch/v1"]),
    ("CronJob", &["batch/v1", "batch/v1beta1", "batch/v2alpha1"]),
    (
        "NetworkPolicy",
        &["networking.k8s.io/v1", "extensions/v1beta1"],
    ),
    ("Node", &["v1"]),
    ("EndpointSlice", &["discovery.k8s.io/v1"]),
    ("Ingress", &["networking.k8s.io/v1"]),
    ("IngressClass", &["networking.k8s.io/v1"]),
    // Each served at one version only; kubernetes-sigs/network-policy-api
    // never served ANP or BANP at v1alpha2, nor CNP at v1alpha1.
    ("AdminNetworkPolicy", &["policy.networking.k8s.io/v1alpha1"]),
    (
        "BaselineAdminNetworkPolicy",
        &["policy.networking.k8s.io/v1alpha1"],
    ),
    (
        "ClusterNetworkPolicy",
        &["policy.networking.k8s.io/v1alpha2"],
    ),
];

impl Loader {
    /// An empty loader.
    pub fn new() -> Self {
        Loader::default()
    }

    /// Reads every document of a YAML stream or JSON text. `name` is how
    /// diagnostics refer to the source (a path, or `-` for standard input).
    pub fn load_str(&mut self, name: &str, text: &str) {
        let file: Arc<str> = Arc::from(name);
        // Documents are loaded as they are parsed, so only a batch of trees
        // is alive at a time.
        for_each_document(text, |document| match document {
            Ok(node) => self.load_node(&file, &node, None, &FieldPath::root()),
            Err(error) => {
                let mut diagnostic =
                    Diagnostic::new(Severity::Error, DiagnosticKind::Syntax, error.message)
                        .with_source(Some(SourceLocation {
                            file: file.clone(),
                            location: error.location,
                        }));
                if error.fatal {
                    diagnostic = diagnostic.with_help(
                        "the parser cannot recover; the rest of this document was not read",
                    );
                }
                self.diagnostics.push(diagnostic);
            }
        });
    }

    /// Reads one file on its own, to add with [`Loader::add_file`] to this
    /// and later loads while its text stays the same: a program that
    /// reloads a directory parses only the files that changed.
    pub fn read_file(name: &str, text: &str) -> LoadedFile {
        let mut loader = Loader::new();
        loader.load_str(name, text);
        // What it read keeps its shared labels; the index of them is only
        // needed while reading.
        loader.labels = LabelInterner::default();
        LoadedFile(loader)
    }

    /// Adds a file read with [`Loader::read_file`]: the same as
    /// [`Loader::load_str`] of its text at this point, except when one of
    /// its objects has the same identity as an object already added. Then
    /// nothing is added and `Err` names the first such object, so the
    /// caller can load the texts in order to have the duplicate reported
    /// where it occurs.
    pub fn add_file(&mut self, file: &LoadedFile) -> Result<(), ObjectRef> {
        let part = &file.0;
        if let Some((kind, namespace, name)) =
            part.seen.keys().find(|key| self.seen.contains_key(*key))
        {
            return Err(ObjectRef {
                kind: kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            });
        }
        self.diagnostics.extend(part.diagnostics.iter().cloned());
        for (reason, count) in &part.skipped {
            *self.skipped.entry(reason.clone()).or_insert(0) += count;
        }
        self.namespaces.extend(part.namespaces.iter().cloned());
        self.pods.extend(part.pods.iter().cloned());
        let offset = self.workloads.len();
        self.workloads.extend(part.workloads.iter().cloned());
        self.scaled_to_zero
            .extend(part.scaled_to_zero.iter().map(|index| index + offset));
        self.services.extend(part.services.iter().cloned());
        self.policies.extend(part.policies.iter().cloned());
        self.admin_policies
            .extend(part.admin_policies.iter().cloned());
        self.nodes.extend(part.nodes.iter().cloned());
        self.endpoint_slices
            .extend(part.endpoint_slices.iter().cloned());
        self.ingresses.extend(part.ingresses.iter().cloned());
        self.ingress_classes
            .extend(part.ingress_classes.iter().cloned());
        self.seen
            .extend(part.seen.iter().map(|(key, at)| (key.clone(), at.clone())));
        self.allowances.extend(
            part.allowances
                .iter()
                .map(|(key, at)| (key.clone(), at.clone())),
        );
        Ok(())
    }

    /// Adds a typed object (for programs that build objects themselves).
    pub fn add(&mut self, object: impl Into<Object>) {
        self.add_object(object.into(), None, None);
    }

    /// Adds an object read from a running cluster: observed state, where
    /// manifests are desired state. At [`Loader::finish`], live objects sit
    /// under the manifests the way `kubectl apply` would put the manifests
    /// on the cluster:
    ///
    /// - a manifest object with the same kind, namespace and name replaces
    ///   the live one (counted in [`Loaded::skipped`]);
    /// - a live workload never stands for pods: the cluster's Pod objects
    ///   are the truth, so a Deployment scaled to zero or a finished Job has
    ///   no endpoint;
    /// - a live pod whose controller chain (Pod → ReplicaSet → Deployment,
    ///   Pod → Job → CronJob, ...) reaches a workload given as a manifest
    ///   takes that manifest's pod template (labels, container ports,
    ///   `hostNetwork`), as it would after the rollout; its name, node and
    ///   addresses stay, so connections are compared pod by pod;
    /// - a manifest workload with no live pods stands for its pods, as
    ///   without a cluster.
    pub fn add_live(&mut self, object: impl Into<Object>) {
        self.live.push(object.into());
    }

    fn load_node(
        &mut self,
        file: &Arc<str>,
        node: &Node,
        list_item_of: Option<(&str, &str)>,
        list_path: &FieldPath,
    ) {
        let source = SourceLocation {
            file: file.clone(),
            location: node.location,
        };
        if !matches!(node.value, Value::Mapping(_)) {
            self.diagnostics.push(
                Diagnostic::new(
                    Severity::Warning,
                    DiagnosticKind::NotAnObject,
                    format!(
                        "skipped a document that is {}, not a Kubernetes object",
                        node.type_name()
                    ),
                )
                .with_source(Some(source))
                .with_field(list_path.clone()),
            );
            return;
        }
        let kind = node
            .get("kind")
            .and_then(Node::as_str)
            .or(list_item_of.map(|(kind, _)| kind));
        let api_version = node
            .get("apiVersion")
            .and_then(Node::as_str)
            .or(list_item_of.map(|(_, version)| version));
        let (Some(kind), Some(api_version)) = (kind, api_version) else {
            self.diagnostics.push(
                Diagnostic::new(
                    Severity::Warning,
                    DiagnosticKind::NotAnObject,
                    "skipped a document without `apiVersion` and `kind`: it is not a Kubernetes object",
                )
                .with_source(Some(source))
                .with_field(list_path.clone()),
            );
            *self
                .skipped
                .entry("not a Kubernetes object".to_string())
                .or_insert(0) += 1;
            return;
        };

        // `kind: List` and typed lists (`PodList`, ...) as `kubectl get -o yaml` prints them.
        if let Some(Value::Sequence(items)) = node.get("items").map(|items| &items.value)
            && (kind == "List" || kind.ends_with("List"))
        {
            let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
            for (index, item) in items.iter().enumerate() {
                let inherited = item_kind.map(|k| (k, api_version));
                self.load_node(file, item, inherited, &list_path.key("items").index(index));
            }
            return;
        }

        let Some((_, versions)) = KINDS.iter().find(|(known, _)| *known == kind) else {
            *self
                .skipped
                .entry(format!("{kind} ({api_version})"))
                .or_insert(0) += 1;
            return;
        };
        if !versions.contains(&api_version) {
            // Same kind name, another group: a custom resource, not ours.
            *self
                .skipped
                .entry(format!("{kind} ({api_version})"))
                .or_insert(0) += 1;
            return;
        }
        let object_ref = object_ref_of(node, kind);
        let current = versions[0];
        let rewritten;
        let node = if api_version == current {
            node
        } else {
            self.diagnostics.push(
                Diagnostic::new(
                    Severity::Warning,
                    DiagnosticKind::UnsupportedVersion,
                    format!("{kind} {api_version} is no longer served by the API server; read as {current}"),
                )
                .with_help(format!("change `apiVersion` to {current}"))
                .with_source(Some(Origin { file, node }.locate(&FieldPath::root().key("apiVersion"))))
                .with_object(Some(object_ref.clone()))
                .with_field(FieldPath::root().key("apiVersion")),
            );
            rewritten = with_api_version(node, current);
            &rewritten
        };
        let origin = Origin { file, node };
        if let Some(admin_kind) = AdminKind::from_kind(kind) {
            self.load_admin(admin_kind, &origin, object_ref);
            return;
        }
        // A rejected NetworkPolicy is left out whole; other kinds are kept
        // without the fields that cannot be read.
        let strict = kind == "NetworkPolicy";
        let object = match kind {
            "Namespace" => self
                .decode_as::<K8sNamespace>(&origin, &object_ref, strict)
                .map(Object::Namespace),
            "Pod" => self
                .decode_as::<Pod>(&origin, &object_ref, strict)
                .map(Object::Pod),
            "Service" => self
                .decode_as::<K8sService>(&origin, &object_ref, strict)
                .map(Object::Service),
            "ReplicationController" => self
                .decode_as::<ReplicationController>(&origin, &object_ref, strict)
                .map(Object::ReplicationController),
            "Deployment" => self
                .decode_as::<Deployment>(&origin, &object_ref, strict)
                .map(Object::Deployment),
            "StatefulSet" => self
                .decode_as::<StatefulSet>(&origin, &object_ref, strict)
                .map(Object::StatefulSet),
            "DaemonSet" => self
                .decode_as::<DaemonSet>(&origin, &object_ref, strict)
                .map(Object::DaemonSet),
            "ReplicaSet" => self
                .decode_as::<ReplicaSet>(&origin, &object_ref, strict)
                .map(Object::ReplicaSet),
            "Job" => self
                .decode_as::<Job>(&origin, &object_ref, strict)
                .map(Object::Job),
            "CronJob" => self
                .decode_as::<CronJob>(&origin, &object_ref, strict)
                .map(Object::CronJob),
            "NetworkPolicy" => self
                .decode_as::<NetworkPolicy>(&origin, &object_ref, strict)
                .map(Object::NetworkPolicy),
            "Node" => self
                .decode_as::<K8sNode>(&origin, &object_ref, strict)
                .map(Object::Node),
            "EndpointSlice" => self
                .decode_as::<K8sEndpointSlice>(&origin, &object_ref, strict)
                .map(Object::EndpointSlice),
            "Ingress" => self
                .decode_as::<K8sIngress>(&origin, &object_ref, strict)
                .map(Object::Ingress),
            "IngressClass" => self
                .decode_as::<K8sIngressClass>(&origin, &object_ref, strict)
                .map(Object::IngressClass),
            _ => None,
        };
        if let Some(object) = object {
            self.add_object(object, Some(&origin), Some(object_ref));
        }
    }

    /// Decodes `origin.node` as `T`, reporting unknown fields and type errors.
    ///
    /// When `strict` is false and a value has the wrong type, that field is
    /// removed and decoding retried, so one bad field does not lose the object.
    fn decode_as<T: serde::de::DeserializeOwned>(
        &mut self,
        origin: &Origin<'_>,
        object: &ObjectRef,
        strict: bool,
    ) -> Option<T> {
        self.decode_reporting(origin, object, strict).0
    }

    /// [`Loader::decode_as`], also returning the paths of the unknown fields.
    fn decode_reporting<T: serde::de::DeserializeOwned>(
        &mut self,
        origin: &Origin<'_>,
        object: &ObjectRef,
        strict: bool,
    ) -> (Option<T>, Vec<FieldPath>) {
        let mut unknown_paths = Vec::new();
        let mut repaired: Option<Node> = None;
        let mut reported_unknown = false;
        // Each retry removes one field, so this ends; the bound guards against surprises.
        for _ in 0..64 {
            let node = repaired.as_ref().unwrap_or(origin.node);
            let decoded = decode_lean::<T>(node);
            if !reported_unknown {
                for unknown in &decoded.unknown_fields {
                    self.diagnostics
                        .push(unknown_field_diagnostic(unknown, origin, object));
                    unknown_paths.push(unknown.path.clone());
                }
                reported_unknown = true;
            }
            match decoded.value {
                Ok(value) => return (Some(value), unknown_paths),
                Err(error) => {
                    let removable = !strict && !error.path.is_empty();
                    self.diagnostics.push(type_error_diagnostic(
                        &error, origin, object, strict, removable,
                    ));
                    if !removable {
                        return (None, unknown_paths);
                    }
                    let mut copy = node.clone();
                    if !remove_at(&mut copy, error.path.steps()) {
                        return (None, unknown_paths);
                    }
                    repaired = Some(copy);
                }
            }
        }
        (None, unknown_paths)
    }

    fn push(
        &mut self,
        severity: Severity,
        kind: DiagnosticKind,
        message: String,
        at: Option<Located<'_>>,
    ) {
        let mut diagnostic = Diagnostic::new(severity, kind, message);
        if let Some(located) = at {
            diagnostic = diagnostic
                .with_source(located.origin.map(|origin| origin.locate(&located.path)))
                .with_object(located.object.cloned())
                .with_field(located.path);
        }
        self.diagnostics.push(diagnostic);
    }

    /// True when the object has a name and is the first of that name and
    /// kind; otherwise reports why it is left out.
    fn named_once(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        origin: Option<&Origin<'_>>,
        object: &ObjectRef,
    ) -> bool {
        if name.is_empty() {
            self.push(
                Severity::Error,
                DiagnosticKind::InvalidValue,
                format!(
                    "{} {kind} needs a name; it is left out",
                    if kind.starts_with(['A', 'E', 'I', 'O', 'U']) {
                        "an"
                    } else {
                        "a"
                    }
                ),
                Some(Located::new(
                    origin,
                    Some(object),
                    FieldPath::parse("metadata.name"),
                )),
            );
            return false;
        }
        self.first_of_its_name(kind, namespace, name, origin, Some(object))
    }

    /// Records the identity of an object; false (with an error) if it was seen before.
    fn first_of_its_name(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        origin: Option<&Origin<'_>>,
        object: Option<&ObjectRef>,
    ) -> bool {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        let here = origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name")));
        if let Some(first) = self.seen.get(&key) {
            let first = first
                .as_ref()
                .map(|f| format!(" (first defined at {f})"))
                .unwrap_or_default();
            let display = if namespace.is_empty() {
                name.to_string()
            } else {
                format!("{namespace}/{name}")
            };
            let message = format!(
                "duplicate {kind} {display}{first}: only one object of a kind may have a given name; this one is ignored"
            );
            self.diagnostics.push(
                Diagnostic::new(Severity::Error, DiagnosticKind::Duplicate, message)
                    .with_source(here)
                    .with_object(object.cloned()),
            );
            return false;
        }
        self.seen.insert(key, here);
        true
    }

    fn add_object(
        &mut self,
        object: Object,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        if let Some((kind, metadata, template, template_path)) = workload_template(&object) {
            let template_path = FieldPath::parse(template_path);
            let index = self.workloads.len();
            self.add_workload(kind, metadata, template, template_path, origin, object_ref);
            if self.workloads.len() > index && scaled_to_zero(&object) {
                self.scaled_to_zero.insert(index);
            }
            return;
        }
        match object {
            Object::Namespace(namespace) => self.add_namespace(namespace, origin, object_ref),
            Object::Pod(pod) => self.add_pod(pod, origin, object_ref),
            Object::Service(service) => self.add_service(service, origin, object_ref),
            Object::NetworkPolicy(policy) => self.add_policy(policy, origin, object_ref),
            Object::Node(node) => self.add_node(node, origin, object_ref),
            Object::EndpointSlice(slice) => self.add_endpoint_slice(slice, origin, object_ref),
            Object::Ingress(ingress) => self.add_ingress(ingress, origin, object_ref),
            Object::IngressClass(class) => self.add_ingress_class(class, origin, object_ref),
            Object::Admin(object) => self.add_admin_json(object),
            _ => {}
        }
    }

    fn add_namespace(
        &mut self,
        object: K8sNamespace,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "Namespace".into(),
            namespace: String::new(),
            name: object.metadata.name.clone().unwrap_or_default(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        let name = object.metadata.name.clone().unwrap_or_default();
        let at = |path: &str| {
            Some(Located::new(
                origin,
                Some(&object_ref),
                FieldPath::parse(path),
            ))
        };
        if let Err(message) = validate::dns1123_label(&name) {
            let message = if name.is_empty() {
                "a Namespace needs a name".to_string()
            } else {
                message
            };
            self.push(
                Severity::Error,
                DiagnosticKind::InvalidValue,
                message,
                at("metadata.name"),
            );
            return;
        }
        if !self.first_of_its_name("Namespace", "", &name, origin, Some(&object_ref)) {
            return;
        }
        let mut labels = self.checked_labels(&object.metadata, origin, &object_ref);
        match labels.get(NAMESPACE_NAME_LABEL) {
            Some(value) if value != &name => {
                let message = format!(
                    "label {NAMESPACE_NAME_LABEL}={value} differs from the namespace name; the API server always sets it to {name:?}"
                );
                self.push(
                    Severity::Warning,
                    DiagnosticKind::Questionable,
                    message,
                    at("metadata.labels"),
                );
            }
            _ => {}
        }
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
        self.namespaces.push(Namespace {
            name,
            labels,
            declared: true,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    fn checked_labels(
        &mut self,
        metadata: &ObjectMeta,
        origin: Option<&Origin<'_>>,
        object: &ObjectRef,
    ) -> Labels {
        self.checked_labels_at(metadata, origin, object, &FieldPath::root().key("metadata"))
    }

    fn checked_labels_at(
        &mut self,
        metadata: &ObjectMeta,
        origin: Option<&Origin<'_>>,
        object: &ObjectRef,
        metadata_path: &FieldPath,
    ) -> Labels {
        let labels = (self.labels).labels(
            (metadata.labels.iter().flatten()).map(|(key, value)| (key.as_str(), value.as_str())),
        );
        for (key, value) in &labels {
            for message in [
                validate::label_key(key).err(),
                validate::label_value(value).err(),
            ]
            .into_iter()
            .flatten()
            {
                // Built only for a problem: most labels have none.
                let path = metadata_path.key("labels").key(key);
                self.push(
                    Severity::Error,
                    DiagnosticKind::InvalidValue,
                    message,
                    Some(Located::new(origin, Some(object), path)),
                );
            }
        }
        labels
    }

    fn record_allowances(&mut self, object: &ObjectRef, metadata: &ObjectMeta) {
        let Some(value) = metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ALLOW_ANNOTATION))
        else {
            return;
        };
        let codes: Vec<String> = value
            .split([',', ' ', '\n', '\t'])
            .filter(|code| !code.is_empty())
            .map(|code| code.to_ascii_uppercase())
            .collect();
        self.allowances
            .entry(object.clone())
            .or_default()
            .extend(codes);
    }

    /// The controlling owner, after checking the fields the API server
    /// requires of every owner reference (k8s-openapi defaults them to "").
    fn checked_owner(
        &mut self,
        metadata: &ObjectMeta,
        origin: Option<&Origin<'_>>,
        object: &ObjectRef,
    ) -> Option<Owner> {
        for (index, reference) in metadata.owner_references.iter().flatten().enumerate() {
            let fields = [
                ("apiVersion", &reference.api_version),
                ("kind", &reference.kind),
                ("name", &reference.name),
                ("uid", &reference.uid),
            ];
            for (field, value) in fields {
                if value.is_empty() {
                    let path = FieldPath::parse("metadata.ownerReferences")
                        .index(index)
                        .key(field);
                    self.push(
                        Severity::Error,
                        DiagnosticKind::InvalidValue,
                        format!("an owner reference needs `{field}`"),
                        Some(Located::new(origin, Some(object), path)),
                    );
                }
            }
        }
        controller_of(metadata.owner_references.as_deref())
    }

    fn add_pod(&mut self, pod: Pod, origin: Option<&Origin<'_>>, object_ref: Option<ObjectRef>) {
        let namespace = namespace_of(&pod.metadata);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "Pod".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &pod.metadata);
        if !self.named_once("Pod", &namespace, &name, origin, &object_ref) {
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // A finished pod has no network presence; policies cannot apply to it.
            *self
                .skipped
                .entry(format!("Pod (phase {})", phase.unwrap_or_default()))
                .or_insert(0) += 1;
            return;
        }
        let labels = self.checked_labels(&pod.metadata, origin, &object_ref);
        let mut ips = Vec::new();
        if let Some(status) = &pod.status {
            let listed: Vec<(FieldPath, &String)> = match &status.pod_ips {
                Some(pod_ips) if !pod_ips.is_empty() => pod_ips
                    .iter()
                    .enumerate()
                    .map(|(i, ip)| (FieldPath::parse("status.podIPs").index(i).key("ip"), &ip.ip))
                    .collect(),
                _ => status
                    .pod_ip
                    .iter()
                    .map(|ip| (FieldPath::parse("status.podIP"), ip))
                    .collect(),
            };
            for (path, text) in listed {
                match text.parse::<IpAddr>() {
                    Ok(ip) if !ips.contains(&ip) => ips.push(ip),
                    Ok(_) => {}
                    Err(_) => {
                        let message = format!(
                            "{text:?} is not an IP address; the pod is treated as having no IP"
                        );
                        self.push(
                            Severity::Error,
                            DiagnosticKind::InvalidValue,
                            message,
                            Some(Located::new(origin, Some(&object_ref), path)),
                        );
                    }
                }
            }
        }
        ips.shrink_to_fit();
        let spec_path = FieldPath::root().key("spec");
        let (node, host_network, ports) = match &pod.spec {
            Some(spec) => self.read_pod_spec(spec, &spec_path, origin, &object_ref),
            None => (None, false, Vec::new()),
        };
        let owner = self.checked_owner(&pod.metadata, origin, &object_ref);
        // Only an explicit Ready=False condition takes a pod out of its
        // Services: manifests rarely carry status.
        let ready = !pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "False"));
        self.pods.push(Endpoint {
            namespace,
            name,
            kind: EndpointKind::Pod,
            labels,
            node,
            host_network,
            ips,
            ports,
            owner,
            ready,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    /// Node name, host networking and container ports of a pod spec.
    fn read_pod_spec(
        &mut self,
        spec: &PodSpec,
        spec_path: &FieldPath,
        origin: Option<&Origin<'_>>,
        object: &ObjectRef,
    ) -> (Option<String>, bool, Vec<ContainerPort>) {
        let mut ports = Vec::new();
        // Restartable init containers (sidecars) run for the pod's lifetime and serve ports too.
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
            .map(|(i, c)| (spec_path.key("initContainers").index(i), c));
        let containers = spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (spec_path.key("containers").index(i), c));
        for (container_path, container) in containers.chain(sidecars) {
            for (index, port) in container.ports.iter().flatten().enumerate() {
                let path = container_path.key("ports").index(index);
                let at = |field: &str| Some(Located::new(origin, Some(object), path.key(field)));
                let Some(number) = u16::try_from(port.container_port).ok().filter(|p| *p >= 1)
                else {
                    // k8s-openapi reads a missing required field as 0; the source tells them apart.
                    let missing =
                        origin.is_some_and(|o| path.key("containerPort").resolve(o.node).is_none());
                    let message = if missing {
                        "containerPort is required; the port is ignored".to_string()
                    } else {
                        format!(
                            "containerPort {} is not a valid port number (1-65535); the port is ignored",
                            port.container_port
                        )
                    };
                    self.push(
                        Severity::Error,
                        DiagnosticKind::InvalidValue,
                        message,
                        at("containerPort"),
                    );
                    continue;
                };
                let protocol = match port.protocol.as_deref() {
                    None => Protocol::Tcp,
                    Some(text) => match Protocol::from_kubernetes(text) {
                        Some(protocol) => protocol,
                        None => {
                            let message = format!(
                                "{text:?} is not a supported protocol (TCP, UDP or SCTP); the port is ignored"
                            );
                            self.push(
                                Severity::Error,
                                DiagnosticKind::InvalidValue,
                                message,
                                at("protocol"),
                            );
                            continue;
                        }
                    },
                };
                let name = match &port.name {
                    Some(name) => match validate::port_name(name) {
                        Ok(()) => Some(name.clone()),
                        Err(message) => {
                            self.push(
                                Severity::Error,
                                DiagnosticKind::InvalidValue,
                                format!("{message}; the name is ignored"),
                                at("name"),
                            );
                            None
                        }
                    },
                    None => None,
                };
                let host_port = match port.host_port {
                    None | Some(0) => None,
                    Some(host_port) => match u16::try_from(host_port) {
                        Ok(host_port) => Some(host_port),
                        Err(_) => {
                            self.push(
                                Severity::Error,
                                DiagnosticKind::InvalidValue,
                                format!("hostPort {host_port} is not a valid port number (1-65535); it is ignored"),
                                at("hostPort"),
                            );
                            None
                        }
                    },
                };
                ports.push(ContainerPort {
                    name,
                    port: number,
                    protocol,
                    host_port,
                });
            }
        }
        ports.sort();
        ports.dedup();
        // Kept for every pod: without the growth slack (a 100,000-pod cluster
        // has as many of these lists).
        ports.shrink_to_fit();
        (
            spec.node_name.clone().filter(|n| !n.is_empty()),
            spec.host_network.unwrap_or(false),
            ports,
        )
    }

    fn add_workload(
        &mut self,
        kind: WorkloadKind,
        metadata: &ObjectMeta,
        template: Option<&PodTemplateSpec>,
        template_path: FieldPath,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let namespace = namespace_of(metadata);
        let name = metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: kind.as_str().into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, metadata);
        if !self.named_once(kind.as_str(), &namespace, &name, origin, &object_ref) {
            return;
        }
        let default_template = PodTemplateSpec::default();
        let template = template.unwrap_or(&default_template);
        let template_metadata = template.metadata.clone().unwrap_or_default();
        let labels = self.checked_labels_at(
            &template_metadata,
            origin,
            &object_ref,
            &template_path.key("metadata"),
        );
        let (node, host_network, ports) = match &template.spec {
            Some(spec) => self.read_pod_spec(spec, &template_path.key("spec"), origin, &object_ref),
            None => (None, false, Vec::new()),
        };
        let owner = self.checked_owner(metadata, origin, &object_ref);
        self.workloads.push(Endpoint {
            namespace,
            name,
            kind: EndpointKind::Workload(kind),
            labels,
            node,
            host_network,
            ips: Vec::new(),
            ports,
            owner,
            ready: true,
            source: origin.map(|origin| origin.locate(&FieldPath::parse("metadata.name"))),
        });
    }

    fn add_policy(
        &mut self,
        object: NetworkPolicy,
        origin: Option<&Origin<'_>>,
        object_ref: Option<ObjectRef>,
    ) {
        let namespace = namespace_of(&object.metadata);
        let name = object.metadata.name.clone().unwrap_or_default();
        let object_ref = object_ref.unwrap_or_else(|| ObjectRef {
            kind: "NetworkPolicy".into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        self.record_allowances(&object_ref, &object.metadata);
        let locate = |path: &FieldPath| origin.map(|origin| origin.locate(path));
        let (policy, problems) = Policy::from_network_policy(&object, &namespace, &locate);
        let rejected = policy.is_none();
        for problem in problems {
            self.push(
                problem.severity,
                match problem.severity {
                    Severity::Error => DiagnosticKind::InvalidValue,
                    _ => DiagnosticKind::Questionable,
                },
                problem.message,
                Some(Located::new(origin, Some(&object_ref), problem.path)),
            );
        }
        if rejected {
            if let Some(last) = self.diagnostics.last_mut() {
                last.help = Some("the API server rejects this NetworkPolicy, so netpol leaves it out of the model".into());
            }
            return;
        }
        if !self.first_of_its_name(
            "NetworkPolicy",
            &namespace,
            &name,
            origin,
            Some(&object_ref),
        ) {
            return;
        }
        if let Some(policy) = policy {
            self.policies.push(policy);
        }
    }

    /// Decodes, validates and keeps an admin-tier policy. Like a
    /// NetworkPolicy, one the API server would reject (or that could not be
    /// enforced) is left out whole with an error.
    fn load_admin(&mut self, kind: AdminKind, origin: &Origin<'_>, object_ref: ObjectRef) {
        let (object, unknown_fields) = match kind {
            AdminKind::AdminNetworkPolicy => {
                let (object, unknown) = self.decode_reporting(origin, &object_ref, true);
                (object.map(AdminObject::AdminNetworkPolicy), unknown)
            }
            AdminKind::BaselineAdminNetworkPolicy => {
                let (object, unknown) = self.decode_reporting(origin, &object_ref, true);
                (object.map(AdminObject::BaselineAdminNetworkPolicy), unknown)
            }
            AdminKind::ClusterNetworkPolicy => {
                let (object, unknown) = self.decode_reporting(origin, &object_ref, true);
                (object.map(AdminObject::ClusterNetworkPolicy), unknown)
            }
        };
        let Some(object) = object else {
            return;
        };
        self.record_allowances(&object_ref, object.metadata());
        let locate = |path: &FieldPath| Some(origin.locate(path));
        let (policy, problems) = AdminPolicy::from_object(&object, &unknown_fields, &locate);
        for problem in problems {
            self.push(
                problem.severity,
                match problem.severity {
                    Severity::Error => DiagnosticKind::InvalidValue,
                    _ => DiagnosticKind::Questionable,
                },
                problem.message,
                Some(Located::new(Some(origin), Some(&object_ref), problem.path)),
            );
        }
        let Some(policy) = policy else {
            if let Some(last) = self
                .diagnostics
                .iter_mut()
                .rev()
                .find(|d| d.severity == Severity::Error)
            {
                last.help = Some(format!(
                    "netpol leaves this {kind} out: the API server would not store it, or (for a selector) no implementation could enforce it"
                ));
            }
            return;
        };
        if !self.first_of_its_name(
            kind.as_str(),
            "",
            &policy.name,
            Some(origin),
            Some(&object_ref),
        ) {
            if kind == AdminKind::BaselineAdminNetworkPolicy
                && let Some(last) = self.diagnostics.last_mut()
            {
                last.help = Some(
                    "a cluster has at most one BaselineAdminNetworkPolicy, named \"default\""
                        .into(),
                );
            }
            return;
        }
        self.admin_policies.push(policy);
    }

    /// Reads an admin-tier policy given as JSON text ([`AdminJson`]) as a
    /// manifest of that text is read, then forgets where in the text each
    /// problem and rule was: the text is no file anyone can open (objects
    /// from a live cluster carry no location, typed or not).
    fn add_admin_json(&mut self, object: AdminJson) {
        let first_diagnostic = self.diagnostics.len();
        let first_policy = self.admin_policies.len();
        let key = (
            object.kind().as_str().to_string(),
            String::new(),
            object.name().unwrap_or_default().to_string(),
        );
        let known = self.seen.contains_key(&key);
        let file: Arc<str> = Arc::from(format!("{} {}", key.0, key.2));
        match crate::json::parse(object.text()) {
            Ok(node) => self.load_node(&file, &node, None, &FieldPath::root()),
            Err(error) => self.diagnostics.push(
                Diagnostic::new(Severity::Error, DiagnosticKind::Syntax, error.message)
                    .with_object(Some(ObjectRef {
                        kind: key.0.clone(),
                        namespace: String::new(),
                        name: key.2.clone(),
                    }))
                    .with_help("the object's JSON text cannot be read; it is left out"),
            ),
        }
        for diagnostic in &mut self.diagnostics[first_diagnostic..] {
            diagnostic.source = None;
        }
        for policy in &mut self.admin_policies[first_policy..] {
            policy.source = None;
            for rule in policy.ingress.iter_mut().chain(policy.egress.iter_mut()) {
                rule.source = None;
            }
        }
        if !known && let Some(first) = self.seen.get_mut(&key) {
            *first = None;
        }
    }

    /// Sorts the admin policies and reports what concerns them together:
    /// equal priorities, and that the model does not use them yet.
    fn finish_admin_policies(&mut self) -> Vec<AdminPolicy> {
        let mut policies = std::mem::take(&mut self.admin_policies);
        policies.sort_by(AdminPolicy::cluster_order);
        // The API allows equal priorities, but where two such policies
        // both match a connection "the implementation can apply any of the
        // matching policies" (ANP and CNP `priority` docs): worth a warning,
        // not an error. ANPs and CNPs are separate APIs; compare each with its own kind.
        for (index, policy) in policies.iter().enumerate() {
            let Some(priority) = policy.priority else {
                continue;
            };
            let Some(first) = policies[..index].iter().find(|other| {
                other.kind == policy.kind
                    && other.tier == policy.tier
                    && other.priority == Some(priority)
            }) else {
                continue;
            };
            let tier = if policy.kind == AdminKind::ClusterNetworkPolicy {
                format!(" in the {} tier", policy.tier.as_str())
            } else {
                String::new()
            };
            self.diagnostics.push(
                Diagnostic::new(
                    Severity::Warning,
                    DiagnosticKind::Questionable,
                    format!(
                        "{} {} has the same priority ({priority}){tier} as {}: where both match a connection, the API leaves the choice between them to the implementation",
                        policy.kind, policy.name, first.name
                    ),
                )
                .with_help("give each policy its own priority, so that their order is defined")
                .with_source(policy.source.clone())
                .with_object(Some(ObjectRef {
                    kind: policy.kind.as_str().to_string(),
                    namespace: String::new(),
                    name: policy.name.clone(),
                }))
                .with_field(FieldPath::parse("spec.priority")),
            );
        }
        if !policies.is_empty() {
            let one = policies.len() == 1;
            // Never silently wrong: say what does not read the tiers yet.
            self.diagnostics.push(
                Diagnostic::new(
                    Severity::Warning,
                    DiagnosticKind::Skipped,
                    format!(
                        "{} admin-tier {} (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy): every command applies the tiers, but the NetworkPolicy lint rules (NP004-NP019) still judge NetworkPolicies alone",
                        policies.len(),
                        if one { "policy" } else { "policies" },
                    ),
                )
                .with_help("a NetworkPolicy finding (an unprotected pod, blocked DNS, a redundant rule) may not hold once an Admin-tier Deny or Accept or a Baseline rule applies; NP020-NP026 check the tiers themselves, and `netpol query` any connection"),
            );
        }
        policies
    }

    /// Resolves workloads against pods, creates referenced namespaces, and
    /// returns the cluster.
    pub fn finish(mut self) -> Loaded {
        self.merge_live();
        let standing_in = self.workloads_without_pods();
        let mut endpoints = std::mem::take(&mut self.pods);
        endpoints.extend(standing_in);

        let mut namespaces = std::mem::take(&mut self.namespaces);
        let declared: HashSet<String> = namespaces.iter().map(|n| n.name.clone()).collect();
        let referenced: Vec<String> = endpoints
            .iter()
            .map(|e| e.namespace.clone())
            .chain(self.policies.iter().map(|p| p.namespace.clone()))
            .chain(self.services.iter().map(|s| s.namespace.clone()))
            .chain(self.ingresses.iter().map(|i| i.namespace.clone()))
            .collect();
        let mut created = HashSet::new();
        for name in referenced {
            if !declared.contains(&name) && created.insert(name.clone()) {
                namespaces.push(Namespace::implicit(name));
            }
        }
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        endpoints
            .sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
        let mut policies = std::mem::take(&mut self.policies);
        policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let admin_policies = self.finish_admin_policies();
        let mut services = std::mem::take(&mut self.services);
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut nodes = std::mem::take(&mut self.nodes);
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut endpoint_slices = std::mem::take(&mut self.endpoint_slices);
        endpoint_slices.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut ingresses = std::mem::take(&mut self.ingresses);
        ingresses.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut ingress_classes = std::mem::take(&mut self.ingress_classes);
        ingress_classes.sort_by(|a, b| a.name.cmp(&b.name));
        // The lists grew one object at a time; what follows keeps them.
        endpoints.shrink_to_fit();
        policies.shrink_to_fit();
        Loaded {
            cluster: Cluster {
                namespaces,
                endpoints,
                services,
                policies,
                admin_policies,
                nodes,
                endpoint_slices,
                ingresses,
                ingress_classes,
            },
            diagnostics: self.diagnostics,
            skipped: self.skipped,
            allowances: self.allowances,
        }
    }

    /// Adds the live objects that no manifest replaces (see [`Loader::add_live`]).
    fn merge_live(&mut self) {
        let live = std::mem::take(&mut self.live);
        if live.is_empty() {
            return;
        }
        let given: HashSet<(String, String, String)> = self.seen.keys().cloned().collect();
        let mut replaced = 0;
        for object in live {
            if identity_of(&object).is_some_and(|key| given.contains(&key)) {
                replaced += 1;
                continue;
            }
            let (workloads, pods) = (self.workloads.len(), self.pods.len());
            self.add_object(object, None, None);
            self.live_workloads.extend(workloads..self.workloads.len());
            self.live_pods.extend(pods..self.pods.len());
        }
        if replaced > 0 {
            *self
                .skipped
                .entry("cluster object replaced by a manifest".to_string())
                .or_insert(0) += replaced;
        }
    }

    /// The workloads that stand for their pods: those with no Pod object
    /// given and no given workload owning them (a Deployment's ReplicaSet,
    /// a CronJob's Job), and not read from a live cluster. Live pods owned
    /// by a manifest workload take its pod template here.
    fn workloads_without_pods(&mut self) -> Vec<Endpoint> {
        let present: HashMap<(String, &'static str, String), usize> = self
            .workloads
            .iter()
            .enumerate()
            .map(|(index, w)| {
                (
                    (w.namespace.clone(), w.kind.as_str(), w.name.clone()),
                    index,
                )
            })
            .collect();
        // The workload an owner reference leads to, following given owners
        // and the generated-name convention (`<deployment>-<hash>`,
        // `<cronjob>-<time>`) when the intermediate object is not given.
        let resolve = |namespace: &str, owner: &Owner| -> Option<usize> {
            let direct = present
                .get(&(
                    namespace.to_string(),
                    owner_kind(&owner.kind)?,
                    owner.name.clone(),
                ))
                .copied();
            direct.or_else(|| {
                let parent_kind = match owner.kind.as_str() {
                    "ReplicaSet" => "Deployment",
                    "Job" => "CronJob",
                    _ => return None,
                };
                let (parent, _) = owner.name.rsplit_once('-')?;
                present
                    .get(&(namespace.to_string(), parent_kind, parent.to_string()))
                    .copied()
            })
        };
        let top_of = |mut index: usize| -> usize {
            for _ in 0..8 {
                let workload = &self.workloads[index];
                match workload
                    .owner
                    .as_ref()
                    .and_then(|owner| resolve(&workload.namespace, owner))
                {
                    Some(parent) if parent != index => index = parent,
                    _ => break,
                }
            }
            index
        };
        let mut represented = vec![false; self.workloads.len()];
        for pod in &self.pods {
            if let Some(first) = pod
                .owner
                .as_ref()
                .and_then(|owner| resolve(&pod.namespace, owner))
            {
                // Everything from the pod's owner up its chain has pods given.
                let mut index = first;
                represented[index] = true;
                for _ in 0..8 {
                    let top = top_of(index);
                    represented[top] = true;
                    if top == index {
                        break;
                    }
                    index = top;
                }
            }
        }
        let owned: Vec<bool> = (0..self.workloads.len())
            .map(|index| top_of(index) != index)
            .collect();
        // The nearest manifest workload up a live pod's controller chain.
        let mut retemplated = Vec::new();
        for &pod_index in &self.live_pods {
            let pod = &self.pods[pod_index];
            let mut next = pod
                .owner
                .as_ref()
                .and_then(|owner| resolve(&pod.namespace, owner));
            for _ in 0..8 {
                let Some(index) = next else { break };
                if !self.live_workloads.contains(&index) {
                    retemplated.push((pod_index, index));
                    break;
                }
                let workload = &self.workloads[index];
                next = workload
                    .owner
                    .as_ref()
                    .and_then(|owner| resolve(&workload.namespace, owner))
                    .filter(|&parent| parent != index);
            }
        }
        for (pod_index, workload_index) in retemplated {
            let template = &self.workloads[workload_index];
            let (labels, ports, host_network) = (
                template.labels.clone(),
                template.ports.clone(),
                template.host_network,
            );
            let pod = &mut self.pods[pod_index];
            pod.labels = labels;
            pod.ports = ports;
            pod.host_network = host_network;
        }
        let live_workloads = std::mem::take(&mut self.live_workloads);
        let scaled_to_zero = std::mem::take(&mut self.scaled_to_zero);
        std::mem::take(&mut self.workloads)
            .into_iter()
            .enumerate()
            .filter(|(index, _)| {
                !represented[*index]
                    && !owned[*index]
                    && !live_workloads.contains(index)
                    && !scaled_to_zero.contains(index)
            })
            .map(|(_, workload)| workload)
            .collect()
    }
}

/// A workload's kind, metadata, pod template and the template's field path;
/// `None` for kinds that are not workloads.
fn workload_template(
    object: &Object,
) -> Option<(
    WorkloadKind,
    &ObjectMeta,
    Option<&PodTemplateSpec>,
    &'static str,
)> {
    const TEMPLATE: &str = "spec.template";
    Some(match object {
        Object::Deployment(o) => (
            WorkloadKind::Deployment,
            &o.metadata,
            Some(&o.spec.template),
            TEMPLATE,
        ),
        Object::StatefulSet(o) => (
            WorkloadKind::StatefulSet,
            &o.metadata,
            Some(&o.spec.template),
            TEMPLATE,
        ),
        Object::DaemonSet(o) => (
            WorkloadKind::DaemonSet,
            &o.metadata,
            Some(&o.spec.template),
            TEMPLATE,
        ),
        Object::ReplicaSet(o) => (
            WorkloadKind::ReplicaSet,
            &o.metadata,
            o.spec.template.as_ref(),
            TEMPLATE,
        ),
        Object::ReplicationController(o) => (
            WorkloadKind::ReplicationController,
            &o.metadata,
            o.spec.as_ref().and_then(|s| s.template.as_ref()),
            TEMPLATE,
        ),
        Object::Job(o) => (
            WorkloadKind::Job,
            &o.metadata,
            o.spec.as_ref().map(|s| &s.template),
            TEMPLATE,
        ),
        Object::CronJob(o) => (
            WorkloadKind::CronJob,
            &o.metadata,
            o.spec.job_template.spec.as_ref().map(|s| &s.template),
            "spec.jobTemplate.spec.template",
        ),
        Object::Namespace(_)
        | Object::Pod(_)
        | Object::Service(_)
        | Object::NetworkPolicy(_)
        | Object::Node(_)
        | Object::EndpointSlice(_)
        | Object::Ingress(_)
        | Object::IngressClass(_)
        | Object::Admin(_) => {
            return None;
        }
    })
}

/// Whether a workload asks for no pods (`spec.replicas: 0`), so it stands
/// for none. Absent `replicas` means 1 for these kinds; DaemonSets, Jobs and
/// CronJobs have no `replicas`.
fn scaled_to_zero(object: &Object) -> bool {
    let replicas = match object {
        Object::Deployment(o) => o.spec.replicas,
        Object::StatefulSet(o) => o.spec.replicas,
        Object::ReplicaSet(o) => o.spec.replicas,
        Object::ReplicationController(o) => o.spec.as_ref().and_then(|s| s.replicas),
        _ => None,
    };
    replicas == Some(0)
}

/// The key [`Loader::first_of_its_name`] records for an object: kind,
/// namespace (empty for Namespaces) and name.
fn identity_of(object: &Object) -> Option<(String, String, String)> {
    let (kind, metadata) = match object {
        Object::Namespace(o) => {
            return Some(("Namespace".into(), String::new(), o.metadata.name.clone()?));
        }
        Object::Node(o) => {
            return Some(("Node".into(), String::new(), o.metadata.name.clone()?));
        }
        Object::IngressClass(o) => {
            return Some((
                "IngressClass".into(),
                String::new(),
                o.metadata.name.clone()?,
            ));
        }
        Object::Admin(o) => {
            return Some((
                o.kind().as_str().into(),
                String::new(),
                o.name()?.to_owned(),
            ));
        }
        Object::EndpointSlice(o) => ("EndpointSlice", &o.metadata),
        Object::Ingress(o) => ("Ingress", &o.metadata),
        Object::Pod(o) => ("Pod", &o.metadata),
        Object::Service(o) => ("Service", &o.metadata),
        Object::NetworkPolicy(o) => ("NetworkPolicy", &o.metadata),
        workload => {
            let (kind, metadata, _, _) = workload_template(workload)?;
            (kind.as_str(), metadata)
        }
    };
    Some((
        kind.to_string(),
        namespace_of(metadata),
        metadata.name.clone()?,
    ))
}

fn owner_kind(kind: &str) -> Option<&'static str> {
    WorkloadKind::from_kind(kind).map(WorkloadKind::as_str)
}

/// A field of an object, for a diagnostic.
pub(super) struct Located<'a> {
    origin: Option<&'a Origin<'a>>,
    object: Option<&'a ObjectRef>,
    path: FieldPath,
}

impl<'a> Located<'a> {
    fn new(origin: Option<&'a Origin<'a>>, object: Option<&'a ObjectRef>, path: FieldPath) -> Self {
        Located {
            origin,
            object,
            path,
        }
    }
}

fn namespace_of(metadata: &ObjectMeta) -> String {
    metadata
        .namespace
        .clone()
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

fn controller_of(references: Option<&[OwnerReference]>) -> Option<Owner> {
    let references = references?;
    references
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| references.first())
        .filter(|r| !r.kind.is_empty() && !r.name.is_empty())
        .map(|r| Owner {
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}

fn object_ref_of(node: &Node, kind: &str) -> ObjectRef {
    let metadata = node.get("metadata");
    let field = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let namespace = if CLUSTER_SCOPED.contains(&kind) {
        String::new()
    } else {
        Some(field("namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into())
    };
    ObjectRef {
        kind: kind.to_string(),
        namespace,
        name: field("name"),
    }
}

/// Kinds without a namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "IngressClass",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "ClusterNetworkPolicy",
];

fn with_api_version(node: &Node, api_version: &str) -> Node {
    let mut copy = node.clone();
    if let Value::Mapping(entries) = &mut copy.value {
        for entry in entries {
            if entry.key == "apiVersion" {
                entry.value.value = Value::String(api_version.to_string());
            }
        }
    }
    copy
}

/// Removes the value at `steps` (a mapping entry or a list item). False if
/// there is nothing there to remove.
fn remove_at(node: &mut Node, steps: &[PathStep]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut current = node;
    for step in parents {
        let next = match (step, &mut current.value) {
            (PathStep::Key(key), Value::Mapping(entries)) => entries
                .iter_mut()
                .find(|e| &e.key == key)
                .map(|e| &mut e.value),
            (PathStep::Index(index), Value::Sequence(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    match (last, &mut current.value) {
        (PathStep::Key(key), Value::Mapping(entries)) => {
            let before = entries.len();
            entries.retain(|e| &e.key != key);
            entries.len() != before
        }
        (PathStep::Index(index), Value::Sequence(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

fn unknown_field_diagnostic(
    unknown: &UnknownField,
    origin: &Origin<'_>,
    object: &ObjectRef,
) -> Diagnostic {
    let key = match unknown.path.steps().last() {
        Some(PathStep::Key(key)) => key.as_str(),
        _ => "",
    };
    let suggestion = closest_field(key, unknown.known_fields);
    let mut help = match suggestion {
        Some(field) => format!("did you mean `{field}`?"),
        None => format!("known fields here: {}", unknown.known_fields.join(", ")),
    };
    if let Some(consequence) = suggestion.and_then(|field| consequence_of_missing(object, field)) {
        help.push_str(&format!(" As written, {consequence}."));
    }
    help.push_str(" kubectl rejects unknown fields; netpol reads the object without it.");
    Diagnostic::new(
        Severity::Error,
        DiagnosticKind::UnknownField,
        format!("unknown field `{key}`"),
    )
    .with_help(help)
    .with_source(Some(SourceLocation {
        file: origin.file.clone(),
        location: unknown.location,
    }))
    .with_object(Some(object.clone()))
    .with_field(unknown.path.clone())
}

/// What a NetworkPolicy means when the field the author meant is missing.
fn consequence_of_missing(object: &ObjectRef, field: &str) -> Option<&'static str> {
    if object.kind != "NetworkPolicy" {
        return None;
    }
    Some(match field {
        "ingress" => {
            "the policy has no ingress rules: it denies all ingress to the pods it selects"
        }
        "egress" => {
            "the policy has no egress rules: it denies all egress if Egress is in policyTypes, and does not affect egress otherwise"
        }
        "from" => "the rule allows traffic from every source",
        "to" => "the rule allows traffic to every destination",
        "ports" => "the rule allows every port and protocol",
        "podSelector" => "the selector is empty and matches every pod",
        "namespaceSelector" => "the peer selects pods in the policy's own namespace only",
        "policyTypes" => {
            "the policy types are inferred: Ingress always, Egress only if there are egress rules"
        }
        _ => return None,
    })
}

/// The known field closest to `key`: same letters ignoring case, or within
/// a small edit distance.
fn closest_field(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    if let Some(field) = known
        .iter()
        .find(|field| field.to_ascii_lowercase() == lower)
    {
        return Some(field);
    }
    let limit = (key.len() / 3).clamp(1, 3);
    known
        .iter()
        .map(|field| (edit_distance(&lower, &field.to_ascii_lowercase()), *field))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, field)| field)
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

fn type_error_diagnostic(
    error: &DecodeError,
    origin: &Origin<'_>,
    object: &ObjectRef,
    strict: bool,
    removable: bool,
) -> Diagnostic {
    let help = if strict {
        format!(
            "the API server rejects this {}, so netpol leaves it out of the model",
            object.kind
        )
    } else if removable {
        "the API server rejects this object; netpol reads it without this field".to_string()
    } else {
        format!(
            "the API server rejects this {}; it is left out",
            object.kind
        )
    };
    Diagnostic::new(
        Severity::Error,
        DiagnosticKind::InvalidType,
        error.message.clone(),
    )
    .with_help(help)
    .with_source(Some(SourceLocation {
        file: origin.file.clone(),
        location: error.location,
    }))
    .with_object(Some(object.clone()))
    .with_field(error.path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelStr;

    /// Every directory of manifests in the repository, loaded file by file
    /// with [`Loader::read_file`] and [`Loader::add_file`], gives what
    /// loading the texts in order gives, or refuses where two files hold the
    /// same object (and the ordered load reports the duplicate).
    #[test]
    fn files_read_apart_add_up_to_the_same_load() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut directories = vec![root.join("testdata"), root.join("examples")];
        let mut compared = 0;
        let mut refused = 0;
        while let Some(directory) = directories.pop() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(&directory).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    directories.push(path);
                } else if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ) {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    files.push((path.display().to_string(), text));
                }
            }
            if files.len() < 2 {
                continue;
            }
            files.sort();
            let mut in_order = Loader::new();
            let mut apart = Loader::new();
            let mut duplicate = None;
            for (name, text) in &files {
                in_order.load_str(name, text);
                if duplicate.is_none() {
                    duplicate = apart.add_file(&Loader::read_file(name, text)).err();
                }
            }
            let in_order = in_order.finish();
            if let Some(object) = duplicate {
                refused += 1;
                assert!(
                    in_order
                        .diagnostics
                        .iter()
                        .any(|d| d.kind == DiagnosticKind::Duplicate
                            && d.message.contains(&object.name)),
                    "{}: {object} refused without a duplicate reported",
                    directory.display()
                );
                continue;
            }
            let apart = apart.finish();
            assert_eq!(apart.cluster, in_order.cluster, "{}", directory.display());
            assert_eq!(
                apart.diagnostics,
                in_order.diagnostics,
                "{}",
                directory.display()
            );
            assert_eq!(apart.skipped, in_order.skipped, "{}", directory.display());
            assert_eq!(
                apart.allowances,
                in_order.allowances,
                "{}",
                directory.display()
            );
            compared += 1;
        }
        assert!(
            compared >= 20 && refused >= 1,
            "{compared} compared, {refused} refused"
        );
    }

    fn load(text: &str) -> Loaded {
        let mut loader = Loader::new();
        loader.load_str("test.yaml", text);
        loader.finish()
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("ingres", "ingress"), 1);
        assert_eq!(edit_distance("igress", "ingress"), 1);
        assert_eq!(edit_distance("ignress", "ingress"), 1);
        assert_eq!(
            closest_field(
                "ingres",
                &["egress", "ingress", "podSelector", "policyTypes"]
            ),
            Some("ingress")
        );
        assert_eq!(
            closest_field("podselector", &["podSelector"]),
            Some("podSelector")
        );
        assert_eq!(closest_field("zzz", &["podSelector"]), None);
    }

    #[test]
    fn referenced_namespaces_are_created_with_the_name_label() {
        let loaded = load("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop}\n");
        let namespace = loaded.cluster.namespace("shop").unwrap();
        assert!(!namespace.declared);
        assert_eq!(
            namespace
                .labels
                .get(NAMESPACE_NAME_LABEL)
                .map(LabelStr::as_str),
            Some("shop")
        );
    }

    #[test]
    fn a_typo_in_a_policy_is_an_error_that_explains_the_consequence() {
        let loaded = load(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingres:\n  - {}\n",
        );
        let diagnostic = &loaded.diagnostics[0];
        assert_eq!(diagnostic.kind, DiagnosticKind::UnknownField);
        assert_eq!(diagnostic.source.as_ref().unwrap().location.line, 6);
        assert!(
            diagnostic
                .help
                .as_ref()
                .unwrap()
                .contains("denies all ingress")
        );
        assert_eq!(loaded.cluster.policies.len(), 1);
        assert_eq!(loaded.cluster.policies[0].ingress, Some(vec![]));
    }

    #[test]
    fn a_pod_with_one_bad_field_is_kept_without_it() {
        let loaded = load(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  hostNetwork: sometimes\n  containers:\n  - name: c\n    ports:\n    - containerPort: 80\n",
        );
        assert_eq!(loaded.cluster.endpoints.len(), 1);
        assert_eq!(loaded.cluster.endpoints[0].ports.len(), 1);
        assert!(!loaded.cluster.endpoints[0].host_network);
        let error = &loaded.diagnostics[0];
        assert_eq!(error.field.to_string(), "spec.hostNetwork");
        assert_eq!(error.source.as_ref().unwrap().location.line, 6);
    }

    #[test]
    fn typed_lists_load_their_items() {
        let loaded = load(
            "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: ns1}}\n",
        );
        assert_eq!(loaded.cluster.endpoints.len(), 2);
        assert!(loaded.cluster.namespace("ns1").unwrap().declared);
    }

    #[test]
    fn workloads_stand_in_for_pods_only_when_no_pods_are_given() {
        let loaded = load(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c}]}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec: {containers: [{name: c}]}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata:\n  name: api-7d9f8c6b5-x2x2x\n  labels: {app: api}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: api-7d9f8c6b5, uid: u, controller: true}]\n",
        );
        let names: Vec<String> = (0..loaded.cluster.endpoints.len())
            .map(|i| loaded.cluster.endpoint_name(i).to_string())
            .collect();
        assert_eq!(names, ["default/api-7d9f8c6b5-x2x2x", "default/web"]);
    }

    #[test]
    fn a_deployment_and_its_replicaset_are_one_endpoint() {
        let loaded = load(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {}\n  template: {metadata: {labels: {app: web}}}\n---\n\
             apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-abc\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u, controller: true}]\nspec:\n  selector: {}\n  template: {metadata: {labels: {app: web}}}\n",
        );
        assert_eq!(loaded.cluster.endpoints.len(), 1);
        assert_eq!(
            loaded.cluster.endpoints[0].kind,
            EndpointKind::Workload(WorkloadKind::Deployment)
        );
    }

    /// A typed object from JSON, as a live cluster would send it.
    fn live<T: serde::de::DeserializeOwned + Into<Object>>(json: serde_json::Value) -> Object {
        serde_json::from_value::<T>(json)
            .expect("a valid object")
            .into()
    }

    fn live_web_cluster() -> Vec<Object> {
        let owner = |kind: &str, name: &str| serde_json::json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": true}]);
        vec![
            live::<K8sNamespace>(
                serde_json::json!({"metadata": {"name": "shop", "labels": {"team": "a"}}}),
            ),
            live::<Deployment>(serde_json::json!({
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "web"}}}},
            })),
            live::<ReplicaSet>(serde_json::json!({
                "metadata": {"name": "web-5d8f", "namespace": "shop", "ownerReferences": owner("Deployment", "web")},
                "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "web"}}}},
            })),
            live::<Pod>(serde_json::json!({
                "metadata": {"name": "web-5d8f-x1", "namespace": "shop", "labels": {"app": "web"},
                             "ownerReferences": owner("ReplicaSet", "web-5d8f")},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
                "status": {"podIP": "10.0.0.5"},
            })),
            // Scaled to zero: no pods, and it must not stand for any.
            live::<Deployment>(serde_json::json!({
                "metadata": {"name": "idle", "namespace": "shop"},
                "spec": {"replicas": 0, "selector": {}, "template": {"metadata": {"labels": {"app": "idle"}}}},
            })),
            live::<NetworkPolicy>(serde_json::json!({
                "metadata": {"name": "deny", "namespace": "shop"},
                "spec": {"podSelector": {}},
            })),
        ]
    }

    #[test]
    fn live_workloads_never_stand_for_pods() {
        let mut loader = Loader::new();
        for object in live_web_cluster() {
            loader.add_live(object);
        }
        let loaded = loader.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let names: Vec<String> = loaded
            .cluster
            .endpoints
            .iter()
            .map(|e| format!("{}/{}", e.namespace, e.name))
            .collect();
        assert_eq!(names, ["shop/web-5d8f-x1"]);
        assert_eq!(loaded.cluster.namespaces[0].labels["team"], "a");
        assert_eq!(loaded.cluster.policies.len(), 1);
    }

    #[test]
    fn manifests_replace_live_objects_of_the_same_name() {
        let mut loader = Loader::new();
        for object in live_web_cluster() {
            loader.add_live(object);
        }
        loader.load_str(
            "new.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: b}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: other}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: extra, namespace: shop}\nspec: {}\n",
        );
        let loaded = loader.finish();
        // Replaced, not duplicates.
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.cluster.namespaces[0].labels["team"], "b");
        let policies: Vec<(&str, bool)> = loaded
            .cluster
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p.source.is_some()))
            .collect();
        assert_eq!(policies, [("deny", true), ("extra", true)]);
        assert_eq!(loaded.skipped["cluster object replaced by a manifest"], 2);
    }

    #[test]
    fn live_pods_take_the_pod_template_of_a_manifest_workload() {
        let mut loader = Loader::new();
        for object in live_web_cluster() {
            loader.add_live(object);
        }
        loader.load_str(
            "web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {}\n  template:\n    metadata: {labels: {app: web, tier: front}}\n    spec:\n      containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]\n",
        );
        let loaded = loader.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        // The pod stays (name, node, address) with the new template.
        assert_eq!(loaded.cluster.endpoints.len(), 1);
        let pod = &loaded.cluster.endpoints[0];
        assert_eq!(pod.name, "web-5d8f-x1");
        assert_eq!(pod.kind, EndpointKind::Pod);
        assert_eq!(pod.node.as_deref(), Some("node-1"));
        assert_eq!(pod.ips, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(pod.labels.get("tier").map(LabelStr::as_str), Some("front"));
        assert_eq!(pod.ports.len(), 1);
    }

    #[test]
    fn a_new_manifest_workload_stands_for_its_pods_beside_a_live_cluster() {
        let mut loader = Loader::new();
        for object in live_web_cluster() {
            loader.add_live(object);
        }
        loader.load_str(
            "api.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {}\n  template: {metadata: {labels: {app: api}}}\n",
        );
        let loaded = loader.finish();
        let names: Vec<&str> = loaded
            .cluster
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["api", "web-5d8f-x1"]);
    }

    #[test]
    fn a_workload_scaled_to_zero_stands_for_no_pods() {
        let loaded = load(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: idle}\nspec:\n  replicas: 0\n  selector: {}\n  template: {metadata: {labels: {app: idle}}}\n---\n\
             apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {}\n  serviceName: db\n  template: {metadata: {labels: {app: db}}}\n",
        );
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let names: Vec<&str> = loaded
            .cluster
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        // `replicas` absent means one pod.
        assert_eq!(names, ["db"]);
    }

    #[test]
    fn an_invalid_policy_is_left_out_and_the_rest_still_loads() {
        let loaded = load(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad}\nspec:\n  ingress:\n  - from:\n    - ipBlock: {cidr: A}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: good}\nspec: {}\n",
        );
        assert_eq!(loaded.cluster.policies.len(), 1);
        assert_eq!(loaded.cluster.policies[0].name, "good");
        let error = &loaded.diagnostics[0];
        assert_eq!(
            error.field.to_string(),
            "spec.ingress[0].from[0].ipBlock.cidr"
        );
        assert_eq!(error.source.as_ref().unwrap().location.line, 7);
    }

    /// Every invalid field of the network kinds is an error at its line and
    /// field; the rest of each object, and every other object, still loads.
    #[test]
    fn bad_services_slices_nodes_and_ingresses_name_their_fields() {
        let loaded = load(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.96.0.300\n  ports:\n  - {name: a, port: 80, nodePort: 30080}\n  - {name: b, port: 80}\n  - {name: c, port: 81, targetPort: not_a_name}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints:\n- addresses: [fd00::1]\n---\n\
             apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nspec: {podCIDR: 10.0.0.0/33}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {namespace: shop}\nspec: {}\n",
        );
        let found: Vec<(String, u32)> = loaded
            .diagnostics
            .iter()
            .map(|d| {
                (
                    d.field.to_string(),
                    d.source.as_ref().map_or(0, |s| s.location.line),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("spec.ports[0].nodePort".to_string(), 7),
                ("spec.ports[1].port".to_string(), 8),
                ("spec.ports[2].targetPort".to_string(), 9),
                ("spec.clusterIP".to_string(), 5),
                ("endpoints[0].addresses[0]".to_string(), 16),
                ("spec.podCIDR".to_string(), 21),
                ("metadata.name".to_string(), 25),
            ],
            "{:#?}",
            loaded.diagnostics
        );
        assert!(
            loaded
                .diagnostics
                .iter()
                .all(|d| d.severity == Severity::Error)
        );
        assert!(
            loaded.diagnostics[0]
                .message
                .contains("only be set on NodePort")
        );
        assert!(
            loaded.diagnostics[6]
                .message
                .contains("an Ingress needs a name")
        );
        let service = &loaded.cluster.services[0];
        assert_eq!(service.ports.len(), 1, "the bad ports are left out");
        assert!(service.cluster_ips.is_empty());
        assert_eq!(loaded.cluster.endpoint_slices.len(), 1);
        assert_eq!(loaded.cluster.nodes.len(), 1);
        assert!(loaded.cluster.ingresses.is_empty());
    }

    #[test]
    fn duplicates_are_errors_and_the_first_wins() {
        let loaded = load(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {policyTypes: [Egress]}\n",
        );
        assert_eq!(loaded.cluster.policies.len(), 1);
        assert!(loaded.cluster.policies[0].ingress.is_some());
        assert_eq!(loaded.diagnostics[0].kind, DiagnosticKind::Duplicate);
    }

    /// Loaded without the places things were read from, which only a
    /// manifest has.
    fn without_locations(mut loaded: Loaded) -> (Cluster, Vec<Diagnostic>) {
        for diagnostic in &mut loaded.diagnostics {
            diagnostic.source = None;
        }
        for policy in &mut loaded.cluster.admin_policies {
            policy.source = None;
            for rule in policy.ingress.iter_mut().chain(policy.egress.iter_mut()) {
                rule.source = None;
            }
        }
        (loaded.cluster, loaded.diagnostics)
    }

    /// An admin-tier object given as JSON text (as the agent reads it from
    /// the API server) loads as a manifest of the same text does, only
    /// without locations: valid with the `status` an implementation
    /// writes, rejected by a CEL rule or the schema, or with a peer field
    /// of a newer CRD (which fails closed).
    #[test]
    fn admin_objects_as_json_load_as_their_text_does() {
        let subject = serde_json::json!({"namespaces": {"matchLabels": {"team": "a"}}});
        let texts = [
            serde_json::json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
                "metadata": {"name": "guard", "uid": "u-1", "resourceVersion": "7", "generation": 2},
                "spec": {"priority": 10, "subject": subject,
                    "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}],
                        "ports": [{"portNumber": {"protocol": "TCP", "port": 80}}]}]},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "SetupSucceeded",
                    "message": "applied", "lastTransitionTime": "2025-03-06T10:00:00Z"}]},
            }),
            serde_json::json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
                "metadata": {"name": "not-default"},
                "spec": {"subject": subject},
            }),
            serde_json::json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                "metadata": {"name": "too-low"},
                "spec": {"tier": "Admin", "priority": 5000, "subject": subject},
            }),
            serde_json::json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                "metadata": {"name": "newer"},
                "spec": {"tier": "Baseline", "priority": 3, "subject": subject,
                    "egress": [{"action": "Accept", "to": [{"externalNetworkSet": "corp"}]}]},
            }),
        ];
        let mut loaded = Vec::new();
        for value in &texts {
            let text = value.to_string();
            let from_text = load(&text);
            let mut loader = Loader::new();
            loader.add_live(AdminJson::new(text.as_str()).unwrap());
            let live = loader.finish();
            assert!(
                (live.diagnostics.iter()).all(|d| d.source.is_none()),
                "{:?}",
                live.diagnostics
            );
            let live = without_locations(live);
            assert_eq!(live, without_locations(from_text), "{text}");
            loaded.push(live);
        }
        let errors = |(_, diagnostics): &(Cluster, Vec<Diagnostic>)| -> Vec<(String, String)> {
            (diagnostics.iter())
                .filter(|d| d.severity == Severity::Error)
                .map(|d| (d.object.as_ref().unwrap().to_string(), d.field.to_string()))
                .collect()
        };
        // Valid: kept, its status neither read nor refused.
        assert!(errors(&loaded[0]).is_empty(), "{:?}", loaded[0].1);
        assert_eq!(loaded[0].0.admin_policies[0].name, "guard");
        // Rejected: left out, the error at its field.
        assert_eq!(
            errors(&loaded[1]),
            [(
                "BaselineAdminNetworkPolicy not-default".to_string(),
                "metadata.name".to_string()
            )]
        );
        assert!(loaded[1].0.admin_policies.is_empty());
        assert_eq!(
            errors(&loaded[2]),
            [(
                "ClusterNetworkPolicy too-low".to_string(),
                "spec.priority".to_string()
            )]
        );
        assert!(loaded[2].0.admin_policies.is_empty());
        // A peer of a newer CRD: reported, and the peer fails closed.
        assert_eq!(
            errors(&loaded[3]),
            [(
                "ClusterNetworkPolicy newer".to_string(),
                "spec.egress[0].to[0].externalNetworkSet".to_string()
            )]
        );
        assert_eq!(
            loaded[3].0.admin_policies[0].egress[0].peers,
            [crate::admin::AdminPeer::Unknown]
        );
    }

    /// Live admin-tier objects sit under the manifests like other live
    /// objects: a manifest of the same kind and name replaces one.
    #[test]
    fn manifests_replace_live_admin_objects_of_the_same_name() {
        let anp = |name: &str, priority: u32| {
            format!(
                r#"{{"apiVersion":"policy.networking.k8s.io/v1alpha1","kind":"AdminNetworkPolicy","metadata":{{"name":"{name}"}},"spec":{{"priority":{priority},"subject":{{"namespaces":{{}}}}}}}}"#
            )
        };
        let mut loader = Loader::new();
        loader.add_live(AdminJson::new(anp("a", 1)).unwrap());
        loader.add_live(AdminJson::new(anp("b", 2)).unwrap());
        loader.load_str("a.json", &anp("a", 3));
        let loaded = loader.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let policies: Vec<(&str, Option<u32>, bool)> = (loaded.cluster.admin_policies.iter())
            .map(|p| (p.name.as_str(), p.priority, p.source.is_some()))
            .collect();
        assert_eq!(policies, [("b", Some(2), false), ("a", Some(3), true)]);
        assert_eq!(loaded.skipped["cluster object replaced by a manifest"], 1);
        // Two live objects of one name: the second is a duplicate, and the
        // message points nowhere.
        let mut loader = Loader::new();
        loader.add_live(AdminJson::new(anp("a", 1)).unwrap());
        loader.add_live(AdminJson::new(anp("a", 2)).unwrap());
        let loaded = loader.finish();
        let duplicate = (loaded.diagnostics.iter())
            .find(|d| d.kind == DiagnosticKind::Duplicate)
            .expect("a duplicate");
        assert!(duplicate.source.is_none());
        assert!(
            !duplicate.message.contains("first defined at"),
            "{}",
            duplicate.message
        );
    }

    #[test]
    fn other_kinds_are_counted_as_skipped() {
        let loaded = load(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n[1, 2]\n---\nfoo: bar\n",
        );
        assert_eq!(loaded.skipped.get("ConfigMap (v1)"), Some(&1));
        assert_eq!(loaded.diagnostics.len(), 2);
    }
}
