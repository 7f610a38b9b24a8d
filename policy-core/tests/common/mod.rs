//! Shared by the property tests: random worlds (clusters, policies and
//! configurations) as k8s-openapi objects, and a naive evaluator of the spec
//! that shares no code with the model.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Pod, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use policy_core::{Config, HostNetworkMode, IpBlockMode, Loader, Model, SelfTraffic};
use proptest::prelude::*;

pub type Labels = BTreeMap<String, String>;

/// A rule's peers and ports, as written.
type RawRule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// One pod (or workload template) as the naive evaluator sees it.
#[derive(Clone, Debug)]
pub struct NaiveEndpoint {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub node: Option<String>,
    pub host_network: bool,
    pub ip: Option<Ipv4Addr>,
    /// A second, IPv6 address (dual stack); the naive evaluator reads only `ip`.
    pub ipv6: Option<std::net::Ipv6Addr>,
    pub ports: Vec<(Option<String>, u16, String)>,
}

#[derive(Clone, Debug)]
pub struct World {
    pub namespaces: Vec<(String, Labels)>,
    pub endpoints: Vec<NaiveEndpoint>,
    pub policies: Vec<NetworkPolicy>,
    pub config: Config,
}

pub mod naive {
    use super::*;

    pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
        let labels_ok = selector
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("generated an invalid operator {other}"),
            }
        });
        labels_ok && expressions_ok
    }

    pub fn in_cidr(ip: Ipv4Addr, cidr: &str) -> bool {
        let (address, prefix) = cidr.split_once('/').unwrap();
        let address: Ipv4Addr = address.parse().unwrap();
        let prefix: u32 = prefix.parse().unwrap();
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        u32::from(ip) & mask == u32::from(address) & mask
    }

    pub fn namespace_labels(world: &World, namespace: &str) -> Labels {
        let mut labels = world
            .namespaces
            .iter()
            .find(|(n, _)| n == namespace)
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), namespace.into());
        labels
    }

    fn is_node_traffic(world: &World, endpoint: &NaiveEndpoint) -> bool {
        endpoint.host_network && world.config.host_network == HostNetworkMode::Node
    }

    /// Ingress always; Egress if listed, or (types absent) if there are egress rules.
    fn policy_types(spec: &NetworkPolicySpec) -> (bool, bool) {
        match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
            Some(types) => (
                types.iter().any(|t| t == "Ingress"),
                types.iter().any(|t| t == "Egress"),
            ),
            None => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
        }
    }

    fn selects(world: &World, policy: &NetworkPolicy, endpoint: &NaiveEndpoint) -> bool {
        policy.metadata.namespace.as_deref() == Some(endpoint.namespace.as_str())
            && !is_node_traffic(world, endpoint)
            && selector_matches(
                &policy
                    .spec
                    .as_ref()
                    .unwrap()
                    .pod_selector
                    .clone()
                    .unwrap_or_default(),
                &endpoint.labels,
            )
    }

    fn peer_matches(
        world: &World,
        peers: Option<&Vec<NetworkPolicyPeer>>,
        policy_namespace: &str,
        endpoint: &NaiveEndpoint,
    ) -> bool {
        let Some(peers) = peers.filter(|p| !p.is_empty()) else {
            return true;
        };
        peers.iter().any(|peer| {
            if let Some(block) = &peer.ip_block {
                return world.config.ip_block == IpBlockMode::Match
                    && endpoint.ip.is_some_and(|ip| {
                        in_cidr(ip, &block.cidr)
                            && !block.except.iter().flatten().any(|e| in_cidr(ip, e))
                    });
            }
            if is_node_traffic(world, endpoint) {
                return false;
            }
            let namespace_ok = match &peer.namespace_selector {
                None => endpoint.namespace == policy_namespace,
                Some(selector) => {
                    selector_matches(selector, &namespace_labels(world, &endpoint.namespace))
                }
            };
            let pod_ok = match &peer.pod_selector {
                None => true,
                Some(selector) => selector_matches(selector, &endpoint.labels),
            };
            namespace_ok && pod_ok
        })
    }

    fn port_matches(
        ports: Option<&Vec<NetworkPolicyPort>>,
        destination: &NaiveEndpoint,
        protocol: &str,
        port: u16,
    ) -> bool {
        let Some(ports) = ports.filter(|p| !p.is_empty()) else {
            return true;
        };
        ports.iter().any(|p| {
            p.protocol.as_deref().unwrap_or("TCP") == protocol
                && match &p.port {
                    None => true,
                    Some(IntOrString::Int(first)) => {
                        let last = p.end_port.unwrap_or(*first);
                        (*first..=last).contains(&i32::from(port))
                    }
                    Some(IntOrString::String(name)) => {
                        destination.ports.iter().any(|(n, number, proto)| {
                            n.as_deref() == Some(name) && proto == protocol && *number == port
                        })
                    }
                }
        })
    }

    /// One side's NetworkPolicy answer for a pod-to-pod connection: `None`
    /// when no policy selects `subject` for that direction, else whether
    /// one of their rules allows it. (No special cases: the caller keeps to
    /// pods on the pod network, never a pod and itself.)
    pub fn network_policy_side(
        world: &World,
        subject: usize,
        peer: usize,
        egress: bool,
        protocol: &str,
        port: u16,
    ) -> Option<bool> {
        let s = &world.endpoints[subject];
        let p = &world.endpoints[peer];
        let destination = if egress { p } else { s };
        let selecting: Vec<&NetworkPolicy> = world
            .policies
            .iter()
            .filter(|policy| {
                let (ingress, egress_type) = policy_types(policy.spec.as_ref().unwrap());
                selects(world, policy, s) && if egress { egress_type } else { ingress }
            })
            .collect();
        if selecting.is_empty() {
            return None;
        }
        Some(selecting.iter().any(|policy| {
            let spec = policy.spec.as_ref().unwrap();
            let namespace = policy.metadata.namespace.as_deref().unwrap();
            let rules: Vec<RawRule<'_>> = if egress {
                (spec.egress.iter().flatten())
                    .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                    .collect()
            } else {
                (spec.ingress.iter().flatten())
                    .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                    .collect()
            };
            rules.into_iter().any(|(peers, ports)| {
                peer_matches(world, peers, namespace, p)
                    && port_matches(ports, destination, protocol, port)
            })
        }))
    }

    pub fn allowed(
        world: &World,
        source: usize,
        destination: usize,
        protocol: &str,
        port: u16,
    ) -> bool {
        if source == destination && world.config.self_traffic == SelfTraffic::Allow {
            return true;
        }
        let s = &world.endpoints[source];
        let d = &world.endpoints[destination];

        // DOC: "traffic to and from the node where a Pod is running is always allowed".
        let local_node = (is_node_traffic(world, s) || is_node_traffic(world, d))
            && s.node.is_some()
            && s.node == d.node;
        if local_node {
            return true;
        }
        let egress_policies: Vec<&NetworkPolicy> = world
            .policies
            .iter()
            .filter(|p| selects(world, p, s) && policy_types(p.spec.as_ref().unwrap()).1)
            .collect();
        let egress_ok = egress_policies.is_empty()
            || egress_policies.iter().any(|p| {
                p.spec
                    .as_ref()
                    .unwrap()
                    .egress
                    .iter()
                    .flatten()
                    .any(|rule| {
                        peer_matches(
                            world,
                            rule.to.as_ref(),
                            p.metadata.namespace.as_deref().unwrap(),
                            d,
                        ) && port_matches(rule.ports.as_ref(), d, protocol, port)
                    })
            });

        let ingress_policies: Vec<&NetworkPolicy> = world
            .policies
            .iter()
            .filter(|p| selects(world, p, d) && policy_types(p.spec.as_ref().unwrap()).0)
            .collect();
        let ingress_ok = ingress_policies.is_empty()
            || ingress_policies.iter().any(|p| {
                p.spec
                    .as_ref()
                    .unwrap()
                    .ingress
                    .iter()
                    .flatten()
                    .any(|rule| {
                        peer_matches(
                            world,
                            rule.from.as_ref(),
                            p.metadata.namespace.as_deref().unwrap(),
                            s,
                        ) && port_matches(rule.ports.as_ref(), d, protocol, port)
                    })
            });
        egress_ok && ingress_ok
    }

    /// A connection between a pod and an address outside the cluster (into
    /// the pod when `inbound`): the address has no policies, so the pod's
    /// side decides. Only rules without peers and ipBlocks match an address,
    /// and a named port never does (there is no pod to resolve it on).
    pub fn allowed_with_address(
        world: &World,
        endpoint: usize,
        address: Ipv4Addr,
        inbound: bool,
        protocol: &str,
        port: u16,
    ) -> bool {
        let e = &world.endpoints[endpoint];
        let no_ports = NaiveEndpoint {
            ports: Vec::new(),
            ..e.clone()
        };
        let destination = if inbound { e } else { &no_ports };
        let policies: Vec<&NetworkPolicy> = world
            .policies
            .iter()
            .filter(|p| {
                let (ingress, egress) = policy_types(p.spec.as_ref().unwrap());
                selects(world, p, e) && if inbound { ingress } else { egress }
            })
            .collect();
        if policies.is_empty() {
            return true;
        }
        policies.iter().any(|p| {
            let spec = p.spec.as_ref().unwrap();
            let rules: Vec<RawRule<'_>> = if inbound {
                spec.ingress
                    .iter()
                    .flatten()
                    .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                    .collect()
            } else {
                spec.egress
                    .iter()
                    .flatten()
                    .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                    .collect()
            };
            rules.into_iter().any(|(peers, ports)| {
                let peer_ok = match peers.filter(|p| !p.is_empty()) {
                    None => true,
                    Some(peers) => peers.iter().any(|peer| {
                        peer.ip_block.as_ref().is_some_and(|block| {
                            in_cidr(address, &block.cidr)
                                && !block.except.iter().flatten().any(|e| in_cidr(address, e))
                        })
                    }),
                };
                peer_ok && port_matches(ports, destination, protocol, port)
            })
        })
    }
}

// ---------------------------------------------------------------- strategies

pub const NAMESPACES: [&str; 3] = ["alpha", "beta", "gamma"];
pub const PORT_NAMES: [&str; 3] = ["http", "metrics", "dns"];
pub const PORT_NUMBERS: [u16; 4] = [53, 80, 81, 8080];
pub const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
pub const CIDRS: [&str; 5] = [
    "10.0.0.0/24",
    "10.0.0.0/26",
    "10.0.0.64/26",
    "192.168.0.0/16",
    "0.0.0.0/0",
];

fn labels_strategy(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map(
        proptest::sample::select(keys).prop_map(String::from),
        proptest::sample::select(values).prop_map(String::from),
        0..=keys.len(),
    )
}

pub fn pod_labels() -> impl Strategy<Value = Labels> {
    labels_strategy(&["app", "tier", "role"], &["web", "db", "api"])
}

pub fn namespace_labels() -> impl Strategy<Value = Labels> {
    labels_strategy(&["team", "env"], &["web", "db", "prod"])
}

pub fn selector(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = LabelSelector> {
    let expression = (
        proptest::sample::select(keys),
        proptest::sample::select(&["In", "NotIn", "Exists", "DoesNotExist"][..]),
        proptest::collection::vec(proptest::sample::select(values), 1..3),
    )
        .prop_map(|(key, operator, values)| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: matches!(operator, "In" | "NotIn")
                .then(|| values.iter().map(|v| v.to_string()).collect()),
        });
    (
        proptest::option::of(labels_strategy(keys, values)),
        proptest::option::of(proptest::collection::vec(expression, 0..3)),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
    let selectors = (
        proptest::option::of(selector(&["app", "tier", "role"], &["web", "db", "api"])),
        proptest::option::of(selector(
            &["team", "env", "kubernetes.io/metadata.name"],
            &["web", "db", "prod", "alpha", "beta"],
        )),
    )
        .prop_filter("a peer needs a field", |(p, n)| p.is_some() || n.is_some())
        .prop_map(|(pod_selector, namespace_selector)| NetworkPolicyPeer {
            pod_selector,
            namespace_selector,
            ip_block: None,
        });
    let block = (0..CIDRS.len(), any::<bool>()).prop_map(|(index, with_except)| {
        let cidr = CIDRS[index];
        // Excepts must be strict subsets of the cidr.
        let except = match (cidr, with_except) {
            ("10.0.0.0/24", true) => Some(vec!["10.0.0.0/28".to_string()]),
            ("0.0.0.0/0", true) => Some(vec![
                "10.0.0.0/25".to_string(),
                "192.168.0.0/24".to_string(),
            ]),
            _ => None,
        };
        NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.into(),
                except,
            }),
            ..Default::default()
        }
    });
    prop_oneof![3 => selectors, 1 => block]
}

fn port() -> impl Strategy<Value = NetworkPolicyPort> {
    let protocol =
        proptest::option::of(proptest::sample::select(&PROTOCOLS[..]).prop_map(String::from));
    let number = proptest::sample::select(&PORT_NUMBERS[..]);
    let value = prop_oneof![
        Just((None, None)),
        number
            .clone()
            .prop_map(|n| (Some(IntOrString::Int(i32::from(n))), None)),
        (number, 0..30u16).prop_map(|(n, width)| (
            Some(IntOrString::Int(i32::from(n))),
            Some(i32::from(n + width))
        )),
        proptest::sample::select(&PORT_NAMES[..])
            .prop_map(|name| (Some(IntOrString::String(name.into())), None)),
    ];
    (protocol, value).prop_map(|(protocol, (port, end_port))| NetworkPolicyPort {
        protocol,
        port,
        end_port,
    })
}

fn optional_list<T: std::fmt::Debug + Clone>(
    item: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<Vec<T>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        3 => proptest::collection::vec(item, 1..3).prop_map(Some),
    ]
}

pub fn policy(index: usize) -> impl Strategy<Value = NetworkPolicy> {
    let ingress_rule = (optional_list(peer()), optional_list(port()))
        .prop_map(|(from, ports)| NetworkPolicyIngressRule { from, ports });
    let egress_rule = (optional_list(peer()), optional_list(port()))
        .prop_map(|(to, ports)| NetworkPolicyEgressRule { to, ports });
    let types = prop_oneof![
        Just(None),
        Just(Some(vec!["Ingress".to_string()])),
        Just(Some(vec!["Egress".to_string()])),
        Just(Some(vec!["Ingress".to_string(), "Egress".to_string()])),
    ];
    (
        proptest::sample::select(&NAMESPACES[..]),
        proptest::option::of(selector(&["app", "tier", "role"], &["web", "db", "api"])),
        types,
        optional_list(ingress_rule),
        optional_list(egress_rule),
    )
        .prop_map(
            move |(namespace, pod_selector, policy_types, ingress, egress)| NetworkPolicy {
                metadata: ObjectMeta {
                    name: Some(format!("policy-{index}")),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                },
                spec: Some(NetworkPolicySpec {
                    pod_selector,
                    policy_types,
                    ingress,
                    egress,
                }),
            },
        )
}

pub fn endpoint(index: usize) -> impl Strategy<Value = NaiveEndpoint> {
    let container_ports = proptest::collection::vec(
        (
            proptest::option::of(proptest::sample::select(&PORT_NAMES[..]).prop_map(String::from)),
            proptest::sample::select(&PORT_NUMBERS[..]),
            proptest::sample::select(&PROTOCOLS[..]).prop_map(String::from),
        ),
        0..4,
    )
    .prop_map(|mut ports| {
        // Port names are unique within a pod (API validation).
        let mut seen = std::collections::HashSet::new();
        for port in &mut ports {
            if let Some(name) = &port.0
                && !seen.insert(name.clone())
            {
                port.0 = None;
            }
        }
        ports
    });
    (
        proptest::sample::select(&NAMESPACES[..]),
        pod_labels(),
        proptest::option::of(proptest::sample::select(&["node-1", "node-2"][..])),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.85),
        container_ports,
    )
        .prop_map(
            move |(namespace, labels, node, host_network, has_ip, ports)| {
                // Host-network pods carry their node's address; others a unique pod IP.
                let ip = match (has_ip, host_network, node) {
                    (false, _, _) => None,
                    (true, true, Some("node-2")) => Some(Ipv4Addr::new(192, 168, 0, 2)),
                    (true, true, _) => Some(Ipv4Addr::new(192, 168, 0, 1)),
                    (true, false, _) => Some(Ipv4Addr::new(10, 0, 0, 10 + index as u8 * 17)),
                };
                NaiveEndpoint {
                    namespace: namespace.into(),
                    name: format!("pod-{index}"),
                    labels,
                    node: node.map(String::from),
                    host_network,
                    ip,
                    ipv6: None,
                    ports,
                }
            },
        )
}

pub fn config() -> impl Strategy<Value = Config> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(ignore, pod, evaluate)| Config {
        address_family: policy_core::AddressFamily::Any,
        service_profile: Default::default(),
        ip_block: if ignore {
            IpBlockMode::Ignore
        } else {
            IpBlockMode::Match
        },
        host_network: if pod {
            HostNetworkMode::Pod
        } else {
            HostNetworkMode::Node
        },
        self_traffic: if evaluate {
            SelfTraffic::Evaluate
        } else {
            SelfTraffic::Allow
        },
    })
}

pub fn world() -> impl Strategy<Value = World> {
    let namespaces =
        proptest::collection::vec(namespace_labels(), NAMESPACES.len()).prop_map(|labels| {
            NAMESPACES
                .iter()
                .map(|n| n.to_string())
                .zip(labels)
                .collect::<Vec<_>>()
        });
    let endpoints = (1usize..9).prop_flat_map(|count| (0..count).map(endpoint).collect::<Vec<_>>());
    let policies = (0usize..6).prop_flat_map(|count| (0..count).map(policy).collect::<Vec<_>>());
    (namespaces, endpoints, policies, config(), any::<bool>()).prop_map(
        |(namespaces, mut endpoints, policies, config, templates)| {
            // Some endpoints become Deployment templates: no IP, no node.
            if templates {
                for endpoint in endpoints.iter_mut().step_by(3) {
                    endpoint.name = endpoint.name.replace("pod", "deploy");
                    endpoint.ip = None;
                    endpoint.node = None;
                }
            }
            World {
                namespaces,
                endpoints,
                policies,
                config,
            }
        },
    )
}

// ------------------------------------------------------------ the property

fn pod_spec(endpoint: &NaiveEndpoint) -> PodSpec {
    PodSpec {
        node_name: endpoint.node.clone(),
        host_network: Some(endpoint.host_network),
        containers: vec![Container {
            name: "main".into(),
            ports: Some(
                endpoint
                    .ports
                    .iter()
                    .map(|(name, number, protocol)| ContainerPort {
                        name: name.clone(),
                        container_port: i32::from(*number),
                        protocol: Some(protocol.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn build_model(world: &World) -> Model {
    Model::new(build_cluster(world), world.config)
}

/// The world, loaded (panics on a diagnostic error: generated input is valid).
pub fn build_cluster(world: &World) -> policy_core::Cluster {
    build_cluster_with(world, "")
}

/// The world and `manifests` (YAML, e.g. admin policies), loaded together.
pub fn build_cluster_with(world: &World, manifests: &str) -> policy_core::Cluster {
    let mut loader = Loader::new();
    if !manifests.is_empty() {
        loader.load_str("generated.yaml", manifests);
    }
    for (name, labels) in &world.namespaces {
        loader.add(Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    for endpoint in &world.endpoints {
        let metadata = ObjectMeta {
            name: Some(endpoint.name.clone()),
            namespace: Some(endpoint.namespace.clone()),
            labels: Some(endpoint.labels.clone()),
            ..Default::default()
        };
        if endpoint.name.starts_with("deploy") {
            loader.add(Deployment {
                metadata: metadata.clone(),
                spec: DeploymentSpec {
                    template: PodTemplateSpec {
                        metadata: Some(metadata),
                        spec: Some(pod_spec(endpoint)),
                    },
                    ..Default::default()
                },
                ..Default::default()
            });
        } else {
            loader.add(Pod {
                metadata,
                spec: Some(pod_spec(endpoint)),
                status: endpoint.ip.map(|ip| PodStatus {
                    pod_ip: Some(ip.to_string()),
                    pod_ips: Some(
                        std::iter::once(ip.to_string())
                            .chain(endpoint.ipv6.map(|v6| v6.to_string()))
                            .map(|ip| k8s_openapi::api::core::v1::PodIP { ip })
                            .collect(),
                    ),
                    ..Default::default()
                }),
            });
        }
    }
    for policy in &world.policies {
        loader.add(policy.clone());
    }
    let loaded = loader.finish();
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == policy_core::Severity::Error)
        .collect();
    assert!(
        errors.is_empty(),
        "generated input was rejected: {errors:#?}"
    );
    loaded.cluster
}
