//! Services: which pods a Service sends a connection to, and whether each
//! of them lets it in.
//!
//! NetworkPolicy applies after kube-proxy's DNAT, to the backend pod's
//! address and the target port; the ClusterIP and the Service port never
//! meet a policy (docs/SEMANTICS.md §17.1). A connection to a Service
//! therefore succeeds when the backend kube-proxy picks allows it: always
//! when every backend does, intermittently when only some do.

use std::net::IpAddr;

use super::{ClassId, Model, PortQuery, QueryEndpoint, QueryError, Verdict};
use crate::bitset::BitSet;
use crate::cluster::{EndpointId, Service, ServicePort, ServiceType, TargetPort, TrafficPolicy};
use crate::config::SelfTraffic;
use crate::policy::Direction;
use crate::ports::Protocol;

/// Index of a Service in [`crate::Cluster::services`].
pub type ServiceId = usize;

/// Where a backend is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackendTarget {
    /// A pod (or a workload's pod template) of the cluster.
    Endpoint(EndpointId),
    /// An address of an EndpointSlice that is no known pod.
    Address(IpAddr),
}

impl BackendTarget {
    /// As a query endpoint.
    pub fn query_endpoint(self) -> QueryEndpoint {
        match self {
            BackendTarget::Endpoint(id) => QueryEndpoint::Endpoint(id),
            BackendTarget::Address(address) => QueryEndpoint::Address(address),
        }
    }
}

/// One backend of a Service port: where kube-proxy may send a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The pod or address.
    pub target: BackendTarget,
    /// The port on it (the target port, resolved for this pod).
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The node it runs on, when known.
    pub node: Option<String>,
}

/// Why a pod the Service selects gets no traffic on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// The named targetPort is not a container port of the pod (with that
    /// protocol): the EndpointSlice controller leaves the pod out of that
    /// port.
    NoSuchNamedPort(String),
    /// The pod is not Ready (and the Service does not publish not-ready
    /// addresses).
    NotReady,
}

/// The backends of one Service port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backends {
    /// Where connections go.
    pub backends: Vec<Backend>,
    /// Selected pods that get nothing on this port, and why.
    pub excluded: Vec<(EndpointId, Exclusion)>,
}

/// What a connection to a Service port amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceOutcome {
    /// Every backend allows it.
    Allowed,
    /// Some backends allow it, some do not: it fails intermittently,
    /// depending on the backend kube-proxy picks.
    Intermittent,
    /// No backend allows it.
    Denied,
    /// The Service has no backend for this client: kube-proxy rejects the
    /// connection.
    NoBackends,
    /// An ExternalName Service: a DNS alias for `String`. Nothing is
    /// proxied and the model does not know where the name leads.
    ExternalName(String),
}

/// One backend's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendVerdict {
    /// The backend.
    pub backend: Backend,
    /// Both sides, for the connection from the client to the backend's
    /// address and target port.
    pub verdict: Verdict,
}

/// The answer to "can this client reach this Service port?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceVerdict {
    /// The client.
    pub from: QueryEndpoint,
    /// The Service.
    pub service: ServiceId,
    /// The index of the port in the Service's ports.
    pub port: usize,
    /// Each backend this client may be sent to, with its verdict.
    pub backends: Vec<BackendVerdict>,
    /// Selected pods that are no backend of this port.
    pub excluded: Vec<(EndpointId, Exclusion)>,
    /// Backends left out because `internalTrafficPolicy: Local` sends a
    /// client only to backends on its own node.
    pub other_node_backends: usize,
    /// The summary.
    pub outcome: ServiceOutcome,
}

impl ServiceOutcome {
    /// `allowed`, `intermittent`, `denied`, `no-backends` or `external-name`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceOutcome::Allowed => "allowed",
            ServiceOutcome::Intermittent => "intermittent",
            ServiceOutcome::Denied => "denied",
            ServiceOutcome::NoBackends => "no-backends",
            ServiceOutcome::ExternalName(_) => "external-name",
        }
    }
}

/// What a command-line destination names: a pod, workload or address, or a
/// Service (`by_name` when it was named by its DNS name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A pod, workload or address.
    Endpoint(QueryEndpoint),
    /// A Service.
    Service {
        /// The Service.
        id: ServiceId,
        /// Named by DNS name, so the client must resolve it first.
        by_name: bool,
    },
}

impl ServiceVerdict {
    /// True only when every backend allows the connection.
    pub fn allowed(&self) -> bool {
        self.outcome == ServiceOutcome::Allowed
    }

    /// How many backends allow it.
    pub fn allowed_count(&self) -> usize {
        self.backends.iter().filter(|b| b.verdict.allowed()).count()
    }
}

/// Why a Service query cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceQueryError {
    /// The Service has no port with that number or name (and protocol).
    NoSuchPort {
        /// What was asked.
        port: PortQuery,
        /// The ports it has.
        available: Vec<String>,
    },
    /// A query to a backend failed.
    Query(QueryError),
}

/// The answer to "can this client resolve names?": its connections to the
/// cluster DNS Service on UDP and TCP 53.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsVerdict {
    /// The DNS Service, when the input has it.
    pub service: Option<ServiceId>,
    /// UDP 53 (every lookup starts here).
    pub udp: Option<ServiceVerdict>,
    /// TCP 53 (answers too large for UDP, and some resolvers).
    pub tcp: Option<ServiceVerdict>,
}

impl DnsVerdict {
    /// `Some(true)` when the client reaches every DNS backend on UDP and TCP
    /// 53, `Some(false)` when some does not let it, `None` when the input
    /// has no DNS Service to tell.
    pub fn allowed(&self) -> Option<bool> {
        self.service?;
        Some(
            [&self.udp, &self.tcp]
                .iter()
                .all(|v| v.as_ref().is_some_and(ServiceVerdict::allowed)),
        )
    }
}

impl Model {
    /// Resolves a command-line destination: `service/NS/NAME` or
    /// `svc/NS/NAME`; an IP address (a pod's, else the virtual IP of exactly
    /// one Service, else an address); a DNS name `NAME.NS`, `NAME.NS.svc` or
    /// `NAME.NS.svc.CLUSTER-DOMAIN` of a Service; else `NS/NAME` of a pod or
    /// workload.
    pub fn resolve_target(&self, text: &str, cluster_domain: &str) -> Result<Target, String> {
        if let Some(rest) = text
            .strip_prefix("service/")
            .or_else(|| text.strip_prefix("svc/"))
        {
            let (namespace, name) = rest
                .split_once('/')
                .ok_or_else(|| format!("{text:?}: write service/NAMESPACE/NAME"))?;
            return self
                .find_service(namespace, name)
                .map(|id| Target::Service { id, by_name: false })
                .ok_or_else(|| format!("no Service {namespace}/{name} in the input"));
        }
        if let Ok(address) = text.parse::<IpAddr>() {
            let endpoint = self.resolve_endpoint(text)?;
            if let QueryEndpoint::Address(_) = endpoint
                && let [id] = self.services_with_address(address).as_slice()
            {
                return Ok(Target::Service {
                    id: *id,
                    by_name: false,
                });
            }
            return Ok(Target::Endpoint(endpoint));
        }
        if !text.contains('/') {
            let trimmed = text.trim_end_matches('.');
            let short = trimmed
                .strip_suffix(&format!(".svc.{cluster_domain}"))
                .or_else(|| trimmed.strip_suffix(".svc"))
                .unwrap_or(trimmed);
            if let Some((name, namespace)) = short.split_once('.')
                && !namespace.contains('.')
            {
                if let Some(id) = self.find_service(namespace, name) {
                    return Ok(Target::Service { id, by_name: true });
                }
                if short != trimmed {
                    return Err(format!("no Service {namespace}/{name} in the input"));
                }
            }
        }
        self.resolve_endpoint(text).map(Target::Endpoint)
    }

    /// Resolves a command-line source: `service/NS/NAME` (or `svc/…`) stands
    /// for every pod the Service selects; anything else is one endpoint.
    pub fn resolve_sources(&self, text: &str) -> Result<Vec<QueryEndpoint>, String> {
        if text.starts_with("service/") || text.starts_with("svc/") {
            let Target::Service { id, .. } = self.resolve_target(text, "cluster.local")? else {
                unreachable!("a service/ reference resolves to a Service")
            };
            let sources: Vec<QueryEndpoint> = self
                .service_selected(id)
                .into_iter()
                .map(QueryEndpoint::Endpoint)
                .collect();
            if sources.is_empty() {
                return Err(format!(
                    "Service {text} selects no pod, so it has no backends to send from"
                ));
            }
            return Ok(sources);
        }
        self.resolve_endpoint(text).map(|e| vec![e])
    }

    /// The Service `namespace/name`.
    pub fn find_service(&self, namespace: &str, name: &str) -> Option<ServiceId> {
        self.cluster
            .services
            .binary_search_by(|s| (s.namespace.as_str(), s.name.as_str()).cmp(&(namespace, name)))
            .ok()
    }

    /// The Services with `address` as a ClusterIP, external IP or
    /// load-balancer IP.
    pub fn services_with_address(&self, address: IpAddr) -> Vec<ServiceId> {
        (0..self.cluster.services.len())
            .filter(|&id| {
                self.cluster.services[id]
                    .virtual_ips()
                    .any(|ip| ip == address)
            })
            .collect()
    }

    /// The port of `service` that `port` names: a Service port number or
    /// name; with `protocol`, only ports of that protocol. Without it, a
    /// number that two protocols share means TCP.
    pub fn service_port(
        &self,
        service: ServiceId,
        port: &PortQuery,
        protocol: Option<Protocol>,
    ) -> Result<usize, ServiceQueryError> {
        let ports = &self.cluster.services[service].ports;
        let matches = |p: &ServicePort| {
            protocol.is_none_or(|protocol| p.protocol == protocol)
                && match port {
                    PortQuery::Number(number) => p.port == *number,
                    PortQuery::Name(name) => p.name.as_deref() == Some(name.as_str()),
                }
        };
        let candidates: Vec<usize> = (0..ports.len()).filter(|&i| matches(&ports[i])).collect();
        match candidates.as_slice() {
            [index] => Ok(*index),
            [] => Err(ServiceQueryError::NoSuchPort {
                port: port.clone(),
                available: ports.iter().map(ServicePort::label).collect(),
            }),
            several => Ok(several
                .iter()
                .copied()
                .find(|&i| ports[i].protocol == Protocol::Tcp)
                .unwrap_or(several[0])),
        }
    }

    /// The pods a Service's selector selects, in endpoint order: those of
    /// its namespace whose labels include every selector pair.
    pub fn service_selected(&self, service: ServiceId) -> Vec<EndpointId> {
        let service = &self.cluster.services[service];
        let Some(selector) = &service.selector else {
            return Vec::new();
        };
        let endpoints = &self.cluster.endpoints;
        let start = endpoints.partition_point(|e| e.namespace < service.namespace);
        (start..endpoints.len())
            .take_while(|&id| endpoints[id].namespace == service.namespace)
            .filter(|&id| {
                selector
                    .iter()
                    .all(|(key, value)| endpoints[id].labels.get(key) == Some(value))
            })
            .collect()
    }

    /// Where connections to one port of a Service go. A Service with a
    /// selector sends them to the selected Ready pods that have the target
    /// port (a named targetPort resolves per pod, by name and protocol); a
    /// Service without one to the addresses of its EndpointSlices; a
    /// headless Service's clients connect to the pods directly on the
    /// Service port (targetPort is ignored for `clusterIP: None`); an
    /// ExternalName Service has none.
    pub fn service_backends(&self, service_id: ServiceId, port_index: usize) -> Backends {
        let service = &self.cluster.services[service_id];
        let port = &service.ports[port_index];
        let mut result = Backends::default();
        if service.service_type == ServiceType::ExternalName {
            return result;
        }
        if service.selector.is_some() {
            for id in self.service_selected(service_id) {
                let endpoint = &self.cluster.endpoints[id];
                if !endpoint.ready && !service.publish_not_ready_addresses {
                    result.excluded.push((id, Exclusion::NotReady));
                    continue;
                }
                let number = if service.headless {
                    Some(port.port)
                } else {
                    match &port.target_port {
                        TargetPort::Number(number) => Some(*number),
                        TargetPort::Name(name) => endpoint.named_port(name, port.protocol),
                    }
                };
                match number {
                    Some(number) => result.backends.push(Backend {
                        target: BackendTarget::Endpoint(id),
                        port: number,
                        protocol: port.protocol,
                        node: endpoint.node.clone(),
                    }),
                    None => {
                        let TargetPort::Name(name) = &port.target_port else {
                            unreachable!("numeric target ports always resolve")
                        };
                        result
                            .excluded
                            .push((id, Exclusion::NoSuchNamedPort(name.clone())));
                    }
                }
            }
            return result;
        }
        for slice in &self.cluster.endpoint_slices {
            if slice.namespace != service.namespace
                || slice.service.as_deref() != Some(&service.name)
            {
                continue;
            }
            // The slice port that carries this Service port has its name.
            let Some(slice_port) = slice
                .ports
                .iter()
                .find(|p| p.name == port.name && p.protocol == port.protocol && p.port.is_some())
            else {
                continue;
            };
            let number = slice_port.port.expect("filtered above");
            for endpoint in &slice.endpoints {
                if !endpoint.ready && !service.publish_not_ready_addresses {
                    continue;
                }
                for &address in &endpoint.addresses {
                    let target = match self.cluster.endpoints_with_ip(address).as_slice() {
                        [id] => BackendTarget::Endpoint(*id),
                        _ => BackendTarget::Address(address),
                    };
                    let node = match target {
                        BackendTarget::Endpoint(id) => self.cluster.endpoints[id].node.clone(),
                        BackendTarget::Address(_) => endpoint.node.clone(),
                    };
                    let backend = Backend {
                        target,
                        port: number,
                        protocol: port.protocol,
                        node,
                    };
                    if !result.backends.contains(&backend) {
                        result.backends.push(backend);
                    }
                }
            }
        }
        result
    }

    /// Can `from` reach port `port_index` of Service `service_id`? Each
    /// backend kube-proxy may pick is asked with the backend's address and
    /// target port. A client that is itself a backend reaches itself through
    /// the node (the packet leaves the pod and is DNATed back), so that
    /// backend is evaluated like any pair, not as a pod reaching itself.
    pub fn query_service(
        &self,
        from: QueryEndpoint,
        service_id: ServiceId,
        port_index: usize,
    ) -> Result<ServiceVerdict, ServiceQueryError> {
        let service: &Service = &self.cluster.services[service_id];
        let Backends { backends, excluded } = self.service_backends(service_id, port_index);
        let client_node = match from {
            QueryEndpoint::Endpoint(id) => self.cluster.endpoints[id].node.clone(),
            QueryEndpoint::Address(address) => self.node_of_address(address).map(str::to_string),
        };
        let mut other_node_backends = 0;
        let mut verdicts = Vec::new();
        for backend in backends {
            if service.internal_traffic_policy == TrafficPolicy::Local
                && client_node.is_some()
                && backend.node.is_some()
                && backend.node != client_node
            {
                other_node_backends += 1;
                continue;
            }
            let to = backend.target.query_endpoint();
            let verdict = if from == to {
                self.query_through_node(from, backend.protocol, backend.port)
            } else {
                self.query(from, to, &PortQuery::Number(backend.port), backend.protocol)
                    .map_err(ServiceQueryError::Query)?
            };
            verdicts.push(BackendVerdict { backend, verdict });
        }
        let allowed = verdicts.iter().filter(|b| b.verdict.allowed()).count();
        let outcome = if service.service_type == ServiceType::ExternalName {
            ServiceOutcome::ExternalName(service.external_name.clone().unwrap_or_default())
        } else if verdicts.is_empty() {
            ServiceOutcome::NoBackends
        } else if allowed == verdicts.len() {
            ServiceOutcome::Allowed
        } else if allowed == 0 {
            ServiceOutcome::Denied
        } else {
            ServiceOutcome::Intermittent
        };
        Ok(ServiceVerdict {
            from,
            service: service_id,
            port: port_index,
            backends: verdicts,
            excluded,
            other_node_backends,
            outcome,
        })
    }

    /// A pod reaching itself through a Service: both of its sides decide,
    /// whatever [`SelfTraffic`] says about direct traffic.
    fn query_through_node(
        &self,
        endpoint: QueryEndpoint,
        protocol: Protocol,
        port: u16,
    ) -> Verdict {
        if self.config.self_traffic == SelfTraffic::Evaluate {
            return self
                .query(endpoint, endpoint, &PortQuery::Number(port), protocol)
                .expect("numeric ports always resolve");
        }
        Verdict {
            from: endpoint,
            to: endpoint,
            protocol,
            port,
            port_name: None,
            egress: self.egress_verdict(endpoint, endpoint, protocol, port),
            ingress: self.ingress_verdict(endpoint, endpoint, protocol, port),
        }
    }

    /// Can `from` resolve names through the DNS Service `namespace/name`
    /// (normally `kube-system/kube-dns`)? It must reach every DNS backend on
    /// UDP and TCP 53, after DNAT.
    pub fn dns_verdict(&self, from: QueryEndpoint, dns_service: (&str, &str)) -> DnsVerdict {
        let Some(service) = self.find_service(dns_service.0, dns_service.1) else {
            return DnsVerdict {
                service: None,
                udp: None,
                tcp: None,
            };
        };
        let ask = |protocol| {
            let port = self
                .service_port(service, &PortQuery::Number(53), Some(protocol))
                .ok()?;
            self.query_service(from, service, port).ok()
        };
        DnsVerdict {
            service: Some(service),
            udp: ask(Protocol::Udp),
            tcp: ask(Protocol::Tcp),
        }
    }
}

/// Which client classes reach a backend class on a port, at class level:
/// built once per model, then one backend kind costs a pass over the egress
/// rules instead of a whole class × class table. Node-local exceptions
/// (host-network pods on the same node, a pod reaching itself) are not in
/// these sets; callers confirm what they report with exact queries.
pub struct ClientSets<'m> {
    model: &'m Model,
    /// Per policy with egress rules: the classes it selects for egress.
    egress_selected: Vec<Option<BitSet>>,
    /// Classes not isolated for egress (or not selectable).
    egress_open: BitSet,
}

impl<'m> ClientSets<'m> {
    /// Prepares the per-policy selections.
    pub fn new(model: &'m Model) -> Self {
        let classes = model.classes.len();
        let mut egress_selected: Vec<Option<BitSet>> = vec![None; model.cluster.policies.len()];
        let mut egress_open = BitSet::new(classes);
        for class in 0..classes {
            let policies = model.class_policies(Direction::Egress, class);
            if policies.is_empty() || !model.classes[class].selectable {
                egress_open.insert(class);
            }
            for &policy in policies {
                egress_selected[policy]
                    .get_or_insert_with(|| BitSet::new(classes))
                    .insert(class);
            }
        }
        ClientSets {
            model,
            egress_selected,
            egress_open,
        }
    }

    /// The client classes whose egress and `backend`'s ingress both allow
    /// `protocol`/`port` (a port of `backend`).
    pub fn allowed(&self, backend: ClassId, protocol: Protocol, port: u16) -> BitSet {
        let model = self.model;
        let classes = model.classes.len();
        let destination = &model.classes[backend];
        // Ingress side: the peers of the backend's rules on that port.
        let ingress_policies = model.class_policies(Direction::Ingress, backend);
        let mut admitted = if ingress_policies.is_empty() || !destination.selectable {
            BitSet::full(classes)
        } else {
            let mut set = BitSet::new(classes);
            for &policy in ingress_policies {
                for rule in model.rules_of(policy, Direction::Ingress) {
                    if model
                        .ports_of(rule)
                        .allows(Some(destination), protocol, port)
                    {
                        set.union_with(&rule.peers.classes);
                    }
                }
            }
            set
        };
        // Egress side: clients not isolated, and those selected by a policy
        // with a rule toward the backend on that port.
        let mut sending = self.egress_open.clone();
        for (policy, selected) in self.egress_selected.iter().enumerate() {
            let Some(selected) = selected else { continue };
            let allows = model
                .rules_of(policy, Direction::Egress)
                .iter()
                .any(|rule| {
                    rule.peers.contains_class(backend)
                        && model
                            .ports_of(rule)
                            .allows(Some(destination), protocol, port)
                });
            if allows {
                sending.union_with(selected);
            }
        }
        admitted.intersect_with(&sending);
        admitted
    }
}
