//! Connectivity with addresses outside the cluster.
//!
//! Only `ipBlock` peers and rules without peers reach outside the cluster. An
//! address outside the cluster has no policies of its own, so a connection
//! with it is decided by the pod's side alone.

use super::{ClassId, Model};
use crate::ipset::{Cidr, Family, IpSet};
use crate::policy::Direction;
use crate::ports::{PortSet, Protocol};

impl Model {
    /// The addresses outside the cluster that may reach pods of `class` on
    /// `port`/`protocol` (everything, if the class is not isolated for ingress).
    pub fn ingress_addresses(&self, class: ClassId, protocol: Protocol, port: u16) -> IpSet {
        self.side_addresses(Direction::Ingress, class, |ports| {
            ports.allows(Some(&self.classes[class]), protocol, port)
        })
    }

    /// The addresses outside the cluster that pods of `class` may reach on
    /// `port`/`protocol` (everything, if the class is not isolated for egress).
    /// Named ports never match an address.
    pub fn egress_addresses(&self, class: ClassId, protocol: Protocol, port: u16) -> IpSet {
        self.side_addresses(Direction::Egress, class, |ports| {
            ports.allows(None, protocol, port)
        })
    }

    fn side_addresses(
        &self,
        direction: Direction,
        class: ClassId,
        port_matches: impl Fn(&super::RulePorts) -> bool,
    ) -> IpSet {
        if self.has_tier_rules(direction, class) {
            return self.side_rules(direction, class).decide(
                IpSet::everything(),
                false,
                |peers, ports| {
                    if port_matches(ports) {
                        peers.addresses.clone()
                    } else {
                        IpSet::empty()
                    }
                },
            );
        }
        let policies = self.class_policies(direction, class);
        if policies.is_empty() || !self.classes[class].selectable {
            return IpSet::everything();
        }
        let mut addresses = IpSet::empty();
        for &policy in policies {
            for rule in self.rules_of(policy, direction) {
                if port_matches(self.ports_of(rule)) {
                    addresses.union_with(&rule.peers.addresses);
                }
            }
        }
        addresses
    }

    /// The external address ranges this model distinguishes: the coarsest
    /// partition of the IPv4 and IPv6 spaces in which every ipBlock of every
    /// rule is a union of parts. Every address of a part is treated alike by
    /// every policy.
    pub fn address_partition(&self) -> Vec<IpSet> {
        partition(self.address_blocks().iter())
    }

    /// The distinct address sets the rules match (ipBlocks, and everything
    /// for rules without peers).
    pub fn address_blocks(&self) -> Vec<IpSet> {
        let tier_rules = self.tiers.rules.iter().map(|rule| &rule.peers);
        let mut blocks: Vec<IpSet> = (self.rules.iter().map(|rule| &rule.peers))
            .chain(tier_rules)
            .map(|peers| peers.addresses.clone())
            .filter(|set| !set.is_empty())
            .collect();
        blocks.sort();
        blocks.dedup();
        blocks
    }

    /// The ports on which a pod of `class` and any address of `region` may
    /// connect, in `direction` (ingress: from the region; egress: to it).
    /// `region` should be a part of [`Model::address_partition`], so that
    /// every address in it is treated alike.
    pub fn address_connections(
        &self,
        class: ClassId,
        direction: Direction,
        region: &IpSet,
    ) -> PortSet {
        if self.has_tier_rules(direction, class) {
            let destination = (direction == Direction::Ingress).then(|| &self.classes[class]);
            return self
                .side_rules(direction, class)
                .allowed(false, |peers, ports| {
                    if peers.everyone || peers.addresses.intersects(region) {
                        ports.resolve(destination)
                    } else {
                        PortSet::empty()
                    }
                });
        }
        let policies = self.class_policies(direction, class);
        if policies.is_empty() || !self.classes[class].selectable {
            return PortSet::all();
        }
        let destination = match direction {
            Direction::Ingress => Some(&self.classes[class]),
            Direction::Egress => None,
        };
        let mut ports = PortSet::empty();
        for &policy in policies {
            for rule in self.rules_of(policy, direction) {
                if rule.peers.everyone || !rule.peers.addresses.intersection(region).is_empty() {
                    ports.union_with(&self.ports_of(rule).resolve(destination));
                }
            }
        }
        ports
    }
}

/// The coarsest partition of all addresses in which each of `sets` is a
/// union of parts. Parts are returned IPv4 first, in address order.
pub fn partition<'a>(sets: impl Iterator<Item = &'a IpSet>) -> Vec<IpSet> {
    let sets: Vec<&IpSet> = sets.collect();
    let mut parts = Vec::new();
    for family in [Family::V4, Family::V6] {
        // Cut points: every interval start, and every address after an interval end.
        let mut cuts: Vec<std::net::IpAddr> = Vec::new();
        for set in &sets {
            for (first, last) in set.ranges(family) {
                cuts.push(first);
                if let Some(next) = next_address(last) {
                    cuts.push(next);
                }
            }
        }
        let whole = match family {
            Family::V4 => Cidr::new("0.0.0.0".parse().expect("address"), 0),
            Family::V6 => Cidr::new("::".parse().expect("address"), 0),
        }
        .expect("prefix 0 is valid");
        let (space_first, _) = IpSet::from_cidr(whole)
            .ranges(family)
            .next()
            .expect("non-empty");
        cuts.push(space_first);
        cuts.sort();
        cuts.dedup();
        for (index, &start) in cuts.iter().enumerate() {
            let end = match cuts.get(index + 1) {
                Some(&next) => previous_address(next).expect("cuts are increasing"),
                None => {
                    IpSet::from_cidr(whole)
                        .ranges(family)
                        .next()
                        .expect("non-empty")
                        .1
                }
            };
            parts.push(IpSet::from_range(start, end));
        }
    }
    parts
}

fn next_address(address: std::net::IpAddr) -> Option<std::net::IpAddr> {
    match address {
        std::net::IpAddr::V4(v4) => u32::from(v4)
            .checked_add(1)
            .map(|n| std::net::IpAddr::V4(n.into())),
        std::net::IpAddr::V6(v6) => u128::from(v6)
            .checked_add(1)
            .map(|n| std::net::IpAddr::V6(n.into())),
    }
}

fn previous_address(address: std::net::IpAddr) -> Option<std::net::IpAddr> {
    match address {
        std::net::IpAddr::V4(v4) => u32::from(v4)
            .checked_sub(1)
            .map(|n| std::net::IpAddr::V4(n.into())),
        std::net::IpAddr::V6(v6) => u128::from(v6)
            .checked_sub(1)
            .map(|n| std::net::IpAddr::V6(n.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cidr: &str, except: &[&str]) -> IpSet {
        let except: Vec<Cidr> = except
            .iter()
            .map(|e| Cidr::parse(e).unwrap().cidr)
            .collect();
        IpSet::from_block(Cidr::parse(cidr).unwrap().cidr, &except)
    }

    #[test]
    fn the_partition_refines_every_block_and_covers_everything() {
        let a = set("10.0.0.0/8", &["10.10.0.0/16"]);
        let b = set("10.0.0.0/9", &[]);
        let parts = partition([&a, &b].into_iter());
        let rendered: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        assert_eq!(rendered[0], "0.0.0.0/5, 8.0.0.0/7");
        assert!(rendered.contains(&"10.10.0.0/16".to_string()));
        let mut union = IpSet::empty();
        for part in &parts {
            // Each part is inside or outside each block, never across.
            for block in [&a, &b] {
                let inside = block.intersection(part);
                assert!(inside.is_empty() || inside == *part);
            }
            assert!(union.intersection(part).is_empty(), "parts are disjoint");
            union.union_with(part);
        }
        assert_eq!(union, IpSet::everything());
        // IPv4: [0,10/8), 10.0/9 minus 10.10/16 (two pieces), 10.10/16, 10.128/9, after 10/8; IPv6: one part.
        assert_eq!(parts.len(), 7);
    }
}
