//! Lowering the model to one node's ruleset.
//!
//! The kernel identifies a peer by its address alone, so every peer set of
//! the model becomes an address set: the addresses of the pods of each peer
//! class, plus the ipBlocks (minus pod addresses when ipBlocks must not match
//! pods). Ports resolve on the destination: for ingress that is the local
//! pod's class; for egress each destination class in turn.
//!
//! Each address family is compiled from a model of its own (see
//! [`AddressFamily`]): a packet is IPv4 or IPv6, and a dual-stack pod matches
//! an IPv4 ipBlock only over IPv4. Chains are per class, direction and family.
//!
//! Each chain's (address, ports) pairs are made disjoint in address before
//! they become set elements: the address space is cut at every boundary, and
//! each piece gets the union of the ports of the pairs that cover it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use policy_core::config::{AddressFamily, HostNetworkMode, IpBlockMode, SelfTraffic};
use policy_core::ipset::{Family, IpSet, IpSetBuilder, overlay};
use policy_core::model::{ClassId, Model, PeerSet, RulePorts};
use policy_core::{Config, Direction, PortSet};

use crate::ruleset::{ClassChain, NodeRuleset};

/// Why a model cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// The model treats host-network pods as ordinary pods, which the kernel
    /// cannot tell from their node.
    HostNetworkAsPods,
    /// The model evaluates a pod reaching itself, which never crosses the
    /// node's filter.
    SelfTrafficEvaluated,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::HostNetworkAsPods => f.write_str(
                "the kernel cannot enforce --host-network pod: a host-network pod's traffic is its node's; compile with --host-network node",
            ),
            CompileError::SelfTrafficEvaluated => f.write_str(
                "the kernel cannot enforce --self-traffic evaluate: a pod's traffic to itself never leaves it; compile with --self-traffic allow",
            ),
        }
    }
}

impl std::error::Error for CompileError {}

/// Endpoints on a node that the ruleset cannot cover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unenforceable {
    /// Endpoints placed on the node that have no IP address (workload
    /// templates, pods without `status.podIPs`).
    pub without_address: Vec<String>,
}

/// One family's view: its model, and the addresses of that family.
struct FamilyView<'m> {
    family: Family,
    model: ModelRef<'m>,
    /// Per class, the addresses (of this family) of its members.
    class_addresses: Vec<IpSet>,
    /// Every pod address of this family; ipBlocks exclude them when they must not match pods.
    endpoint_addresses: IpSet,
    /// The whole address space of this family.
    universe: IpSet,
    /// The addresses each peer set stands for, computed once for all nodes.
    /// Keyed by the peer set's address in the model, which outlives the compiler.
    peer_addresses: Mutex<HashMap<usize, Arc<IpSet>>>,
}

/// The caller's model, or one built for a single address family.
enum ModelRef<'m> {
    Borrowed(&'m Model),
    Owned(Box<Model>),
}

impl std::ops::Deref for ModelRef<'_> {
    type Target = Model;

    fn deref(&self) -> &Model {
        match self {
            ModelRef::Borrowed(model) => model,
            ModelRef::Owned(model) => model,
        }
    }
}

/// Everything about the cluster the compiler needs, computed once for all nodes.
pub struct Compiler<'m> {
    views: Vec<FamilyView<'m>>,
}

fn universe(family: Family) -> IpSet {
    let whole = IpSet::everything();
    let other = match family {
        Family::V4 => IpSet::from_range(
            "::".parse().expect("address"),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .expect("address"),
        ),
        Family::V6 => IpSet::from_range(
            "0.0.0.0".parse().expect("address"),
            "255.255.255.255".parse().expect("address"),
        ),
    };
    whole.difference(&other)
}

impl<'m> Compiler<'m> {
    /// Prepares to compile rulesets for the nodes of `model`. When the
    /// model's answers depend on the address family (dual-stack pods and
    /// ipBlocks that match pods), a model per family is built from its cluster.
    pub fn new(model: &'m Model) -> Result<Self, CompileError> {
        let config = *model.config();
        if config.host_network == HostNetworkMode::Pod {
            return Err(CompileError::HostNetworkAsPods);
        }
        if config.self_traffic == SelfTraffic::Evaluate {
            return Err(CompileError::SelfTrafficEvaluated);
        }
        let cluster = model.cluster();
        let dual_stack = cluster
            .endpoints
            .iter()
            .any(|e| e.ips.iter().any(IpAddr::is_ipv4) && e.ips.iter().any(IpAddr::is_ipv6));
        // Each family's chains need that family's exact answers, whatever
        // --family the caller's model was built with.
        let family_matters = dual_stack && config.ip_block == IpBlockMode::Match;
        let mut views = Vec::new();
        for (family, scope) in [
            (Family::V4, AddressFamily::Ipv4),
            (Family::V6, AddressFamily::Ipv6),
        ] {
            let model = if family_matters && config.address_family != scope {
                ModelRef::Owned(Box::new(Model::new(
                    cluster.clone(),
                    Config {
                        address_family: scope,
                        ..config
                    },
                )))
            } else {
                ModelRef::Borrowed(model)
            };
            let universe = universe(family);
            let mut class_builders = vec![IpSetBuilder::default(); model.classes().len()];
            let mut endpoint_builder = IpSetBuilder::default();
            for (id, endpoint) in model.cluster().endpoints.iter().enumerate() {
                for &ip in endpoint.ips.iter().filter(|ip| universe.contains(**ip)) {
                    class_builders[model.class_of(id)].add_address(ip);
                    endpoint_builder.add_address(ip);
                }
            }
            let class_addresses = class_builders
                .into_iter()
                .map(IpSetBuilder::build)
                .collect();
            let endpoint_addresses = endpoint_builder.build();
            views.push(FamilyView {
                family,
                model,
                class_addresses,
                endpoint_addresses,
                universe,
                peer_addresses: Mutex::default(),
            });
        }
        Ok(Compiler { views })
    }

    /// The ruleset of one node, and what on that node cannot be enforced.
    pub fn compile(&self, node: &str) -> (NodeRuleset, Unenforceable) {
        let mut unenforceable = Unenforceable::default();
        let mut ruleset = NodeRuleset {
            node: node.to_string(),
            ingress_dispatch: Vec::new(),
            egress_dispatch: Vec::new(),
            local_node_addresses: IpSet::empty(),
            pod_addresses: IpSet::union_all(self.views.iter().map(|v| &v.endpoint_addresses)),
            chains: Vec::new(),
        };
        // The node's own addresses: traffic between a pod and its node is
        // always allowed (docs/SEMANTICS.md §17.7).
        let mut local_node_addresses: Vec<IpAddr> = self.views[0]
            .model
            .cluster()
            .nodes
            .iter()
            .filter(|n| n.name == node)
            .flat_map(|n| n.addresses.iter().map(|a| a.address))
            .collect();
        for view in &self.views {
            let model = &view.model;
            let cluster = model.cluster();
            let mut local_classes: BTreeMap<ClassId, Vec<usize>> = BTreeMap::new();
            for (id, endpoint) in cluster.endpoints.iter().enumerate() {
                if endpoint.node.as_deref() != Some(node) {
                    continue;
                }
                if endpoint.ips.is_empty() {
                    if view.family == Family::V4 {
                        unenforceable
                            .without_address
                            .push(cluster.endpoint_name(id).to_string());
                    }
                    continue;
                }
                let addresses: Vec<IpAddr> = endpoint
                    .ips
                    .iter()
                    .copied()
                    .filter(|ip| view.universe.contains(*ip))
                    .collect();
                if addresses.is_empty() {
                    continue;
                }
                if endpoint.host_network {
                    local_node_addresses.extend(addresses);
                    continue;
                }
                local_classes
                    .entry(model.class_of(id))
                    .or_default()
                    .push(id);
            }
            let suffix = match view.family {
                Family::V4 => "v4",
                Family::V6 => "v6",
            };
            for (&class, members) in &local_classes {
                for direction in [Direction::Ingress, Direction::Egress] {
                    let Some(grants) = model.grants(direction, class) else {
                        continue;
                    };
                    let name = format!("{}_c{class}_{suffix}", direction.field());
                    let (any_protocol, ports) =
                        self.chain_contents(view, direction, class, &grants);
                    let policies = model
                        .policies_selecting(members[0], direction)
                        .iter()
                        .map(|&p| cluster.policies[p].reference())
                        .collect();
                    ruleset.chains.push(ClassChain {
                        name: name.clone(),
                        family: view.family,
                        direction,
                        class,
                        members: members
                            .iter()
                            .map(|&m| cluster.endpoint_name(m).to_string())
                            .collect(),
                        policies,
                        any_protocol,
                        ports,
                    });
                    let dispatch = match direction {
                        Direction::Ingress => &mut ruleset.ingress_dispatch,
                        Direction::Egress => &mut ruleset.egress_dispatch,
                    };
                    for &member in members {
                        for &ip in cluster.endpoints[member]
                            .ips
                            .iter()
                            .filter(|ip| view.universe.contains(**ip))
                        {
                            dispatch.push((ip, name.clone()));
                        }
                    }
                }
            }
        }
        ruleset.local_node_addresses = local_node_addresses.into_iter().collect();
        ruleset.ingress_dispatch.sort();
        ruleset.egress_dispatch.sort();
        (ruleset, unenforceable)
    }

    /// The addresses an ipBlock part of a peer set stands for.
    fn block_addresses(&self, view: &FamilyView<'_>, peers: &PeerSet) -> IpSet {
        let addresses = if peers.everyone {
            IpSet::everything()
        } else {
            match view.model.config().ip_block {
                IpBlockMode::Match => peers.addresses.clone(),
                // ipBlocks match only addresses outside the cluster.
                IpBlockMode::Ignore => peers.addresses.difference(&view.endpoint_addresses),
            }
        };
        addresses.intersection(&view.universe)
    }

    /// Every address a peer set matches: its classes' pods and its ipBlocks.
    /// Rules are shared by many classes and nodes, so this is cached.
    fn peer_addresses(&self, view: &FamilyView<'_>, peers: &PeerSet) -> Arc<IpSet> {
        let key = std::ptr::from_ref(peers) as usize;
        if let Some(addresses) = lock(&view.peer_addresses).get(&key) {
            return Arc::clone(addresses);
        }
        let addresses = if peers.everyone {
            // Every class and every block: the whole family.
            view.universe.clone()
        } else {
            let mut builder = IpSetBuilder::default();
            for class in peers.classes.ones() {
                builder.add_set(&view.class_addresses[class]);
            }
            builder.add_set(&self.block_addresses(view, peers));
            builder.build()
        };
        let addresses = Arc::new(addresses);
        lock(&view.peer_addresses).insert(key, Arc::clone(&addresses));
        addresses
    }

    /// The any-protocol peers and the disjoint (peers, ports) pairs of one chain.
    fn chain_contents(
        &self,
        view: &FamilyView<'_>,
        direction: Direction,
        class: ClassId,
        grants: &[(&PeerSet, &RulePorts)],
    ) -> (IpSet, Vec<(IpSet, PortSet)>) {
        let classes = view.model.classes();
        let mut any_protocol = IpSetBuilder::default();
        // Peers grouped by port set: (ports → peers with at least those ports).
        let mut by_ports: BTreeMap<PortSet, IpSetBuilder> = BTreeMap::new();
        let mut add = |addresses: &IpSet, ports: PortSet| {
            if addresses.is_empty() || ports.is_empty() {
                return;
            }
            if ports.is_all() {
                any_protocol.add_set(addresses);
            } else {
                by_ports.entry(ports).or_default().add_set(addresses);
            }
        };
        for (peers, ports) in grants {
            match direction {
                // Ports resolve on the destination: the local pod's class.
                Direction::Ingress => add(
                    &self.peer_addresses(view, peers),
                    ports.resolve(Some(&classes[class])),
                ),
                // Ports resolve on each destination class; addresses have no named ports.
                Direction::Egress if ports.all || ports.named.is_empty() => {
                    add(&self.peer_addresses(view, peers), ports.resolve(None));
                }
                Direction::Egress => {
                    let destinations: Box<dyn Iterator<Item = ClassId>> = if peers.everyone {
                        Box::new(0..classes.len())
                    } else {
                        Box::new(peers.classes.ones())
                    };
                    // Destinations whose named ports have the same numbers
                    // resolve alike: group them before touching port sets.
                    let mut by_numbers: HashMap<Vec<Option<u16>>, (ClassId, IpSetBuilder)> =
                        HashMap::new();
                    for destination in destinations {
                        let numbers = ports
                            .named
                            .iter()
                            .map(|(protocol, name)| {
                                classes[destination].named_port(name, *protocol)
                            })
                            .collect();
                        by_numbers
                            .entry(numbers)
                            .or_insert_with(|| (destination, IpSetBuilder::default()))
                            .1
                            .add_set(&view.class_addresses[destination]);
                    }
                    for (example, addresses) in by_numbers.into_values() {
                        add(&addresses.build(), ports.resolve(Some(&classes[example])));
                    }
                    add(&self.block_addresses(view, peers), ports.resolve(None));
                }
            }
        }
        // Make the address sets disjoint: split them by which port sets
        // cover each address, give each part the union of those port sets,
        // and merge parts that end up with equal ports.
        let groups: Vec<(PortSet, IpSet)> = by_ports
            .into_iter()
            .map(|(ports, addresses)| (ports, addresses.build()))
            .collect();
        let mut merged: BTreeMap<PortSet, IpSetBuilder> = BTreeMap::new();
        let sets: Vec<&IpSet> = groups.iter().map(|(_, addresses)| addresses).collect();
        for (membership, part) in overlay(&sets) {
            let ports = match membership.as_slice() {
                [only] => groups[*only].0.clone(),
                _ => {
                    let mut ports = PortSet::empty();
                    for &group in &membership {
                        ports.union_with(&groups[group].0);
                    }
                    ports
                }
            };
            merged.entry(ports).or_default().add_set(&part);
        }
        let mut ports: Vec<(IpSet, PortSet)> = merged
            .into_iter()
            .map(|(ports, addresses)| (addresses.build(), ports))
            .collect();
        ports.sort();
        (any_protocol.build(), ports)
    }
}

/// The cache's lock; a panic elsewhere cannot leave the cache inconsistent
/// (entries are inserted whole), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The nodes the cluster's pods run on, sorted.
pub fn nodes(model: &Model) -> Vec<String> {
    let mut nodes: Vec<String> = model
        .cluster()
        .endpoints
        .iter()
        .filter_map(|e| e.node.clone())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}
