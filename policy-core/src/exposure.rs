//! Every way into the cluster from outside, and who gets through.
//!
//! [`exposure`] lists the entry points (NodePorts on each node address,
//! load-balancer IPs, external IPs, Ingress routes, hostPorts and
//! host-network pods) and, for each pod an entry leads to, the outside
//! addresses its policies let in. The source address a backend's policy
//! sees depends on `externalTrafficPolicy` and on where the filter sits
//! relative to kube-proxy's masquerade ([`ServiceProfile`]); see
//! docs/SEMANTICS.md §17.4.

use std::net::IpAddr;

use crate::cluster::{BackendPort, EndpointId, IngressRoute, Service, ServiceType, TrafficPolicy};
use crate::config::ServiceProfile;
use crate::ipset::IpSet;
use crate::model::{BackendTarget, Model, PortQuery, QueryEndpoint, ServiceId};
use crate::ports::Protocol;
use crate::selector::Labels;

/// How traffic enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A Service's node port, on a node address.
    NodePort,
    /// A load balancer's address (`status.loadBalancer.ingress`).
    LoadBalancer,
    /// A Service's `externalIPs`.
    ExternalIp,
    /// An Ingress route, through the ingress controller's pods.
    Ingress,
    /// A container's `hostPort`, on its node's addresses.
    HostPort,
    /// A host-network pod's port: node traffic, which no policy filters.
    HostNetwork,
}

impl EntryKind {
    /// The spelling in output.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::NodePort => "NodePort",
            EntryKind::LoadBalancer => "LoadBalancer",
            EntryKind::ExternalIp => "ExternalIP",
            EntryKind::Ingress => "Ingress",
            EntryKind::HostPort => "hostPort",
            EntryKind::HostNetwork => "hostNetwork",
        }
    }
}

/// A pod an entry leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryTarget {
    /// The pod.
    pub pod: EndpointId,
    /// The port on it.
    pub port: u16,
    /// The outside addresses that get through to it once policies apply.
    pub sources: IpSet,
    /// True when the service proxy's source NAT hides the client: the
    /// pod's policies see a node's address, so `ipBlock`s on client ranges
    /// decide nothing for this path.
    pub client_hidden: bool,
    /// Ingress only: the controller pods that may forward to this pod.
    pub via_controllers: Vec<EndpointId>,
}

/// One entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// How traffic enters.
    pub via: EntryKind,
    /// The address clients connect to; `None` for "each node" when the
    /// input has no Node objects, and for Ingress routes.
    pub address: Option<IpAddr>,
    /// The load balancer's host name, when it has one instead of an address.
    pub hostname: Option<String>,
    /// The node that receives the traffic, when it is known.
    pub node: Option<String>,
    /// The port clients connect to; `None` for a node port the API server
    /// allocates (the manifest does not say which).
    pub port: Option<u16>,
    /// The protocol.
    pub protocol: Protocol,
    /// The Service behind it.
    pub service: Option<ServiceId>,
    /// Ingress only: `namespace/name`, host and path.
    pub ingress: Option<(String, Option<String>, Option<String>)>,
    /// The pods it leads to.
    pub targets: Vec<EntryTarget>,
    /// What the model could not know, in words.
    pub notes: Vec<String>,
}

/// How the ingress controllers' pods are found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngressControllers {
    /// A namespace and label selector that overrides the IngressClasses.
    pub selector: Option<(Option<String>, Labels)>,
}

/// The pod labels of ingress-nginx's controller, as its own manifests set
/// them: the conventional default.
pub fn ingress_nginx_labels() -> Labels {
    [
        ("app.kubernetes.io/name", "ingress-nginx"),
        ("app.kubernetes.io/component", "controller"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The `spec.controller` of ingress-nginx's IngressClass.
pub const INGRESS_NGINX_CONTROLLER: &str = "k8s.io/ingress-nginx";

/// Every entry point of the model's cluster.
pub fn exposure(model: &Model, controllers: &IngressControllers) -> Vec<Entry> {
    let cluster = model.cluster();
    let mut entries = Vec::new();
    for service_id in 0..cluster.services.len() {
        service_entries(model, service_id, &mut entries);
    }
    host_entries(model, &mut entries);
    for ingress in &cluster.ingresses {
        for route in &ingress.routes {
            entries.push(ingress_entry(model, controllers, ingress, route, &entries));
        }
    }
    entries
}

/// The node addresses clients use: every address of every Node, with the
/// node's name. Empty when the input has no Node objects.
fn node_entry_addresses(model: &Model) -> Vec<(IpAddr, String)> {
    model
        .cluster()
        .nodes
        .iter()
        .flat_map(|n| n.addresses.iter().map(|a| (a.address, n.name.clone())))
        .collect()
}

/// The outside addresses a pod lets in on a port (its ingress side alone:
/// an outside client has no policy of its own).
fn admitted(model: &Model, pod: EndpointId, protocol: Protocol, port: u16) -> IpSet {
    model.ingress_addresses(model.class_of(pod), protocol, port)
}

/// What reaches `pod` when traffic enters on node `entry_node` (`None`:
/// unknown), under `policy` and the model's profile. Returns the sources
/// and whether the client is hidden.
fn through_node(
    model: &Model,
    pod: EndpointId,
    protocol: Protocol,
    port: u16,
    entry_node: Option<&str>,
    policy: TrafficPolicy,
) -> (IpSet, bool) {
    let direct = admitted(model, pod, protocol, port);
    if policy == TrafficPolicy::Local {
        return (direct, false);
    }
    let pod_node = model.cluster().endpoints[pod].node.as_deref();
    let same_node = match (entry_node, pod_node) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    // The backend sees the entry node's address: from its own node that is
    // always allowed; from another node its policy decides.
    let seen_as_node = |same: bool| -> IpSet {
        if same {
            return IpSet::everything();
        }
        // kube-proxy's masquerade gives the packet the receiving node's
        // address of the client's family; each family is decided apart.
        let node = entry_node.and_then(|n| model.cluster().node(n));
        let mut seen = IpSet::empty();
        for (family, example) in [
            (v4_space(), IpAddr::from([0, 0, 0, 0])),
            (v6_space(), IpAddr::from([0u16; 8])),
        ] {
            let allowed = match node.map(|n| n.masquerade_address(example)) {
                Some(Some(address)) => direct.contains(address),
                Some(None) => false,
                // Unknown node address: only a rule admitting everything is sure to admit it.
                None => direct.intersection(&family) == family,
            };
            if allowed {
                seen.union_with(&family);
            }
        }
        seen
    };
    match model.config().service_profile {
        ServiceProfile::ClientPreserved => (direct, false),
        ServiceProfile::SnatBeforePolicy => match same_node {
            Some(same) => (seen_as_node(same), true),
            None => {
                let mut either = seen_as_node(true);
                either.union_with(&seen_as_node(false));
                (either, true)
            }
        },
        ServiceProfile::Netpol => match same_node {
            Some(true) => (direct, false),
            Some(false) => (seen_as_node(false), true),
            None => {
                let mut either = seen_as_node(false);
                either.union_with(&direct);
                (either, true)
            }
        },
    }
}

fn v4_space() -> IpSet {
    IpSet::from_range(
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::from([255, 255, 255, 255]),
    )
}

fn v6_space() -> IpSet {
    IpSet::from_range(IpAddr::from([0u16; 8]), IpAddr::from([0xffffu16; 8]))
}

fn model_node(model: &Model, name: &str) -> Option<Vec<IpAddr>> {
    model
        .cluster()
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.addresses.iter().map(|a| a.address).collect())
}

fn service_entries(model: &Model, service_id: ServiceId, entries: &mut Vec<Entry>) {
    let service: &Service = &model.cluster().services[service_id];
    // Only these open anything to the outside; skip the rest before the
    // (comparatively costly) backend lookup.
    let reachable_from_outside = service.service_type.has_node_ports()
        || !service.external_ips.is_empty()
        || (service.service_type == ServiceType::LoadBalancer
            && !(service.load_balancer_ips.is_empty()
                && service.load_balancer_hostnames.is_empty()));
    if service.service_type == ServiceType::ExternalName || !reachable_from_outside {
        return;
    }
    let nodes = node_entry_addresses(model);
    for (port_index, port) in service.ports.iter().enumerate() {
        let backends = model.service_backends(service_id, port_index);
        let pods: Vec<(EndpointId, u16)> = backends
            .backends
            .iter()
            .filter_map(|b| match b.target {
                BackendTarget::Endpoint(id) => Some((id, b.port)),
                BackendTarget::Address(_) => None,
            })
            .collect();
        let etp = service.external_traffic_policy;
        let entry = |via, address, node: Option<String>, entry_port: Option<u16>| Entry {
            via,
            address,
            hostname: None,
            node,
            port: entry_port,
            protocol: port.protocol,
            service: Some(service_id),
            ingress: None,
            targets: Vec::new(),
            notes: Vec::new(),
        };
        // A node port, on each node's addresses.
        if service.service_type.has_node_ports() {
            let node_port = port.node_port;
            let receivers: Vec<(Option<IpAddr>, Option<String>)> = if nodes.is_empty() {
                vec![(None, None)]
            } else {
                nodes
                    .iter()
                    .map(|(a, n)| (Some(*a), Some(n.clone())))
                    .collect()
            };
            for (address, node) in receivers {
                let mut e = entry(EntryKind::NodePort, address, node.clone(), node_port);
                for &(pod, target_port) in &pods {
                    let pod_node = model.cluster().endpoints[pod].node.as_deref();
                    if etp == TrafficPolicy::Local
                        && node.is_some()
                        && pod_node.is_some()
                        && pod_node != node.as_deref()
                    {
                        continue;
                    }
                    let (sources, client_hidden) =
                        through_node(model, pod, port.protocol, target_port, node.as_deref(), etp);
                    e.targets.push(EntryTarget {
                        pod,
                        port: target_port,
                        sources,
                        client_hidden,
                        via_controllers: Vec::new(),
                    });
                }
                if node.is_none() {
                    e.notes.push("the input has no Node objects: the node port opens on every node's addresses".to_string());
                }
                if node_port.is_none() {
                    e.notes.push(
                        "the API server allocates the node port (30000-32767 by default)"
                            .to_string(),
                    );
                }
                if etp == TrafficPolicy::Local && e.targets.is_empty() {
                    e.notes.push("externalTrafficPolicy: Local and no backend on this node: connections are dropped".to_string());
                }
                if service.load_balancer_source_ranges.is_some() {
                    e.notes.push("loadBalancerSourceRanges restrict only the load balancer's address, not the node port".to_string());
                }
                entries.push(e);
            }
        }
        // Load-balancer and external addresses: any node may receive.
        let mut virtuals: Vec<(EntryKind, Option<IpAddr>, Option<String>)> = Vec::new();
        if service.service_type == ServiceType::LoadBalancer {
            virtuals.extend(
                service
                    .load_balancer_ips
                    .iter()
                    .map(|ip| (EntryKind::LoadBalancer, Some(*ip), None)),
            );
            virtuals.extend(
                service
                    .load_balancer_hostnames
                    .iter()
                    .map(|h| (EntryKind::LoadBalancer, None, Some(h.clone()))),
            );
        }
        virtuals.extend(
            service
                .external_ips
                .iter()
                .map(|ip| (EntryKind::ExternalIp, Some(*ip), None)),
        );
        for (via, address, hostname) in virtuals {
            let mut e = entry(via, address, None, Some(port.port));
            e.hostname = hostname;
            let ranges = match via {
                EntryKind::LoadBalancer => service.load_balancer_source_ranges.clone(),
                _ => None,
            };
            let receiving: Vec<Option<&str>> = if nodes.is_empty() {
                vec![None]
            } else {
                model
                    .cluster()
                    .nodes
                    .iter()
                    .map(|n| Some(n.name.as_str()))
                    .collect()
            };
            for &(pod, target_port) in &pods {
                let mut sources = IpSet::empty();
                let mut hidden = false;
                for node in &receiving {
                    let (s, h) = through_node(model, pod, port.protocol, target_port, *node, etp);
                    sources.union_with(&s);
                    hidden |= h;
                }
                if let Some(ranges) = &ranges {
                    sources = sources.intersection(ranges);
                }
                e.targets.push(EntryTarget {
                    pod,
                    port: target_port,
                    sources,
                    client_hidden: hidden,
                    via_controllers: Vec::new(),
                });
            }
            entries.push(e);
        }
    }
}

fn host_entries(model: &Model, entries: &mut Vec<Entry>) {
    let cluster = model.cluster();
    for (id, endpoint) in cluster.endpoints.iter().enumerate() {
        let addresses: Vec<Option<IpAddr>> = match &endpoint.node {
            Some(node) => match model_node(model, node) {
                Some(addresses) if !addresses.is_empty() => {
                    addresses.into_iter().map(Some).collect()
                }
                _ if endpoint.host_network && !endpoint.ips.is_empty() => {
                    endpoint.ips.iter().copied().map(Some).collect()
                }
                _ => vec![None],
            },
            None => vec![None],
        };
        for port in &endpoint.ports {
            let (via, entry_port) = if endpoint.host_network {
                (EntryKind::HostNetwork, port.port)
            } else if let Some(host_port) = port.host_port {
                (EntryKind::HostPort, host_port)
            } else {
                continue;
            };
            for address in &addresses {
                let sources = if endpoint.host_network {
                    IpSet::everything()
                } else {
                    admitted(model, id, port.protocol, port.port)
                };
                entries.push(Entry {
                    via,
                    address: *address,
                    hostname: None,
                    node: endpoint.node.clone(),
                    port: Some(entry_port),
                    protocol: port.protocol,
                    service: None,
                    ingress: None,
                    targets: vec![EntryTarget {
                        pod: id,
                        port: port.port,
                        sources,
                        client_hidden: false,
                        via_controllers: Vec::new(),
                    }],
                    notes: if endpoint.host_network {
                        vec!["a host-network pod's traffic is node traffic: no NetworkPolicy filters it".to_string()]
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }
}

/// The controller pods that serve an Ingress of class `class`.
fn controller_pods(
    model: &Model,
    controllers: &IngressControllers,
    class: Option<&str>,
) -> (Vec<EndpointId>, String) {
    let cluster = model.cluster();
    let (namespace, labels, description) = match &controllers.selector {
        Some((namespace, labels)) => (
            namespace.clone(),
            labels.clone(),
            "the --ingress-controller selector".to_string(),
        ),
        None => {
            let ingress_class = match class {
                Some(name) => cluster.ingress_classes.iter().find(|c| c.name == name),
                None => cluster.ingress_classes.iter().find(|c| c.default),
            };
            match ingress_class {
                Some(c) if c.controller != INGRESS_NGINX_CONTROLLER => {
                    return (
                        Vec::new(),
                        format!(
                            "IngressClass {} names controller {:?}, whose pods netpol cannot recognise: pass --ingress-controller NAMESPACE/SELECTOR",
                            c.name, c.controller
                        ),
                    );
                }
                _ => (
                    None,
                    ingress_nginx_labels(),
                    "ingress-nginx's conventional pod labels".to_string(),
                ),
            }
        }
    };
    let pods = (0..cluster.endpoints.len())
        .filter(|&id| {
            let e = &cluster.endpoints[id];
            namespace.as_ref().is_none_or(|n| &e.namespace == n)
                && labels.iter().all(|(k, v)| e.labels.get(k) == Some(v))
        })
        .collect();
    (pods, description)
}

fn ingress_entry(
    model: &Model,
    controllers: &IngressControllers,
    ingress: &crate::cluster::Ingress,
    route: &IngressRoute,
    earlier: &[Entry],
) -> Entry {
    let mut entry = Entry {
        via: EntryKind::Ingress,
        address: None,
        hostname: None,
        node: None,
        port: None,
        protocol: Protocol::Tcp,
        service: None,
        ingress: Some((
            format!("{}/{}", ingress.namespace, ingress.name),
            route.host.clone(),
            route.path.clone(),
        )),
        targets: Vec::new(),
        notes: Vec::new(),
    };
    let Some(service_id) = model.find_service(&ingress.namespace, &route.service) else {
        entry.notes.push(format!(
            "Service {}/{} is not in the input",
            ingress.namespace, route.service
        ));
        return entry;
    };
    entry.service = Some(service_id);
    let port_query = match &route.port {
        BackendPort::Number(n) => PortQuery::Number(*n),
        BackendPort::Name(n) => PortQuery::Name(n.clone()),
    };
    let Ok(port_index) = model.service_port(service_id, &port_query, Some(Protocol::Tcp)) else {
        entry.notes.push(format!(
            "Service {}/{} has no TCP port {}",
            ingress.namespace, route.service, route.port
        ));
        return entry;
    };
    entry.port = Some(model.cluster().services[service_id].ports[port_index].port);
    let (controller_pods, description) =
        controller_pods(model, controllers, ingress.class.as_deref());
    if controller_pods.is_empty() {
        entry.notes.push(format!(
            "no ingress controller pod found ({description}); nothing can be said about what reaches the backends"
        ));
        return entry;
    }
    // What reaches the controllers from outside: their own entries.
    let mut controller_sources = IpSet::empty();
    let mut controller_exposed = false;
    for e in earlier {
        for t in &e.targets {
            if controller_pods.contains(&t.pod) {
                controller_sources.union_with(&t.sources);
                controller_exposed = true;
            }
        }
    }
    if !controller_exposed {
        controller_sources = IpSet::everything();
        entry.notes.push(
            "the controller's own Service is not in the input: every outside address is assumed to reach it"
                .to_string(),
        );
    }
    let backends = model.service_backends(service_id, port_index);
    for backend in &backends.backends {
        let BackendTarget::Endpoint(pod) = backend.target else {
            continue;
        };
        let via: Vec<EndpointId> = controller_pods
            .iter()
            .copied()
            .filter(|&controller| {
                model
                    .query(
                        QueryEndpoint::Endpoint(controller),
                        QueryEndpoint::Endpoint(pod),
                        &PortQuery::Number(backend.port),
                        backend.protocol,
                    )
                    .is_ok_and(|v| v.allowed())
            })
            .collect();
        entry.targets.push(EntryTarget {
            pod,
            port: backend.port,
            sources: if via.is_empty() {
                IpSet::empty()
            } else {
                controller_sources.clone()
            },
            client_hidden: true,
            via_controllers: via,
        });
    }
    entry
}
