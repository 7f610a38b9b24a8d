//! The upstream Kubernetes NetworkPolicy e2e suite, as data
//! (testdata/conformance), against the model.
//!
//! Every case file gives the policies, cluster changes and expected truth
//! tables transcribed from upstream. The runner builds the cluster through the
//! text loader, asks the model for each table twice (the class-level port
//! matrix and one query per pair), and compares both with the expectation.
//! Self pairs are not compared: upstream does not assert them (ignoreLoopback).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use policy_core::{Config, Loader, Model, PortQuery, Protocol, QueryEndpoint};
use serde::Deserialize;
use serde_json::Value as Json;

const PODS: [&str; 9] = [
    "x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c",
];

#[derive(Deserialize)]
struct Case {
    upstream: Upstream,
    #[serde(default)]
    cluster: ClusterChanges,
    #[serde(default)]
    policies: Vec<Json>,
    probes: Vec<Probe>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Upstream {
    test: String,
    context: String,
    line: u32,
    #[serde(default)]
    step: Option<String>,
}

#[derive(Deserialize, Default)]
struct ClusterChanges {
    #[serde(default)]
    namespace_labels: BTreeMap<String, BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pod_labels: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

#[derive(Deserialize)]
struct Probe {
    port: u16,
    protocol: String,
    reachability: Reachability,
}

#[derive(Deserialize)]
struct Reachability {
    default: bool,
    #[serde(default)]
    edits: Vec<Edit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Edit {
    ExpectPeer {
        from: PeerPattern,
        to: PeerPattern,
        allowed: bool,
    },
    Expect {
        from: String,
        to: String,
        allowed: bool,
    },
    ExpectAllIngress {
        pod: String,
        allowed: bool,
    },
    ExpectAllEgress {
        pod: String,
        allowed: bool,
    },
}

#[derive(Deserialize, Default)]
struct PeerPattern {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    pod: Option<String>,
}

impl PeerPattern {
    /// Upstream `Peer.Matches`: an empty namespace or pod is a wildcard.
    fn matches(&self, pod: &str) -> bool {
        let (namespace, name) = pod.split_once('/').unwrap();
        self.namespace
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == namespace)
            && self
                .pod
                .as_deref()
                .is_none_or(|p| p.is_empty() || p == name)
    }
}

/// The expected table: `table[from][to]`, built the way upstream's
/// `Reachability` builds it (later edits win).
fn expected_table(reachability: &Reachability) -> [[bool; 9]; 9] {
    let mut table = [[reachability.default; 9]; 9];
    let index = |pod: &str| {
        PODS.iter()
            .position(|p| *p == pod)
            .unwrap_or_else(|| panic!("unknown pod {pod}"))
    };
    for edit in &reachability.edits {
        match edit {
            Edit::ExpectPeer { from, to, allowed } => {
                for (i, source) in PODS.iter().enumerate() {
                    for (j, destination) in PODS.iter().enumerate() {
                        if from.matches(source) && to.matches(destination) {
                            table[i][j] = *allowed;
                        }
                    }
                }
            }
            Edit::Expect { from, to, allowed } => table[index(from)][index(to)] = *allowed,
            Edit::ExpectAllIngress { pod, allowed } => {
                let j = index(pod);
                for row in table.iter_mut() {
                    row[j] = *allowed;
                }
            }
            Edit::ExpectAllEgress { pod, allowed } => table[index(pod)] = [*allowed; 9],
        }
    }
    table
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance")
}

fn merge_labels(object: &mut Json, changes: &BTreeMap<String, Option<String>>) {
    let metadata = object["metadata"].as_object_mut().expect("metadata");
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Json::Object(Default::default()))
        .as_object_mut()
        .expect("labels map");
    for (key, value) in changes {
        match value {
            Some(value) => {
                labels.insert(key.clone(), Json::String(value.clone()));
            }
            None => {
                labels.remove(key);
            }
        }
    }
}

/// The base cluster with the case's label changes, then the case's
/// policies, all as one JSON-lines stream through the text loader.
fn manifests_for(case: &Case) -> String {
    let base = std::fs::read_to_string(conformance_dir().join("cluster.yaml")).unwrap();
    let mut documents: Vec<Json> = serde_saphyr::from_multiple(&base).expect("cluster.yaml parses");
    for document in &mut documents {
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let name = document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = document["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match kind.as_str() {
            "Namespace" => {
                if let Some(changes) = case.cluster.namespace_labels.get(&name) {
                    merge_labels(document, changes);
                }
            }
            "Pod" => {
                if let Some(changes) = case.cluster.pod_labels.get(&format!("{namespace}/{name}")) {
                    merge_labels(document, changes);
                }
            }
            _ => {}
        }
    }
    documents
        .iter()
        .chain(&case.policies)
        .map(|document| format!("---\n{}\n", serde_json::to_string(document).unwrap()))
        .collect()
}

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

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir().join("cases"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
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
