//! The loaded cluster: namespaces, endpoints, services and policies.
//!
//! A [`Cluster`] is what the manifests say, normalised but not yet analysed.
//! [`crate::Model`] is built from it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::admin::AdminPolicy;
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

impl Namespace {
    /// A namespace no Namespace object declares, which exists because
    /// something in it was given: its only label is its name.
    pub fn implicit(name: String) -> Namespace {
        Namespace {
            labels: [(NAMESPACE_NAME_LABEL.to_string(), name.clone())].into(),
            name,
            declared: false,
            source: None,
        }
    }
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
    /// `hostPort`: the port opened on the node's addresses for it.
    pub host_port: Option<u16>,
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
    /// False when `status.conditions` says the pod is not Ready (a Service
    /// then sends it nothing, unless it publishes not-ready addresses).
    pub ready: bool,
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
    /// A container port name, resolved on each backend pod (name and
    /// protocol must match one of its container ports).
    Name(String),
}

impl fmt::Display for TargetPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetPort::Number(number) => write!(f, "{number}"),
            TargetPort::Name(name) => f.write_str(name),
        }
    }
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port name (required when a Service has several ports).
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// Where it goes on the pods (defaults to `port`).
    pub target_port: TargetPort,
    /// Protocol.
    pub protocol: Protocol,
    /// The node port, for NodePort and LoadBalancer Services, once allocated.
    pub node_port: Option<u16>,
}

impl ServicePort {
    /// The port's display form: `name (TCP 80)` or `TCP 80`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({} {})", self.protocol, self.port),
            None => format!("{} {}", self.protocol, self.port),
        }
    }
}

/// `spec.type` of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    /// A virtual IP inside the cluster (the default).
    #[default]
    ClusterIp,
    /// ClusterIP plus a port on every node.
    NodePort,
    /// NodePort plus an external load balancer.
    LoadBalancer,
    /// A DNS alias (CNAME); nothing is proxied.
    ExternalName,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }

    /// Parses the Kubernetes spelling.
    pub fn from_kubernetes(text: &str) -> Option<Self> {
        Some(match text {
            "ClusterIP" => ServiceType::ClusterIp,
            "NodePort" => ServiceType::NodePort,
            "LoadBalancer" => ServiceType::LoadBalancer,
            "ExternalName" => ServiceType::ExternalName,
            _ => return None,
        })
    }

    /// True for the types that open a port on every node.
    pub fn has_node_ports(self) -> bool {
        matches!(self, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficPolicy {
    /// Any ready backend in the cluster; outside traffic to a backend on
    /// another node is masqueraded to the receiving node's address.
    #[default]
    Cluster,
    /// Only backends on the receiving (or, for internal traffic, the
    /// client's) node; the client address is kept.
    Local,
}

impl TrafficPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        }
    }
}

/// A Service. NetworkPolicies never name Services (they see pod-to-pod
/// traffic after kube-proxy's DNAT), but Services say which pods are reached
/// through which addresses and ports. See docs/SEMANTICS.md §17.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.type`.
    pub service_type: ServiceType,
    /// `spec.selector`; `None` for a Service without selector, whose
    /// backends come from EndpointSlices.
    pub selector: Option<Labels>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `spec.clusterIPs` (or `spec.clusterIP`), when assigned.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.clusterIP: None`: DNS answers with the backends' addresses and
    /// nothing is proxied.
    pub headless: bool,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` and the deprecated
    /// `spec.loadBalancerIP`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].hostname`.
    pub load_balancer_hostnames: Vec<String>,
    /// `spec.loadBalancerSourceRanges`; `None` when not set (every source).
    pub load_balancer_source_ranges: Option<crate::ipset::IpSet>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.internalTrafficPolicy`.
    pub internal_traffic_policy: TrafficPolicy,
    /// `spec.externalName`, for ExternalName Services.
    pub external_name: Option<String>,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready_addresses: bool,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

impl Service {
    /// `namespace/name`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Every address a client can connect to: ClusterIPs, external IPs and
    /// load-balancer IPs.
    pub fn virtual_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.cluster_ips
            .iter()
            .chain(&self.external_ips)
            .chain(&self.load_balancer_ips)
            .copied()
    }
}

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// `conditions.ready` (absent means ready).
    pub ready: bool,
    /// `nodeName`.
    pub node: Option<String>,
    /// `targetRef` when it names a Pod: the pod's name.
    pub pod: Option<String>,
}

/// One port of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// Its name, which must equal the Service port's name.
    pub name: Option<String>,
    /// The port on the endpoints.
    pub port: Option<u16>,
    /// Protocol.
    pub protocol: Protocol,
}

/// A `discovery.k8s.io/v1` EndpointSlice. netpol derives the backends of
/// Services with a selector itself; slices matter for Services without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The Service it belongs to (label `kubernetes.io/service-name`).
    pub service: Option<String>,
    /// Endpoints.
    pub endpoints: Vec<SliceEndpoint>,
    /// Ports.
    pub ports: Vec<SlicePort>,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

/// An address of a Node (`status.addresses`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, ...
    pub kind: String,
    /// The address.
    pub address: IpAddr,
}

/// A Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Its IP addresses (host names are not addresses and are left out).
    pub addresses: Vec<NodeAddress>,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<crate::ipset::Cidr>,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

impl Node {
    /// The address kube-proxy's masquerade gives traffic leaving this node
    /// toward another node, for the family of `like`: the first
    /// `InternalIP` of that family (the address on the node network).
    pub fn masquerade_address(&self, like: IpAddr) -> Option<IpAddr> {
        let same_family = |a: &&NodeAddress| a.address.is_ipv4() == like.is_ipv4();
        self.addresses
            .iter()
            .filter(same_family)
            .find(|a| a.kind == "InternalIP")
            .or_else(|| self.addresses.iter().find(same_family))
            .map(|a| a.address)
    }
}

/// The Service port an Ingress backend names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendPort {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

impl fmt::Display for BackendPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendPort::Number(number) => write!(f, "{number}"),
            BackendPort::Name(name) => f.write_str(name),
        }
    }
}

/// One way into an Ingress: a host and path (either may be absent) and the
/// Service port it leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRoute {
    /// `rules[].host`; `None` for every host.
    pub host: Option<String>,
    /// `paths[].path`; `None` for the default backend.
    pub path: Option<String>,
    /// The Service (same namespace as the Ingress).
    pub service: String,
    /// Its port.
    pub port: BackendPort,
    /// Where the backend is written.
    pub source: Option<SourceLocation>,
}

/// A `networking.k8s.io/v1` Ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.ingressClassName` (or the legacy `kubernetes.io/ingress.class`
    /// annotation).
    pub class: Option<String>,
    /// Every route to a Service, the default backend last.
    pub routes: Vec<IngressRoute>,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

/// A `networking.k8s.io/v1` IngressClass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressClass {
    /// Name.
    pub name: String,
    /// `spec.controller`, e.g. `k8s.io/ingress-nginx`.
    pub controller: String,
    /// Annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
    pub default: bool,
    /// Where the object starts.
    pub source: Option<SourceLocation>,
}

/// Everything that was loaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// Namespaces, sorted by name.
    pub namespaces: Vec<Namespace>,
    /// Endpoints, sorted by namespace, then name, then kind.
    pub endpoints: Vec<Endpoint>,
    /// Services, sorted by namespace and name.
    pub services: Vec<Service>,
    /// Valid NetworkPolicies, sorted by namespace and name.
    pub policies: Vec<Policy>,
    /// Valid admin-tier policies (ANP, BANP, CNP), sorted by tier, then
    /// priority, then kind and name. Validated only: the model does not
    /// use them yet.
    pub admin_policies: Vec<AdminPolicy>,
    /// Nodes, sorted by name.
    pub nodes: Vec<Node>,
    /// EndpointSlices, sorted by namespace and name.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Ingresses, sorted by namespace and name.
    pub ingresses: Vec<Ingress>,
    /// IngressClasses, sorted by name.
    pub ingress_classes: Vec<IngressClass>,
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

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes
            .binary_search_by(|node| node.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.nodes[index])
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
