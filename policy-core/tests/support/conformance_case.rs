//! The upstream e2e suite as data (testdata/conformance): case files, the
//! expected truth tables built the way upstream builds them, and the
//! manifests of each case. Shared by policy-core's conformance test and
//! policy-nft's kernel test (included with `#[path]`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

pub const PODS: [&str; 9] = [
    "x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c",
];

#[derive(Deserialize)]
pub struct Case {
    pub upstream: Upstream,
    #[serde(default)]
    pub cluster: ClusterChanges,
    #[serde(default)]
    pub policies: Vec<Json>,
    pub probes: Vec<Probe>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub struct Upstream {
    pub test: String,
    pub context: String,
    pub line: u32,
    #[serde(default)]
    pub step: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ClusterChanges {
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub pod_labels: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

#[derive(Deserialize)]
pub struct Probe {
    pub port: u16,
    pub protocol: String,
    pub reachability: Reachability,
}

#[derive(Deserialize)]
pub struct Reachability {
    pub default: bool,
    #[serde(default)]
    pub edits: Vec<Edit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edit {
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
pub struct PeerPattern {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub pod: Option<String>,
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
pub fn expected_table(reachability: &Reachability) -> [[bool; 9]; 9] {
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

pub fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance")
}

pub fn merge_labels(object: &mut Json, changes: &BTreeMap<String, Option<String>>) {
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
pub fn manifests_for(case: &Case) -> String {
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

pub fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir().join("cases"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}
