//! The upstream Kubernetes NetworkPolicy e2e suite, as data
//! (testdata/conformance), against the model.
//!
//! Every case file gives the policies, cluster changes and expected truth
//! tables transcribed from upstream. The runner builds the cluster through the
//! text loader, asks the model for each table twice (the class-level port
//! matrix and one query per pair), and compares both with the expectation.
//! Self pairs are not compared: upstream does not assert them (ignoreLoopback).

use std::fmt::Write as _;

use policy_core::{Config, Loader, Model, PortQuery, Protocol, QueryEndpoint};

#[path = "support/conformance_case.rs"]
mod conformance_case;

use conformance_case::{Case, PODS, case_files, expected_table, manifests_for};

fn render(table: &[[bool; 9]; 9]) -> String {
    let mut out = String::from("-\t");
    out.push_str(&PODS.join("\t"));
    out.push('\n');
    for (i, row) in table.iter().enumerate() {
        out.push_str(PODS[i]);
        for (j, cell) in row.iter().enumerate() {
            out.push('\t');
            out.push(if i == j {
                '-'
            } else if *cell {
                'X'
            } else {
                '.'
            });
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_upstream_case_matches_its_truth_tables() {
    let files = case_files();
    let mut upstream_tests = std::collections::BTreeSet::new();
    let mut failures = String::new();
    let mut probes = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let case: Case =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        upstream_tests.insert((case.upstream.context.clone(), case.upstream.test.clone()));

        let mut loader = Loader::new();
        loader.load_str(&file.display().to_string(), &manifests_for(&case));
        let loaded = loader.finish();
        assert!(
            loaded.diagnostics.is_empty(),
            "{}: unexpected diagnostics: {:#?}",
            file.display(),
            loaded.diagnostics
        );
        let model = Model::new(loaded.cluster, Config::default());
        let ids: Vec<usize> = PODS
            .iter()
            .map(|pod| model.cluster().find_endpoint(pod).unwrap())
            .collect();

        for probe in &case.probes {
            probes += 1;
            let protocol: Protocol = probe.protocol.parse().unwrap();
            let port = PortQuery::Number(probe.port);
            let expected = expected_table(&probe.reachability);
            let matrix = model.port_matrix(protocol, &port);
            let mut from_matrix = [[false; 9]; 9];
            let mut from_queries = [[false; 9]; 9];
            for i in 0..9 {
                for j in 0..9 {
                    from_matrix[i][j] = matrix.allowed(ids[i], ids[j]);
                    let verdict = model
                        .query(
                            QueryEndpoint::Endpoint(ids[i]),
                            QueryEndpoint::Endpoint(ids[j]),
                            &port,
                            protocol,
                        )
                        .unwrap();
                    from_queries[i][j] = verdict.allowed();
                }
            }
            let differs = |actual: &[[bool; 9]; 9]| {
                (0..9).any(|i| (0..9).any(|j| i != j && actual[i][j] != expected[i][j]))
            };
            for (how, actual) in [("port matrix", &from_matrix), ("queries", &from_queries)] {
                if differs(actual) {
                    let _ = writeln!(
                        failures,
                        "\n{} ({} {}/{}) via {how}\nexpected:\n{}observed:\n{}",
                        file.file_name().unwrap().to_string_lossy(),
                        case.upstream.test,
                        probe.port,
                        probe.protocol,
                        render(&expected),
                        render(actual)
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "conformance failures:{failures}");
    assert!(
        upstream_tests.len() >= 45,
        "only {} upstream tests",
        upstream_tests.len()
    );
    assert!(probes >= files.len());
}
