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

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use policy_core::config::{AddressFamily, HostNetworkMode, IpBlockMode, SelfTraffic};
use policy_core::ipset::{Family, IpSet};
use policy_core::model::{ClassId, Model, PeerSet, RulePorts, partition};
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
        let family_matters = dual_stack
            && config.ip_block == IpBlockMode::Match
            && config.address_family == AddressFamily::Any;
        let mut views = Vec::new();
        for (family, scope) in [
            (Family::V4, AddressFamily::Ipv4),
            (Family::V6, AddressFamily::Ipv6),
        ] {
            let model = if family_matters {
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
            let mut class_addresses = vec![IpSet::empty(); model.classes().len()];
            let mut endpoint_addresses = IpSet::empty();
            for (id, endpoint) in model.cluster().endpoints.iter().enumerate() {
                for &ip in endpoint.ips.iter().filter(|ip| universe.contains(**ip)) {
                    let single = IpSet::from_range(ip, ip);
                    class_addresses[model.class_of(id)].union_with(&single);
                    endpoint_addresses.union_with(&single);
                }
            }
            views.push(FamilyView {
                family,
                model,
                class_addresses,
                endpoint_addresses,
                universe,
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
            chains: Vec::new(),
        };
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
                    for ip in addresses {
                        ruleset
                            .local_node_addresses
                            .union_with(&IpSet::from_range(ip, ip));
                    }
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

    /// The addresses of every class a peer set matches.
    fn class_peer_addresses(&self, view: &FamilyView<'_>, peers: &PeerSet) -> IpSet {
        let mut addresses = IpSet::empty();
        for (class, class_addresses) in view.class_addresses.iter().enumerate() {
            if peers.contains_class(class) {
                addresses.union_with(class_addresses);
            }
        }
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
        let mut any_protocol = IpSet::empty();
        // Rectangles grouped by port set: (ports → peers with at least those ports).
        let mut by_ports: BTreeMap<PortSet, IpSet> = BTreeMap::new();
        let mut add = |addresses: IpSet, ports: PortSet, any: &mut IpSet| {
            if addresses.is_empty() || ports.is_empty() {
                return;
            }
            if ports.is_all() {
                any.union_with(&addresses);
            } else {
                by_ports.entry(ports).or_default().union_with(&addresses);
            }
        };
        for (peers, ports) in grants {
            match direction {
                // Ports resolve on the destination: the local pod's class.
                Direction::Ingress => {
                    let mut addresses = self.class_peer_addresses(view, peers);
                    addresses.union_with(&self.block_addresses(view, peers));
                    add(
                        addresses,
                        ports.resolve(Some(&classes[class])),
                        &mut any_protocol,
                    );
                }
                // Ports resolve on each destination class; addresses have no named ports.
                Direction::Egress => {
                    if ports.all || ports.named.is_empty() {
                        let mut addresses = self.class_peer_addresses(view, peers);
                        addresses.union_with(&self.block_addresses(view, peers));
                        add(addresses, ports.resolve(None), &mut any_protocol);
                    } else {
                        for (destination, destination_addresses) in
                            view.class_addresses.iter().enumerate()
                        {
                            if peers.contains_class(destination) {
                                add(
                                    destination_addresses.clone(),
                                    ports.resolve(Some(&classes[destination])),
                                    &mut any_protocol,
                                );
                            }
                        }
                        add(
                            self.block_addresses(view, peers),
                            ports.resolve(None),
                            &mut any_protocol,
                        );
                    }
                }
            }
        }
        // Make the address sets disjoint: cut at every boundary, give each
        // piece the union of the ports that cover it, merge equal ports.
        let groups: Vec<(PortSet, IpSet)> = by_ports.into_iter().collect();
        let mut merged: BTreeMap<PortSet, IpSet> = BTreeMap::new();
        if !groups.is_empty() {
            for piece in partition(groups.iter().map(|(_, addresses)| addresses)) {
                let mut ports = PortSet::empty();
                for (group_ports, addresses) in &groups {
                    if !addresses.intersection(&piece).is_empty() {
                        ports.union_with(group_ports);
                    }
                }
                if !ports.is_empty() {
                    merged.entry(ports).or_default().union_with(&piece);
                }
            }
        }
        let mut ports: Vec<(IpSet, PortSet)> = merged
            .into_iter()
            .map(|(ports, addresses)| (addresses, ports))
            .collect();
        ports.sort();
        (any_protocol, ports)
    }
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
