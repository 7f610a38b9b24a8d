//! Lowering the model to one node's ruleset.
//!
//! The kernel identifies a peer by its address alone, so every peer set of
//! the model becomes an address set: the addresses of the pods of each peer
//! class, plus the ipBlocks (minus pod addresses when ipBlocks must not match
//! pods). Ports resolve on the destination: for ingress that is the local
//! pod's class; for egress each destination class in turn.
//!
//! Each chain's (address, ports) pairs are made disjoint in address before
//! they become set elements: the address space is cut at every boundary, and
//! each piece gets the union of the ports of the pairs that cover it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use policy_core::config::{HostNetworkMode, IpBlockMode, SelfTraffic};
use policy_core::ipset::IpSet;
use policy_core::model::{ClassId, Model, PeerSet, RulePorts, partition};
use policy_core::{Direction, PortSet};

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

/// Names of endpoints without an address on this node: they are in the
/// model but cannot be enforced (workload templates, pods without status IPs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unenforceable {
    /// Endpoints placed on the node that have no IP address.
    pub without_address: Vec<String>,
}

/// Everything about the cluster the compiler needs, computed once for all nodes.
pub struct Compiler<'m> {
    model: &'m Model,
    /// Per class, the addresses of its members.
    class_addresses: Vec<IpSet>,
    /// Every pod address; ipBlocks exclude them when they must not match pods.
    endpoint_addresses: IpSet,
}

impl<'m> Compiler<'m> {
    /// Prepares to compile rulesets for the nodes of `model`.
    pub fn new(model: &'m Model) -> Result<Self, CompileError> {
        let config = model.config();
        if config.host_network == HostNetworkMode::Pod {
            return Err(CompileError::HostNetworkAsPods);
        }
        if config.self_traffic == SelfTraffic::Evaluate {
            return Err(CompileError::SelfTrafficEvaluated);
        }
        let cluster = model.cluster();
        let mut class_addresses = vec![IpSet::empty(); model.classes().len()];
        let mut endpoint_addresses = IpSet::empty();
        for (id, endpoint) in cluster.endpoints.iter().enumerate() {
            for &ip in &endpoint.ips {
                let single = IpSet::from_range(ip, ip);
                class_addresses[model.class_of(id)].union_with(&single);
                endpoint_addresses.union_with(&single);
            }
        }
        Ok(Compiler {
            model,
            class_addresses,
            endpoint_addresses,
        })
    }

    /// The ruleset of one node, and what on that node cannot be enforced.
    pub fn compile(&self, node: &str) -> (NodeRuleset, Unenforceable) {
        let model = self.model;
        let cluster = model.cluster();
        let mut unenforceable = Unenforceable::default();
        let mut local_classes: BTreeMap<ClassId, Vec<usize>> = BTreeMap::new();
        let mut local_node_addresses = IpSet::empty();
        for (id, endpoint) in cluster.endpoints.iter().enumerate() {
            if endpoint.node.as_deref() != Some(node) {
                continue;
            }
            if endpoint.ips.is_empty() {
                unenforceable
                    .without_address
                    .push(cluster.endpoint_name(id).to_string());
                continue;
            }
            if endpoint.host_network {
                for &ip in &endpoint.ips {
                    local_node_addresses.union_with(&IpSet::from_range(ip, ip));
                }
                continue;
            }
            local_classes
                .entry(model.class_of(id))
                .or_default()
                .push(id);
        }

        let mut ruleset = NodeRuleset {
            node: node.to_string(),
            ingress_dispatch: Vec::new(),
            egress_dispatch: Vec::new(),
            local_node_addresses,
            chains: Vec::new(),
        };
        for (&class, members) in &local_classes {
            for direction in [Direction::Ingress, Direction::Egress] {
                let Some(grants) = model.grants(direction, class) else {
                    continue;
                };
                let name = format!("{}_c{class}", direction.field());
                let (any_protocol, ports) = self.chain_contents(direction, class, &grants);
                let first = members[0];
                let policies = model
                    .policies_selecting(first, direction)
                    .iter()
                    .map(|&p| cluster.policies[p].reference())
                    .collect();
                ruleset.chains.push(ClassChain {
                    name: name.clone(),
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
                    for &ip in &cluster.endpoints[member].ips {
                        dispatch.push((ip, name.clone()));
                    }
                }
            }
        }
        ruleset.ingress_dispatch.sort();
        ruleset.egress_dispatch.sort();
        (ruleset, unenforceable)
    }

    /// The addresses an ipBlock part of a peer set stands for.
    fn block_addresses(&self, peers: &PeerSet) -> IpSet {
        if peers.everyone {
            return IpSet::everything();
        }
        match self.model.config().ip_block {
            IpBlockMode::Match => peers.addresses.clone(),
            // ipBlocks match only addresses outside the cluster.
            IpBlockMode::Ignore => peers.addresses.difference(&self.endpoint_addresses),
        }
    }

    /// The addresses of every class a peer set matches.
    fn class_peer_addresses(&self, peers: &PeerSet) -> IpSet {
        let mut addresses = IpSet::empty();
        for (class, class_addresses) in self.class_addresses.iter().enumerate() {
            if peers.contains_class(class) {
                addresses.union_with(class_addresses);
            }
        }
        addresses
    }

    /// The any-protocol peers and the disjoint (peers, ports) pairs of one chain.
    fn chain_contents(
        &self,
        direction: Direction,
        class: ClassId,
        grants: &[(&PeerSet, &RulePorts)],
    ) -> (IpSet, Vec<(IpSet, PortSet)>) {
        let classes = self.model.classes();
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
                    let mut addresses = self.class_peer_addresses(peers);
                    addresses.union_with(&self.block_addresses(peers));
                    add(
                        addresses,
                        ports.resolve(Some(&classes[class])),
                        &mut any_protocol,
                    );
                }
                // Ports resolve on each destination class; addresses have no named ports.
                Direction::Egress => {
                    if ports.all || ports.named.is_empty() {
                        let mut addresses = self.class_peer_addresses(peers);
                        addresses.union_with(&self.block_addresses(peers));
                        add(addresses, ports.resolve(None), &mut any_protocol);
                    } else {
                        for (destination, destination_addresses) in
                            self.class_addresses.iter().enumerate()
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
                            self.block_addresses(peers),
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

/// Every address of a ruleset's dispatch maps (for tests and checks).
pub fn dispatched_addresses(ruleset: &NodeRuleset) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = ruleset
        .ingress_dispatch
        .iter()
        .chain(&ruleset.egress_dispatch)
        .map(|(ip, _)| *ip)
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}
