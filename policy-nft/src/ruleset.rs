//! The per-node ruleset, before it is written as nft text or JSON.

use std::net::IpAddr;

use policy_core::ipset::{Family, IpSet};
use policy_core::model::ClassId;
use policy_core::{Direction, Protocol};

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

/// One node's ruleset: for each direction and address family, which local
/// pods are isolated, which peer group each peer address belongs to, and
/// what the peers of each group may do with each isolated local pod.
///
/// A packet of an isolated local pod is checked in two lookups: its peer
/// address gives the peer group (a verdict map shared by every local pod of
/// the direction and family), and the group's sets say whether
/// `local address . protocol . port` is allowed. Peers that every local pod
/// treats alike share a group, so a peer address is one element per
/// direction and family, however many local pods name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRuleset {
    /// The node, as in `spec.nodeName`.
    pub node: String,
    /// The node's own addresses (its Node object's, its host-network pods'):
    /// traffic between a pod and its own node is always allowed.
    pub local_node_addresses: IpSet,
    /// One per direction and family, always all four, in [`Side::ORDER`].
    pub sides: Vec<Side>,
}

/// One direction and address family of a node's ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// Ingress (peer = source, local pod = destination) or egress.
    pub direction: Direction,
    /// The address family.
    pub family: Family,
    /// The local classes isolated in this direction, with their addresses
    /// of this family.
    pub isolated: Vec<IsolatedClass>,
    /// Peer pod addresses and their group (an index into `groups`), sorted
    /// by address, one entry per address. A pod address whose group is that
    /// of the range holding it, or group 0, has no entry.
    pub peer_addresses: Vec<(IpAddr, usize)>,
    /// Peer address ranges (ipBlocks) and their group: disjoint, sorted. A
    /// pod address in `peer_addresses` is looked up there first.
    pub peer_ranges: Vec<(IpAddr, IpAddr, usize)>,
    /// The peer groups. `groups[0]` holds the peers listed in neither
    /// `peer_addresses` nor `peer_ranges` (what rules without peers allow).
    pub groups: Vec<PeerGroup>,
}

/// A local class isolated in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolatedClass {
    /// The model class (for comments and tests).
    pub class: ClassId,
    /// Its local pods, by name.
    pub members: Vec<String>,
    /// Their addresses of the side's family, sorted.
    pub addresses: Vec<IpAddr>,
    /// The policies that isolate it in this direction.
    pub policies: Vec<String>,
}

/// What the peers of one group may do: the local pod addresses they may
/// reach (ingress: that may receive from them; egress: that may send to
/// them), on every protocol or on some ports. Each list is sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerGroup {
    /// The chain name, e.g. `ingress_v4_g3` (`ingress_v4_others` for group 0).
    pub name: String,
    /// Local addresses allowed on every protocol and port ([`SetKind::Any`]).
    pub any: Vec<IpAddr>,
    /// `local address . protocol . port` ([`SetKind::Port`]).
    pub ports: Vec<(IpAddr, Protocol, u16)>,
    /// `local address . protocol . first port-last port` ([`SetKind::PortRange`]).
    pub port_ranges: Vec<(IpAddr, Protocol, u16, u16)>,
}

impl PeerGroup {
    /// Elements in its three sets.
    pub fn len(&self) -> usize {
        self.any.len() + self.ports.len() + self.port_ranges.len()
    }

    /// True if the group allows nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if both groups allow the same (their names aside).
    pub fn same_contents(&self, other: &PeerGroup) -> bool {
        self.any == other.any && self.ports == other.ports && self.port_ranges == other.port_ranges
    }

    /// The name of one of its sets, e.g. `ingress_v4_g3_ports`.
    pub fn set_name(&self, kind: SetKind) -> String {
        format!("{}_{}", self.name, kind.suffix())
    }
}

/// Which of a peer group's three sets an element goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// Hash set of exact `local address . protocol . port`.
    Port,
    /// Hash set of local addresses allowed on every protocol and port.
    Any,
    /// Interval set (pipapo) of `local address . protocol . port range`.
    PortRange,
}

impl SetKind {
    /// In the order the group chain looks them up: exact ports first, as
    /// most rules name ports.
    pub const ALL: [SetKind; 3] = [SetKind::Port, SetKind::Any, SetKind::PortRange];

    /// The suffix of the set name.
    pub fn suffix(self) -> &'static str {
        match self {
            SetKind::Port => "ports",
            SetKind::Any => "any",
            SetKind::PortRange => "port_ranges",
        }
    }

    /// True for interval sets.
    pub fn is_interval(self) -> bool {
        self == SetKind::PortRange
    }

    /// True for sets keyed by `address . protocol . port`.
    pub fn has_ports(self) -> bool {
        self != SetKind::Any
    }
}

/// `v4` or `v6`.
pub fn family_suffix(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

impl Side {
    /// The four sides of a ruleset, in order.
    pub const ORDER: [(Direction, Family); 4] = [
        (Direction::Ingress, Family::V4),
        (Direction::Ingress, Family::V6),
        (Direction::Egress, Family::V4),
        (Direction::Egress, Family::V6),
    ];

    /// An empty side: nothing isolated, one empty group.
    pub fn empty(direction: Direction, family: Family) -> Side {
        let mut side = Side {
            direction,
            family,
            isolated: Vec::new(),
            peer_addresses: Vec::new(),
            peer_ranges: Vec::new(),
            groups: Vec::new(),
        };
        side.groups.push(PeerGroup {
            name: side.others_name(),
            ..PeerGroup::default()
        });
        side
    }

    /// The side's chain, e.g. `ingress_v4`: it sends a packet to its peer's
    /// group chain.
    pub fn chain_name(&self) -> String {
        format!("{}_{}", self.direction.field(), family_suffix(self.family))
    }

    /// The set of isolated local addresses, e.g. `ingress_v4_pods`.
    pub fn pods_set(&self) -> String {
        format!("{}_pods", self.chain_name())
    }

    /// The hash verdict map from peer pod address to group chain, e.g.
    /// `ingress_v4_peers`.
    pub fn peers_map(&self) -> String {
        format!("{}_peers", self.chain_name())
    }

    /// The interval verdict map from peer range to group chain, e.g.
    /// `ingress_v4_peer_ranges`.
    pub fn peer_ranges_map(&self) -> String {
        format!("{}_peer_ranges", self.chain_name())
    }

    /// The name of group 0, e.g. `ingress_v4_others`.
    pub fn others_name(&self) -> String {
        format!("{}_others", self.chain_name())
    }

    /// The name the compiler gives group `index` (> 0), e.g. `ingress_v4_g3`.
    pub fn group_name(&self, index: usize) -> String {
        format!("{}_g{index}", self.chain_name())
    }

    /// Every isolated local address, sorted.
    pub fn isolated_addresses(&self) -> Vec<IpAddr> {
        let mut addresses: Vec<IpAddr> = self
            .isolated
            .iter()
            .flat_map(|class| class.addresses.iter().copied())
            .collect();
        addresses.sort();
        addresses
    }

    /// Number of set and map elements.
    pub fn element_count(&self) -> usize {
        self.isolated
            .iter()
            .map(|class| class.addresses.len())
            .sum::<usize>()
            + self.peer_addresses.len()
            + self.peer_ranges.len()
            + self.groups.iter().map(PeerGroup::len).sum::<usize>()
    }

    /// The payload keyword of the family: `ip` or `ip6`.
    pub fn payload(&self) -> &'static str {
        match self.family {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// The header field of the peer: `saddr` for ingress, `daddr` for egress.
    pub fn peer_field(&self) -> &'static str {
        match self.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        }
    }

    /// The header field of the local pod.
    pub fn local_field(&self) -> &'static str {
        match self.direction {
            Direction::Ingress => "daddr",
            Direction::Egress => "saddr",
        }
    }
}

impl NodeRuleset {
    /// Number of set and map elements, a measure of the ruleset's size.
    pub fn element_count(&self) -> usize {
        let local_node = [Family::V4, Family::V6]
            .into_iter()
            .map(|family| self.local_node_addresses.ranges(family).count())
            .sum::<usize>();
        local_node + self.sides.iter().map(Side::element_count).sum::<usize>()
    }

    /// Number of peer group chains (over all sides).
    pub fn group_count(&self) -> usize {
        self.sides.iter().map(|side| side.groups.len()).sum()
    }

    /// The side of `direction` and `family`.
    pub fn side(&self, direction: Direction, family: Family) -> &Side {
        self.sides
            .iter()
            .find(|side| side.direction == direction && side.family == family)
            .expect("every ruleset has all four sides")
    }

    /// Isolated local addresses in `direction`, over both families.
    pub fn isolated_addresses(&self, direction: Direction) -> usize {
        self.sides
            .iter()
            .filter(|side| side.direction == direction)
            .flat_map(|side| &side.isolated)
            .map(|class| class.addresses.len())
            .sum()
    }

    /// True if no local pod is isolated.
    pub fn isolates_nothing(&self) -> bool {
        self.sides.iter().all(|side| side.isolated.is_empty())
    }
}
