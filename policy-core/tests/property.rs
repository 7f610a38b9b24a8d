//! Property: the optimised model agrees with a direct, naive reading of the
//! spec, on random clusters, policies and configurations.
//!
//! The naive evaluator below works on the k8s-openapi objects themselves and
//! shares no code with the model: its own selector matching, CIDR
//! arithmetic, policyTypes defaulting and named-port resolution, written
//! straight from networking/v1 (see docs/SEMANTICS.md).

mod common;

use common::{PROTOCOLS, build_model, naive, world};
use policy_core::{PortQuery, Protocol, QueryEndpoint};
use proptest::prelude::*;

const PROBED_PORTS: [u16; 7] = [53, 80, 81, 90, 8080, 8100, 443];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_model_agrees_with_a_naive_reading_of_the_spec(world in world()) {
        let model = build_model(&world);
        // Endpoint ids of the model, in the world's order.
        let ids: Vec<usize> = world
            .endpoints
            .iter()
            .map(|e| model.cluster().find_endpoint(&format!("{}/{}", e.namespace, e.name)).unwrap())
            .collect();
        // The one-pass index of selected classes equals the per-policy scan.
        let selected = model.classes_selected_by_each_policy();
        for (policy, classes) in selected.iter().enumerate() {
            prop_assert_eq!(classes, &model.classes_selected_by(policy), "classes selected by policy {}", policy);
        }
        for protocol_name in PROTOCOLS {
            let protocol: Protocol = protocol_name.parse().unwrap();
            for port in PROBED_PORTS {
                let matrix = model.port_matrix(protocol, &PortQuery::Number(port));
                for (i, &s) in ids.iter().enumerate() {
                    // The streamed row: exactly the destinations the naive reading allows.
                    let mut expected_row: Vec<usize> = ids
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| naive::allowed(&world, i, j, protocol_name, port))
                        .map(|(_, &d)| d)
                        .collect();
                    expected_row.sort_unstable();
                    prop_assert_eq!(matrix.destinations(s), expected_row, "destinations of {} {}/{}", i, port, protocol_name);
                    for (j, &d) in ids.iter().enumerate() {
                        let expected = naive::allowed(&world, i, j, protocol_name, port);
                        let verdict = model
                            .query(QueryEndpoint::Endpoint(s), QueryEndpoint::Endpoint(d), &PortQuery::Number(port), protocol)
                            .unwrap();
                        prop_assert_eq!(verdict.allowed(), expected, "query {} -> {} {}/{}: {:?}", i, j, port, protocol_name, verdict);
                        prop_assert_eq!(matrix.allowed(s, d), expected, "port matrix {} -> {} {}/{}", i, j, port, protocol_name);
                        prop_assert_eq!(model.connections(s, d).contains(protocol, port), expected, "connections {} -> {} {}/{}", i, j, port, protocol_name);
                    }
                }
            }
        }
    }
}
