//! The per-node ruleset, before it is written as nft text or JSON.

use std::net::IpAddr;

use policy_core::ipset::{Family, IpSet};
use policy_core::model::ClassId;
use policy_core::{Direction, PortSet, Protocol};

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
    /// Every pod address in the cluster: set elements made of these are
    /// exact (hash sets), not ranges (see [`ChainElements`]).
    pub pod_addresses: IpSet,
    /// One chain per class and direction, for classes with local pods.
    pub chains: Vec<ClassChain>,
}

/// What pods of one class may receive (ingress) or send (egress).
///
/// A packet is allowed when its peer address is in `any_protocol`, or when
/// (peer address, protocol, port) falls in one of `ports`. The address sets
/// of `ports` are disjoint, so every element of the nftables interval set is
/// too. [`ClassChain::elements`] lays these out as the chain's sets.
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

/// Which of a chain's four sets an element goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// Hash set of peer addresses allowed on every protocol and port.
    AnyAddress,
    /// Hash set of exact `address . protocol . port` triples.
    PortAddress,
    /// Interval set of peer ranges allowed on every protocol and port.
    AnyRange,
    /// Interval set of `address range . protocol . port range` triples.
    PortRange,
}

impl SetKind {
    /// In the order the chain looks them up: hash sets first, since most
    /// allowed packets come from pods, which they hold.
    pub const ALL: [SetKind; 4] = [
        SetKind::AnyAddress,
        SetKind::PortAddress,
        SetKind::AnyRange,
        SetKind::PortRange,
    ];

    /// The suffix of the set name.
    pub fn suffix(self) -> &'static str {
        match self {
            SetKind::AnyAddress => "any_ip",
            SetKind::PortAddress => "port_ip",
            SetKind::AnyRange => "any_net",
            SetKind::PortRange => "port_net",
        }
    }

    /// True for interval sets.
    pub fn is_interval(self) -> bool {
        matches!(self, SetKind::AnyRange | SetKind::PortRange)
    }

    /// True for sets keyed by `address . protocol . port`.
    pub fn has_ports(self) -> bool {
        matches!(self, SetKind::PortAddress | SetKind::PortRange)
    }
}

/// The elements of a chain's sets, as they are loaded.
///
/// Exact elements go to hash sets, whose lookup cost does not grow with
/// their size; only what is really a range (an ipBlock, a port range) goes
/// to interval sets. Pod addresses stay exact even where the model merged
/// neighbouring pods into one interval: an interval made only of pod
/// addresses is split back into addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainElements {
    /// Peers allowed on every protocol and port ([`SetKind::AnyAddress`]).
    pub any_addresses: Vec<IpAddr>,
    /// Exact (peer, protocol, port) triples ([`SetKind::PortAddress`]).
    pub port_addresses: Vec<(IpAddr, Protocol, u16)>,
    /// Peer ranges allowed on every protocol and port ([`SetKind::AnyRange`]).
    pub any_ranges: Vec<(IpAddr, IpAddr)>,
    /// (peer range, protocol, port range) ([`SetKind::PortRange`]); disjoint.
    pub port_ranges: Vec<PortRangeElement>,
}

/// An element of a [`SetKind::PortRange`] set: first and last peer address,
/// protocol, first and last port.
pub type PortRangeElement = ((IpAddr, IpAddr), Protocol, (u16, u16));

impl ChainElements {
    /// True if the set of `kind` has no elements.
    pub fn is_set_empty(&self, kind: SetKind) -> bool {
        match kind {
            SetKind::AnyAddress => self.any_addresses.is_empty(),
            SetKind::PortAddress => self.port_addresses.is_empty(),
            SetKind::AnyRange => self.any_ranges.is_empty(),
            SetKind::PortRange => self.port_ranges.is_empty(),
        }
    }

    /// True if all four sets are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements in all four sets.
    pub fn len(&self) -> usize {
        self.any_addresses.len()
            + self.port_addresses.len()
            + self.any_ranges.len()
            + self.port_ranges.len()
    }
}

/// Addresses `first..=last` one by one.
fn addresses(first: IpAddr, last: IpAddr) -> impl Iterator<Item = IpAddr> {
    let number = |address: IpAddr| match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let v4 = first.is_ipv4();
    (number(first)..=number(last)).map(move |n| {
        if v4 {
            IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(n))
        }
    })
}

impl ClassChain {
    /// The name of one of the chain's sets, e.g. `ingress_c3_v4_port_ip`.
    pub fn set_name(&self, kind: SetKind) -> String {
        format!("{}_{}", self.name, kind.suffix())
    }

    /// The chain's set elements. `pod_addresses` are the addresses kept
    /// exact ([`NodeRuleset::pod_addresses`]).
    pub fn elements(&self, pod_addresses: &IpSet) -> ChainElements {
        let mut elements = ChainElements::default();
        // An interval is exact when it is one address or only pod addresses
        // (then it has at most as many addresses as there are pods).
        let exact = |first: IpAddr, last: IpAddr| {
            first == last || pod_addresses.contains_range(first, last)
        };
        for (first, last) in self.any_protocol.ranges(self.family) {
            if exact(first, last) {
                elements.any_addresses.extend(addresses(first, last));
            } else {
                elements.any_ranges.push((first, last));
            }
        }
        for (peers, ports) in &self.ports {
            for (first, last) in peers.ranges(self.family) {
                let exact = exact(first, last);
                for protocol in Protocol::ALL {
                    for &(low, high) in ports.ranges(protocol) {
                        if exact && low == high {
                            elements
                                .port_addresses
                                .extend(addresses(first, last).map(|a| (a, protocol, low)));
                        } else if exact {
                            elements.port_ranges.extend(
                                addresses(first, last).map(|a| ((a, a), protocol, (low, high))),
                            );
                        } else {
                            elements
                                .port_ranges
                                .push(((first, last), protocol, (low, high)));
                        }
                    }
                }
            }
        }
        elements
    }
}

impl NodeRuleset {
    /// Number of set and map elements, a measure of the ruleset's size.
    pub fn element_count(&self) -> usize {
        let chains: usize = self
            .chains
            .iter()
            .map(|chain| chain.elements(&self.pod_addresses).len())
            .sum();
        let local_node = [Family::V4, Family::V6]
            .into_iter()
            .map(|family| self.local_node_addresses.ranges(family).count())
            .sum::<usize>();
        self.ingress_dispatch.len() + self.egress_dispatch.len() + local_node + chains
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_core::ipset::Cidr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(first: &str, last: &str) -> IpSet {
        IpSet::from_range(ip(first), ip(last))
    }

    fn chain(any_protocol: IpSet, ports: Vec<(IpSet, PortSet)>) -> ClassChain {
        ClassChain {
            name: "ingress_c0_v4".into(),
            family: Family::V4,
            direction: Direction::Ingress,
            class: 0,
            members: vec![],
            policies: vec![],
            any_protocol,
            ports,
        }
    }

    #[test]
    fn pod_addresses_stay_exact_and_blocks_stay_ranges() {
        // Pods 10.0.0.1-3 (merged by the model into one interval) and a
        // block 10.0.0.8/29 that holds pod 10.0.0.9 among other addresses.
        let pods = range("10.0.0.1", "10.0.0.3");
        let mut pod_addresses = pods.clone();
        pod_addresses.union_with(&range("10.0.0.9", "10.0.0.9"));
        let block = IpSet::from_cidr(Cidr::parse("10.0.0.8/29").unwrap().cidr);
        let mut any = pods.clone();
        any.union_with(&block);
        let mut web = PortSet::empty();
        web.insert(Protocol::Tcp, 80, 80);
        web.insert(Protocol::Udp, 5000, 5010);
        let elements =
            chain(any, vec![(pods.clone(), web.clone()), (block, web)]).elements(&pod_addresses);
        assert_eq!(
            elements.any_addresses,
            vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]
        );
        assert_eq!(elements.any_ranges, vec![(ip("10.0.0.8"), ip("10.0.0.15"))]);
        assert_eq!(
            elements.port_addresses,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
                .map(|a| (ip(a), Protocol::Tcp, 80))
                .to_vec()
        );
        let mut expected_ranges: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .map(|a| ((ip(a), ip(a)), Protocol::Udp, (5000, 5010)))
            .to_vec();
        expected_ranges.push(((ip("10.0.0.8"), ip("10.0.0.15")), Protocol::Tcp, (80, 80)));
        expected_ranges.push((
            (ip("10.0.0.8"), ip("10.0.0.15")),
            Protocol::Udp,
            (5000, 5010),
        ));
        assert_eq!(elements.port_ranges, expected_ranges);
        assert_eq!(elements.len(), 3 + 1 + 3 + 5);
    }
}
