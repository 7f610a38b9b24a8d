//! The per-node ruleset, before it is written as nft text or JSON.

use std::net::IpAddr;

use policy_core::ipset::IpSet;
use policy_core::model::ClassId;
use policy_core::{Direction, PortSet};

/// How an address interval is written: one address, a CIDR, or a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// One address.
    Single(IpAddr),
    /// An aligned block.
    Prefix(policy_core::ipset::Cidr),
    /// Anything else.
    Range(IpAddr, IpAddr),
}

impl Interval {
    /// The shortest form of `first..=last`.
    pub fn of(first: IpAddr, last: IpAddr) -> Interval {
        if first == last {
            return Interval::Single(first);
        }
        match IpSet::from_range(first, last).to_cidrs().as_slice() {
            [cidr] => Interval::Prefix(*cidr),
            _ => Interval::Range(first, last),
        }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interval::Single(address) => write!(f, "{address}"),
            Interval::Prefix(cidr) => write!(f, "{cidr}"),
            Interval::Range(first, last) => write!(f, "{first}-{last}"),
        }
    }
}

/// The table netpol owns. It never touches any other.
pub const TABLE: &str = "netpol";
/// The table's family: `inet` covers IPv4 and IPv6.
pub const FAMILY: &str = "inet";

/// One node's ruleset: which local pod addresses are isolated, and for each
/// class of isolated pods, what it may receive or send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRuleset {
    /// The node, as in `spec.nodeName`.
    pub node: String,
    /// Local pod address → the ingress chain of its class and family, for
    /// pods isolated for ingress.
    pub ingress_dispatch: Vec<(IpAddr, String)>,
    /// Local pod address → the egress chain of its class and family, for
    /// pods isolated for egress.
    pub egress_dispatch: Vec<(IpAddr, String)>,
    /// Addresses of host-network pods on this node: traffic between a pod and
    /// its own node is always allowed.
    pub local_node_addresses: IpSet,
    /// One chain per class and direction, for classes with local pods.
    pub chains: Vec<ClassChain>,
}

/// What pods of one class may receive (ingress) or send (egress).
///
/// A packet is allowed when its peer address is in `any_protocol`, or when
/// (peer address, protocol, port) falls in one of `ports`. The address sets
/// of `ports` are disjoint, so every element of the nftables set is too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassChain {
    /// The chain name, e.g. `ingress_c3_v4`.
    pub name: String,
    /// The address family the chain handles.
    pub family: policy_core::ipset::Family,
    /// Ingress (peer = source) or egress (peer = destination).
    pub direction: Direction,
    /// The model class.
    pub class: ClassId,
    /// The local pods of the class, by name (for comments).
    pub members: Vec<String>,
    /// The policies that isolate the class in this direction (for comments).
    pub policies: Vec<String>,
    /// Peers allowed on every protocol and port (rules without `ports`).
    pub any_protocol: IpSet,
    /// Peers allowed on some ports: disjoint address sets, each with its ports.
    pub ports: Vec<(IpSet, PortSet)>,
}

impl ClassChain {
    /// The name of the set of peers allowed on every protocol.
    pub fn any_set(&self) -> String {
        format!("{}_any", self.name)
    }

    /// The name of the (peer . protocol . port) set.
    pub fn ports_set(&self) -> String {
        format!("{}_ports", self.name)
    }
}

impl NodeRuleset {
    /// Number of set and map elements, a measure of the ruleset's size.
    pub fn element_count(&self) -> usize {
        let chains: usize = self
            .chains
            .iter()
            .map(|chain| {
                let any = chain
                    .any_protocol
                    .ranges(policy_core::ipset::Family::V4)
                    .count()
                    + chain
                        .any_protocol
                        .ranges(policy_core::ipset::Family::V6)
                        .count();
                let ports: usize = chain
                    .ports
                    .iter()
                    .map(|(addresses, ports)| {
                        let intervals = addresses.ranges(policy_core::ipset::Family::V4).count()
                            + addresses.ranges(policy_core::ipset::Family::V6).count();
                        let port_ranges: usize = policy_core::Protocol::ALL
                            .iter()
                            .map(|&p| ports.ranges(p).len())
                            .sum();
                        intervals * port_ranges
                    })
                    .sum();
                any + ports
            })
            .sum();
        self.ingress_dispatch.len() + self.egress_dispatch.len() + chains
    }
}
