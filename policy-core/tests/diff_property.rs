//! Property: `diff` reports exactly the set difference of the two full
//! connectivity matrices (endpoint pairs and outside addresses), judged by
//! the naive evaluator, for a random cluster and a perturbed copy. A
//! perturbation that only renames and reorders policies is no change.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use common::{PROTOCOLS, World, build_model, naive, policy, world};
use policy_core::diff::{Change, DiffPeer, diff};
use policy_core::{Protocol, SelfTraffic};
use proptest::prelude::*;
use proptest::sample::Index;

const PROBED_PORTS: [u16; 7] = [53, 80, 81, 90, 8080, 8100, 443];
/// Outside addresses: none is a pod or node address of the generated worlds.
const ADDRESSES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 0, 5),
    Ipv4Addr::new(10, 0, 0, 100),
    Ipv4Addr::new(192, 168, 5, 5),
    Ipv4Addr::new(8, 8, 8, 8),
];

#[derive(Clone, Debug)]
enum Perturbation {
    RemovePolicy(Index),
    ReplacePolicy(Index, k8s_openapi::api::networking::v1::NetworkPolicy),
    AddPolicy(k8s_openapi::api::networking::v1::NetworkPolicy),
    Relabel(Index, common::Labels),
    RemoveEndpoint(Index),
    /// Renames every policy and reverses their order: no change at all.
    RenameAndReorder,
}

fn perturbation() -> impl Strategy<Value = Perturbation> {
    let labels = proptest::collection::btree_map(
        proptest::sample::select(&["app", "tier", "role"][..]).prop_map(String::from),
        proptest::sample::select(&["web", "db", "api"][..]).prop_map(String::from),
        0..3,
    );
    prop_oneof![
        any::<Index>().prop_map(Perturbation::RemovePolicy),
        (any::<Index>(), policy(90)).prop_map(|(i, p)| Perturbation::ReplacePolicy(i, p)),
        policy(91).prop_map(Perturbation::AddPolicy),
        (any::<Index>(), labels).prop_map(|(i, l)| Perturbation::Relabel(i, l)),
        any::<Index>().prop_map(Perturbation::RemoveEndpoint),
        Just(Perturbation::RenameAndReorder),
    ]
}

fn apply(world: &World, change: &Perturbation) -> World {
    let mut next = world.clone();
    match change {
        Perturbation::RemovePolicy(i) if !next.policies.is_empty() => {
            next.policies.remove(i.index(next.policies.len()));
        }
        Perturbation::ReplacePolicy(i, p) if !next.policies.is_empty() => {
            let at = i.index(next.policies.len());
            let mut p = p.clone();
            p.metadata.name = next.policies[at].metadata.name.clone();
            next.policies[at] = p;
        }
        Perturbation::AddPolicy(p) => next.policies.push(p.clone()),
        Perturbation::Relabel(i, labels) => {
            let at = i.index(next.endpoints.len());
            next.endpoints[at].labels = labels.clone();
        }
        Perturbation::RemoveEndpoint(i) if next.endpoints.len() > 1 => {
            next.endpoints.remove(i.index(next.endpoints.len()));
        }
        Perturbation::RenameAndReorder => {
            next.policies.reverse();
            for (i, p) in next.policies.iter_mut().enumerate() {
                p.metadata.name = Some(format!("renamed-{i}"));
            }
        }
        _ => {}
    }
    next
}

fn name(world: &World, index: usize) -> String {
    let e = &world.endpoints[index];
    format!("{}/{}", e.namespace, e.name)
}

fn contains(
    changes: &[Change],
    from: &DiffPeer,
    to: &DiffPeer,
    protocol: Protocol,
    port: u16,
) -> bool {
    changes
        .iter()
        .any(|c| &c.from == from && &c.to == to && c.ports.contains(protocol, port))
}

fn address_side(
    changes: &[Change],
    address: Ipv4Addr,
    endpoint: &str,
    inbound: bool,
    protocol: Protocol,
    port: u16,
) -> bool {
    let endpoint = DiffPeer::Endpoint(endpoint.to_string());
    changes.iter().any(|c| {
        let (outside, inside) = if inbound {
            (&c.from, &c.to)
        } else {
            (&c.to, &c.from)
        };
        matches!(outside, DiffPeer::Addresses(set) if set.contains(IpAddr::V4(address)))
            && *inside == endpoint
            && c.ports.contains(protocol, port)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn diff_is_the_set_difference_of_the_two_full_matrices(
        (old, new, change) in world().prop_flat_map(|w| perturbation().prop_map(move |p| (w.clone(), apply(&w, &p), p)))
    ) {
        let changes = diff(&build_model(&old), &build_model(&new));
        let old_index: BTreeMap<String, usize> = (0..old.endpoints.len()).map(|i| (name(&old, i), i)).collect();
        let new_index: BTreeMap<String, usize> = (0..new.endpoints.len()).map(|i| (name(&new, i), i)).collect();
        let mut names: Vec<&String> = old_index.keys().chain(new_index.keys()).collect();
        names.sort();
        names.dedup();

        for protocol_name in PROTOCOLS {
            let protocol: Protocol = protocol_name.parse().unwrap();
            for port in PROBED_PORTS {
                for source in &names {
                    for destination in &names {
                        if source == destination && old.config.self_traffic == SelfTraffic::Allow {
                            continue;
                        }
                        let allowed = |world: &World, index: &BTreeMap<String, usize>| {
                            match (index.get(*source), index.get(*destination)) {
                                (Some(&s), Some(&d)) => naive::allowed(world, s, d, protocol_name, port),
                                _ => false,
                            }
                        };
                        let (before, after) = (allowed(&old, &old_index), allowed(&new, &new_index));
                        let from = DiffPeer::Endpoint((*source).clone());
                        let to = DiffPeer::Endpoint((*destination).clone());
                        prop_assert_eq!(contains(&changes.added, &from, &to, protocol, port), after && !before,
                            "added {} -> {} {}/{} after {:?}", source, destination, port, protocol_name, change);
                        prop_assert_eq!(contains(&changes.removed, &from, &to, protocol, port), before && !after,
                            "removed {} -> {} {}/{} after {:?}", source, destination, port, protocol_name, change);
                    }
                }
                for endpoint in &names {
                    for address in ADDRESSES {
                        for inbound in [true, false] {
                            let allowed = |world: &World, index: &BTreeMap<String, usize>| {
                                index.get(*endpoint).is_some_and(|&e| {
                                    naive::allowed_with_address(world, e, address, inbound, protocol_name, port)
                                })
                            };
                            let (before, after) = (allowed(&old, &old_index), allowed(&new, &new_index));
                            prop_assert_eq!(address_side(&changes.added, address, endpoint, inbound, protocol, port), after && !before,
                                "added {} {} {} {}/{} after {:?}", address, if inbound { "->" } else { "<-" }, endpoint, port, protocol_name, change);
                            prop_assert_eq!(address_side(&changes.removed, address, endpoint, inbound, protocol, port), before && !after,
                                "removed {} {} {} {}/{} after {:?}", address, if inbound { "->" } else { "<-" }, endpoint, port, protocol_name, change);
                        }
                    }
                }
            }
        }

        // Grouping loses nothing: every change is in exactly one group, with its ports.
        for list in [&changes.added, &changes.removed] {
            let groups = changes.grouped(list);
            let grouped: usize = groups.iter().map(|g| g.pairs.len()).sum();
            prop_assert_eq!(grouped, list.len());
            for change in list.iter() {
                let holding: Vec<_> = groups
                    .iter()
                    .filter(|g| g.pairs.contains(&(change.from.clone(), change.to.clone())) && g.ports == change.ports)
                    .collect();
                prop_assert_eq!(holding.len(), 1);
            }
        }
        if matches!(change, Perturbation::RenameAndReorder) {
            prop_assert!(changes.is_empty(), "renaming and reordering changed something: {:?}", changes);
        }
    }
}
