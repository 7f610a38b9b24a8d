//! The loaded cluster: namespaces, endpoints, services and policies.
//!
//! A [`Cluster`] is what the manifests say, normalised but not yet analysed.
//! [`crate::Model`] is built from it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::diagnostic::SourceLocation;
use crate::policy::Policy;
use crate::ports::Protocol;
use crate::selector::Labels;

/// The label the control plane sets on every namespace to its name
/// (core/v1 `LabelMetadataName`; immutable).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// The name.
    pub name: String,
    /// Labels, always including `kubernetes.io/metadata.name`.
    pub labels: Labels,
    /// True if a Namespace object was given; false if the namespace was
    /// created because something referenced it.
    pub declared: bool,
    /// Where the Namespace object starts, if one was given.
    pub source: Option<SourceLocation>,
}

/// A workload kind whose pod template can stand in for its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// core/v1 ReplicationController.
    ReplicationController,
    /// batch/v1 Job.
    Job,
    /// batch/v1 CronJob.
    CronJob,
}

impl WorkloadKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    /// Parses a kind name.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "ReplicationController" => WorkloadKind::ReplicationController,
            "Job" => WorkloadKind::Job,
            "CronJob" => WorkloadKind::CronJob,
            _ => return None,
        })
    }
}

/// What an endpoint stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    /// A Pod object.
    Pod,
    /// The pod template of a workload of which no Pod objects were given.
    Workload(WorkloadKind),
}

impl EndpointKind {
    /// `Pod`, `Deployment`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Pod => "Pod",
            EndpointKind::Workload(kind) => kind.as_str(),
        }
    }
}

/// A container port, with the protocol defaulted to TCP.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    /// The port name, if any; named policy ports resolve against it.
    pub name: Option<String>,
    /// The port number.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// The controller that owns a pod or workload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// Its kind.
    pub kind: String,
    /// Its name (same namespace).
    pub name: String,
}

/// A pod, or a workload's pod template standing in for its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// What it is.
    pub kind: EndpointKind,
    /// Pod labels (the template's for a workload).
    pub labels: Labels,
    /// `spec.nodeName`, if set.
    pub node: Option<String>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `status.podIPs` (or `status.podIP`); empty when unknown.
    pub ips: Vec<IpAddr>,
    /// Container ports (and restartable init containers' ports), sorted.
    pub ports: Vec<ContainerPort>,
    /// The controlling owner, if any.
    pub owner: Option<Owner>,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

impl Endpoint {
    /// The container port named `name` with `protocol`, if the endpoint has one.
    ///
    /// A named port matches only a container port of the same protocol: the
    /// rule says "protocol AND port" (networking/v1 `NetworkPolicyPort`).
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|port| port.protocol == protocol && port.name.as_deref() == Some(name))
            .map(|port| port.port)
    }
}

/// How a Service port reaches its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A container port number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port name.
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// Where it goes on the pods (defaults to `port`).
    pub target_port: TargetPort,
    /// Protocol.
    pub protocol: Protocol,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
}

/// A Service. NetworkPolicies never name Services (they see pod-to-pod
/// traffic after DNAT), but Services tell which pods are exposed and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.type`: ClusterIP, NodePort, LoadBalancer or ExternalName.
    pub service_type: String,
    /// `spec.selector`; `None` for a Service without selector.
    pub selector: Option<Labels>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

/// Everything that was loaded.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Namespaces, sorted by name.
    pub namespaces: Vec<Namespace>,
    /// Endpoints, sorted by namespace, then name, then kind.
    pub endpoints: Vec<Endpoint>,
    /// Services, sorted by namespace and name.
    pub services: Vec<Service>,
    /// Valid NetworkPolicies, sorted by namespace and name.
    pub policies: Vec<Policy>,
}

/// Index of an endpoint in [`Cluster::endpoints`].
pub type EndpointId = usize;

impl Cluster {
    /// The namespace called `name`.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces
            .binary_search_by(|namespace| namespace.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.namespaces[index])
    }

    /// The display name of an endpoint: `namespace/name`, or
    /// `namespace/name[Kind]` when a Pod and a workload share that name.
    pub fn endpoint_name(&self, id: EndpointId) -> EndpointName<'_> {
        let endpoint = &self.endpoints[id];
        let shares_name = |other: EndpointId| {
            self.endpoints
                .get(other)
                .is_some_and(|e| e.namespace == endpoint.namespace && e.name == endpoint.name)
        };
        let ambiguous = (id > 0 && shares_name(id - 1)) || shares_name(id + 1);
        EndpointName {
            endpoint,
            ambiguous,
        }
    }

    /// The workload an endpoint belongs to, `namespace/name`, for grouping
    /// endpoints the way people think of them: a Deployment's pods under the
    /// Deployment (the ReplicaSet's `pod-template-hash` suffix removed), other
    /// owned pods under their owner, and everything else on its own (a
    /// workload's pod template is already named after the workload).
    pub fn workload_name(&self, id: EndpointId) -> String {
        let endpoint = &self.endpoints[id];
        match &endpoint.owner {
            Some(owner) => {
                let name = match (
                    owner.kind.as_str(),
                    endpoint.labels.get("pod-template-hash"),
                ) {
                    ("ReplicaSet", Some(hash)) => owner
                        .name
                        .strip_suffix(hash.as_str())
                        .and_then(|n| n.strip_suffix('-'))
                        .unwrap_or(&owner.name),
                    _ => &owner.name,
                };
                format!("{}/{name}", endpoint.namespace)
            }
            None => self.endpoint_name(id).to_string(),
        }
    }

    /// Finds an endpoint by `namespace/name` or `namespace/name[Kind]`.
    /// A bare `name` is looked up in the `default` namespace.
    pub fn find_endpoint(&self, reference: &str) -> Result<EndpointId, String> {
        let (namespace, rest) = reference.split_once('/').unwrap_or(("default", reference));
        let (name, kind) = match rest.strip_suffix(']').and_then(|r| r.split_once('[')) {
            Some((name, kind)) => (name, Some(kind)),
            None => (rest, None),
        };
        let start = self
            .endpoints
            .partition_point(|e| (e.namespace.as_str(), e.name.as_str()) < (namespace, name));
        let candidates: Vec<EndpointId> = (start..self.endpoints.len())
            .take_while(|&id| {
                self.endpoints[id].namespace == namespace && self.endpoints[id].name == name
            })
            .filter(|&id| {
                kind.is_none_or(|kind| self.endpoints[id].kind.as_str().eq_ignore_ascii_case(kind))
            })
            .collect();
        match candidates.as_slice() {
            [id] => Ok(*id),
            [] => Err(format!("no pod or workload {reference:?} in the input")),
            _ => {
                // A Pod object is what `namespace/name` means when both exist.
                candidates
                    .iter()
                    .copied()
                    .find(|&id| self.endpoints[id].kind == EndpointKind::Pod)
                    .ok_or_else(|| format!("{reference:?} is ambiguous: add [Kind], e.g. {namespace}/{name}[Deployment]"))
            }
        }
    }

    /// The endpoints whose IP addresses include `address` and that are not
    /// host-network pods (which share their node's address).
    pub fn endpoints_with_ip(&self, address: IpAddr) -> Vec<EndpointId> {
        (0..self.endpoints.len())
            .filter(|&id| {
                !self.endpoints[id].host_network && self.endpoints[id].ips.contains(&address)
            })
            .collect()
    }

    /// Number of endpoints of each kind, for summaries.
    pub fn endpoint_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for endpoint in &self.endpoints {
            *counts.entry(endpoint.kind.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// Display form of an endpoint; see [`Cluster::endpoint_name`].
#[derive(Clone, Copy, Debug)]
pub struct EndpointName<'a> {
    endpoint: &'a Endpoint,
    ambiguous: bool,
}

impl fmt::Display for EndpointName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.endpoint.namespace, self.endpoint.name)?;
        if self.ambiguous {
            write!(f, "[{}]", self.endpoint.kind.as_str())?;
        }
        Ok(())
    }
}
