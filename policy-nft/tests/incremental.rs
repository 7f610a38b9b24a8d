//! Property: a model kept current with `Model::apply` (through
//! `Model::update_to`) answers exactly as a fresh `Model::new` of the same
//! cluster, after every event of a random sequence: pods added, removed,
//! relabelled or given an address, policies added, replaced or removed,
//! namespaces relabelled. Compared on the whole matrix (every pair, several
//! ports and protocols, every query form) and on the compiled ruleset of
//! every node.
//!
//! The worlds and the loader glue are policy-core's property-test
//! generators (`policy-core/tests/common`), so these events hit the same
//! corners: host-network pods, named ports, ipBlocks that match pod IPs,
//! workload templates without addresses.

#[path = "../../policy-core/tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;

use common::{
    Labels, NaiveEndpoint, PROTOCOLS, World, build_cluster, endpoint, namespace_labels, pod_labels,
    policy, world,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use policy_core::model::RebuildReason;
use policy_core::{HostNetworkMode, IpBlockMode, SelfTraffic};
use policy_core::{Model, PortQuery, Protocol, QueryEndpoint};
use policy_nft::{Compiler, NodeRuleset, PeerGroup};
use proptest::prelude::*;
use proptest::sample::Index;

const PROBED_PORTS: [u16; 5] = [53, 80, 81, 8080, 443];

#[derive(Clone, Debug)]
enum Event {
    AddEndpoint(NaiveEndpoint),
    RemoveEndpoint(Index),
    Relabel(Index, Labels),
    ToggleAddress(Index),
    AddPolicy(NetworkPolicy),
    ReplacePolicy(Index, NetworkPolicy),
    RemovePolicy(Index),
    RelabelNamespace(Index, Labels),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => endpoint(0).prop_map(Event::AddEndpoint),
        2 => any::<Index>().prop_map(Event::RemoveEndpoint),
        3 => (any::<Index>(), pod_labels()).prop_map(|(i, l)| Event::Relabel(i, l)),
        1 => any::<Index>().prop_map(Event::ToggleAddress),
        2 => policy(0).prop_map(Event::AddPolicy),
        2 => (any::<Index>(), policy(0)).prop_map(|(i, p)| Event::ReplacePolicy(i, p)),
        1 => any::<Index>().prop_map(Event::RemovePolicy),
        1 => (any::<Index>(), namespace_labels()).prop_map(|(i, l)| Event::RelabelNamespace(i, l)),
    ]
}

/// A pod address no other endpoint of the world has.
fn fresh_address(serial: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, 10 + serial as u8)
}

/// Applies `event` to `world`; false if it does not apply (nothing to remove).
fn happen(world: &mut World, event: &Event, serial: usize) -> bool {
    match event {
        Event::AddEndpoint(template) => {
            let mut added = template.clone();
            added.name = format!("added-{serial}");
            if added.ip.is_some() && !added.host_network {
                added.ip = Some(fresh_address(serial));
            }
            world.endpoints.push(added);
        }
        Event::RemoveEndpoint(index) => {
            if world.endpoints.is_empty() {
                return false;
            }
            world.endpoints.remove(index.index(world.endpoints.len()));
        }
        Event::Relabel(index, labels) => {
            if world.endpoints.is_empty() {
                return false;
            }
            let at = index.index(world.endpoints.len());
            world.endpoints[at].labels = labels.clone();
        }
        Event::ToggleAddress(index) => {
            let pods: Vec<usize> = (0..world.endpoints.len())
                .filter(|&i| {
                    world.endpoints[i].name.starts_with("pod")
                        || world.endpoints[i].name.starts_with("added")
                })
                .filter(|&i| !world.endpoints[i].host_network)
                .collect();
            if pods.is_empty() {
                return false;
            }
            let endpoint = &mut world.endpoints[pods[index.index(pods.len())]];
            endpoint.ip = match endpoint.ip {
                Some(_) => None,
                None => Some(fresh_address(serial)),
            };
        }
        Event::AddPolicy(template) => {
            let mut added = template.clone();
            added.metadata.name = Some(format!("added-{serial}"));
            world.policies.push(added);
        }
        Event::ReplacePolicy(index, template) => {
            if world.policies.is_empty() {
                return false;
            }
            let at = index.index(world.policies.len());
            let mut replaced = template.clone();
            replaced.metadata.name = world.policies[at].metadata.name.clone();
            replaced.metadata.namespace = world.policies[at].metadata.namespace.clone();
            world.policies[at] = replaced;
        }
        Event::RemovePolicy(index) => {
            if world.policies.is_empty() {
                return false;
            }
            world.policies.remove(index.index(world.policies.len()));
        }
        Event::RelabelNamespace(index, labels) => {
            let at = index.index(world.namespaces.len());
            world.namespaces[at].1 = labels.clone();
        }
    }
    true
}

/// A group's contents, without its name.
fn contents(group: &PeerGroup) -> PeerGroup {
    PeerGroup {
        name: String::new(),
        ..group.clone()
    }
}

/// What a node ruleset enforces, free of class and group numbering: per
/// side, the isolated pods, and for each peer address or range the
/// contents of its group.
fn canonical(ruleset: &NodeRuleset) -> String {
    let mut out = format!(
        "node {} local {:?}\n",
        ruleset.node, ruleset.local_node_addresses
    );
    for side in &ruleset.sides {
        out += &format!("{:?} {:?}\n", side.direction, side.family);
        let mut isolated: Vec<_> = side
            .isolated
            .iter()
            .map(|class| (&class.addresses, &class.members, &class.policies))
            .collect();
        isolated.sort();
        out += &format!("  isolated {isolated:?}\n");
        if let Some(others) = side.groups.first() {
            out += &format!("  others {:?}\n", contents(others));
        }
        for (address, group) in &side.peer_addresses {
            out += &format!("  {address} {:?}\n", contents(&side.groups[*group]));
        }
        for (first, last, group) in &side.peer_ranges {
            out += &format!("  {first}-{last} {:?}\n", contents(&side.groups[*group]));
        }
    }
    out
}

fn nodes_compilable(model: &Model) -> bool {
    let config = model.config();
    config.host_network == HostNetworkMode::Node && config.self_traffic == SelfTraffic::Allow
}

/// Every answer of `kept` equals that of `fresh`.
fn assert_same_answers(kept: &Model, fresh: &Model) -> Result<(), TestCaseError> {
    prop_assert!(kept.cluster() == fresh.cluster(), "clusters differ");
    let endpoints = fresh.cluster().endpoints.len();
    for protocol_name in PROTOCOLS {
        let protocol: Protocol = protocol_name.parse().unwrap();
        let mut ports: Vec<PortQuery> =
            PROBED_PORTS.iter().map(|&p| PortQuery::Number(p)).collect();
        ports.extend(["http", "dns"].map(|name| PortQuery::Name(name.into())));
        for port in &ports {
            let kept_matrix = kept.port_matrix(protocol, port);
            let fresh_matrix = fresh.port_matrix(protocol, port);
            for s in 0..endpoints {
                prop_assert_eq!(
                    kept_matrix.destinations(s),
                    fresh_matrix.destinations(s),
                    "row {} {:?}/{}",
                    s,
                    port,
                    protocol_name
                );
                for d in 0..endpoints {
                    prop_assert_eq!(kept_matrix.allowed(s, d), fresh_matrix.allowed(s, d));
                    let query = |model: &Model| {
                        model
                            .query(
                                QueryEndpoint::Endpoint(s),
                                QueryEndpoint::Endpoint(d),
                                port,
                                protocol,
                            )
                            .map(|verdict| verdict.allowed())
                            .ok()
                    };
                    prop_assert_eq!(
                        query(kept),
                        query(fresh),
                        "query {} -> {} {:?}/{}",
                        s,
                        d,
                        port,
                        protocol_name
                    );
                }
            }
        }
    }
    for s in 0..endpoints {
        for d in 0..endpoints {
            prop_assert_eq!(
                kept.connections(s, d),
                fresh.connections(s, d),
                "connections {} -> {}",
                s,
                d
            );
        }
        // Addresses: the nodes' (host-network pods carry them), a pod-range
        // one and an outside one, in both directions.
        for address in ["192.168.0.1", "192.168.0.2", "10.0.0.27", "203.0.113.9"] {
            let address = QueryEndpoint::Address(address.parse().unwrap());
            let endpoint = QueryEndpoint::Endpoint(s);
            let port = PortQuery::Number(80);
            let ask = |model: &Model, from, to| {
                model
                    .query(from, to, &port, Protocol::Tcp)
                    .map(|v| v.allowed())
                    .ok()
            };
            prop_assert_eq!(
                ask(kept, address, endpoint),
                ask(fresh, address, endpoint),
                "{:?} -> {}",
                address,
                s
            );
            prop_assert_eq!(
                ask(kept, endpoint, address),
                ask(fresh, endpoint, address),
                "{} -> {:?}",
                s,
                address
            );
            prop_assert_eq!(kept.endpoint_label(address), fresh.endpoint_label(address));
        }
        for direction in [
            policy_core::Direction::Ingress,
            policy_core::Direction::Egress,
        ] {
            prop_assert_eq!(
                kept.policies_selecting(s, direction),
                fresh.policies_selecting(s, direction)
            );
        }
    }
    if nodes_compilable(fresh) {
        let kept_compiler = Compiler::new(kept).expect("compilable");
        let fresh_compiler = Compiler::new(fresh).expect("compilable");
        for node in ["node-1", "node-2"] {
            let (kept_ruleset, kept_unenforceable) = kept_compiler.compile(node);
            let (fresh_ruleset, fresh_unenforceable) = fresh_compiler.compile(node);
            prop_assert_eq!(
                canonical(&kept_ruleset),
                canonical(&fresh_ruleset),
                "{} ruleset",
                node
            );
            prop_assert_eq!(
                kept_unenforceable.without_address,
                fresh_unenforceable.without_address
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Several events at once (one update with many changes: arrivals and
    /// departures are applied together) still answer as a fresh model.
    #[test]
    fn a_model_updated_by_batches_answers_as_a_fresh_one(
        world in world(),
        batches in proptest::collection::vec(proptest::collection::vec(event(), 1..8), 1..5),
    ) {
        let mut world = world;
        let mut kept = Model::new(build_cluster(&world), world.config);
        let mut serial = 0;
        for batch in &batches {
            for event in batch {
                happen(&mut world, event, serial);
                serial += 1;
            }
            let cluster = build_cluster(&world);
            kept.update_to(cluster.clone());
            let fresh = Model::new(cluster, world.config);
            assert_same_answers(&kept, &fresh)?;
        }
    }

    #[test]
    fn an_updated_model_answers_as_a_fresh_one(
        world in world(),
        events in proptest::collection::vec(event(), 1..12),
    ) {
        let mut world = world;
        let mut kept = Model::new(build_cluster(&world), world.config);
        for (serial, event) in events.iter().enumerate() {
            if !happen(&mut world, event, serial) {
                continue;
            }
            let cluster = build_cluster(&world);
            let stats = kept.update_to(cluster.clone());
            // The in-place path must be the one exercised: only the
            // documented structural changes may rebuild.
            match event {
                Event::RelabelNamespace(..) => {}
                Event::AddPolicy(_) | Event::ReplacePolicy(..) | Event::RemovePolicy(_) => {
                    prop_assert!(
                        stats.rebuilt.is_none()
                            || (stats.rebuilt == Some(RebuildReason::IpBlocks)
                                && world.config.ip_block == IpBlockMode::Match),
                        "{:?} rebuilt: {:?}", event, stats
                    );
                }
                _ => prop_assert_eq!(stats.rebuilt, None, "{:?}", event),
            }
            let fresh = Model::new(cluster, world.config);
            assert_same_answers(&kept, &fresh)?;
        }
    }
}
