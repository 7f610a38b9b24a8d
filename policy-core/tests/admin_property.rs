//! Property: `Model::query`, `Model::connections` and `Model::port_matrix`
//! (the per-connection and the class-level readings) through the admin
//! tiers agree with a naive
//! reading of the API on random worlds: pods, NetworkPolicies, and random
//! mixes of AdminNetworkPolicies, a BaselineAdminNetworkPolicy and
//! ClusterNetworkPolicies of both tiers, written as the API objects.
//!
//! The naive side reads the generated JSON directly (it shares no code with
//! policy-core's admin module): each side of a connection goes Admin tier
//! (by priority, then kind and name, rules in order, first match; Pass hands
//! over), then NetworkPolicy, then for pods no NetworkPolicy selects the
//! Baseline tier, then allow. Priorities come from a small range, so ties
//! are common; netpol answers those with the first by kind and name (and
//! flags them), which the naive side mirrors.

#[path = "support/admin_generators.rs"]
mod admin_generators;
mod common;

use std::net::Ipv4Addr;

use admin_generators::{Generated, admin_policies, manifests};
use common::{PORT_NUMBERS, PROTOCOLS, World, naive};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use policy_core::model::{Counterpart, PortMatrix};
use policy_core::{Config, Direction, Model, PortQuery, Protocol, QueryEndpoint};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Pods on the pod network only, each with an address, and the default
/// configuration: the tiers are what this property is about.
fn world() -> impl Strategy<Value = World> {
    common::world().prop_map(|mut world| {
        world.config = Config::default();
        for (index, endpoint) in world.endpoints.iter_mut().enumerate() {
            endpoint.name = format!("pod-{index}");
            endpoint.host_network = false;
            endpoint.ip = Some(Ipv4Addr::new(10, 0, 0, 10 + index as u8 * 17));
        }
        world
    })
}

// ------------------------------------------------------------------ naive

fn matches(selector: &Json, labels: &common::Labels) -> bool {
    let selector: LabelSelector = serde_json::from_value(selector.clone()).unwrap();
    naive::selector_matches(&selector, labels)
}

fn pod_in(world: &World, selectors: &Json, pod: usize) -> bool {
    let endpoint = &world.endpoints[pod];
    let namespace_labels = naive::namespace_labels(world, &endpoint.namespace);
    if let Some(namespaces) = selectors.get("namespaces") {
        return matches(namespaces, &namespace_labels);
    }
    let pods = &selectors["pods"];
    matches(&pods["namespaceSelector"], &namespace_labels)
        && matches(&pods["podSelector"], &endpoint.labels)
}

fn port_matches(
    entry: &Json,
    world: &World,
    destination: usize,
    protocol: &str,
    port: u16,
) -> bool {
    let named = |name: &str| {
        (world.endpoints[destination].ports.iter())
            .any(|(n, number, p)| n.as_deref() == Some(name) && p == protocol && *number == port)
    };
    if let Some(number) = entry.get("portNumber") {
        return number["protocol"] == protocol && number["port"] == port;
    }
    if let Some(range) = entry.get("portRange") {
        return range["protocol"] == protocol
            && (range["start"].as_u64().unwrap()..=range["end"].as_u64().unwrap())
                .contains(&u64::from(port));
    }
    if let Some(name) = entry.get("namedPort").or(entry.get("destinationNamedPort")) {
        return named(name.as_str().unwrap());
    }
    let Some(spec) = entry.get(protocol.to_lowercase()) else {
        return false;
    };
    let destination_port = &spec["destinationPort"];
    match destination_port.get("number") {
        Some(number) => number == port,
        None => {
            let range = &destination_port["range"];
            (range["start"].as_u64().unwrap()..=range["end"].as_u64().unwrap())
                .contains(&u64::from(port))
        }
    }
}

/// One side of a connection: the pod whose side it is, the other end, the
/// direction and the destination port.
#[derive(Clone, Copy)]
struct Side<'a> {
    subject: usize,
    peer: usize,
    egress: bool,
    protocol: &'a str,
    port: u16,
}

/// The action of the first matching rule of `tier` for one side, if any.
fn tier_action(world: &World, policies: &[Generated], tier: u8, side: Side<'_>) -> Option<String> {
    let Side {
        subject,
        peer,
        egress,
        protocol,
        port,
    } = side;
    let mut ordered: Vec<&Generated> = policies.iter().filter(|p| p.tier == tier).collect();
    ordered.sort_by(|a, b| (a.precedence, &a.order).cmp(&(b.precedence, &b.order)));
    let destination = if egress { peer } else { subject };
    for policy in ordered {
        let spec = &policy.object["spec"];
        if !pod_in(world, &spec["subject"], subject) {
            continue;
        }
        for rule in spec[if egress { "egress" } else { "ingress" }]
            .as_array()
            .unwrap()
        {
            let peers = &rule[if egress { "to" } else { "from" }];
            let peer_ok = peers
                .as_array()
                .unwrap()
                .iter()
                .any(|p| match p.get("networks") {
                    Some(cidrs) => (cidrs.as_array().unwrap().iter()).any(|c| {
                        naive::in_cidr(world.endpoints[peer].ip.unwrap(), c.as_str().unwrap())
                    }),
                    None => pod_in(world, p, peer),
                });
            let ports = rule.get("ports").or(rule.get("protocols"));
            let ports_ok = ports.is_none_or(|ports| {
                (ports.as_array().unwrap().iter())
                    .any(|entry| port_matches(entry, world, destination, protocol, port))
            });
            if peer_ok && ports_ok {
                return Some(rule["action"].as_str().unwrap().to_string());
            }
        }
    }
    None
}

fn side_allows(world: &World, policies: &[Generated], side: Side<'_>) -> bool {
    let decide = |tier| tier_action(world, policies, tier, side);
    match decide(0).as_deref() {
        Some("Allow" | "Accept") => return true,
        Some("Deny") => return false,
        _ => {}
    }
    let Side {
        subject,
        peer,
        egress,
        protocol,
        port,
    } = side;
    if let Some(allowed) = naive::network_policy_side(world, subject, peer, egress, protocol, port)
    {
        return allowed;
    }
    !matches!(decide(1).as_deref(), Some("Deny"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn query_through_the_tiers_agrees_with_a_naive_reading(
        world in world(),
        policies in admin_policies(),
    ) {
        let cluster = common::build_cluster_with(&world, &manifests(&policies));
        prop_assert_eq!(cluster.admin_policies.len(), policies.len());
        let model = Model::new(cluster, world.config);
        // The class-level answers (matrix, connection sets) must agree too.
        let matrices: Vec<((&str, u16), PortMatrix<'_>)> = PROTOCOLS
            .iter()
            .flat_map(|&protocol| PORT_NUMBERS.iter().map(move |&port| (protocol, port)))
            .map(|(protocol, port)| {
                let matrix = model.port_matrix(protocol.parse().unwrap(), &PortQuery::Number(port));
                ((protocol, port), matrix)
            })
            .collect();
        for source in 0..world.endpoints.len() {
            for destination in 0..world.endpoints.len() {
                if source == destination {
                    continue;
                }
                let endpoint = |index: usize| {
                    let e = &world.endpoints[index];
                    model.resolve_endpoint(&format!("{}/{}", e.namespace, e.name)).unwrap()
                };
                let (from, to): (QueryEndpoint, QueryEndpoint) = (endpoint(source), endpoint(destination));
                let (QueryEndpoint::Endpoint(from_id), QueryEndpoint::Endpoint(to_id)) = (from, to) else {
                    panic!("pods resolve to endpoints");
                };
                let connections = model.connections(from_id, to_id);
                // The report's per-side reasons account for the same ports.
                let (s, d) = (model.class_of(from_id), model.class_of(to_id));
                let permitted = model
                    .side_permit(Direction::Egress, s, Counterpart::Class(d))
                    .ports()
                    .intersection(&model.side_permit(Direction::Ingress, d, Counterpart::Class(s)).ports());
                prop_assert_eq!(&permitted, &connections, "side permits {} -> {}", source, destination);
                for protocol in PROTOCOLS {
                    for port in PORT_NUMBERS {
                        let verdict = model
                            .query(from, to, &PortQuery::Number(port), protocol.parse::<Protocol>().unwrap())
                            .unwrap();
                        let egress = Side { subject: source, peer: destination, egress: true, protocol, port };
                        let ingress = Side { subject: destination, peer: source, egress: false, protocol, port };
                        let expected = side_allows(&world, &policies, egress)
                            && side_allows(&world, &policies, ingress);
                        prop_assert_eq!(
                            verdict.allowed(),
                            expected,
                            "{} -> {} {} {}: {:?}",
                            source, destination, protocol, port, verdict
                        );
                        let parsed: Protocol = protocol.parse().unwrap();
                        prop_assert_eq!(
                            connections.contains(parsed, port),
                            expected,
                            "connections {} -> {} {} {}: {:?}",
                            source, destination, protocol, port, connections
                        );
                        let (_, matrix) = matrices
                            .iter()
                            .find(|(key, _)| *key == (protocol, port))
                            .unwrap();
                        prop_assert_eq!(
                            matrix.allowed(from_id, to_id),
                            expected,
                            "matrix {} -> {} {} {}",
                            source, destination, protocol, port
                        );
                    }
                }
            }
        }
    }
}
