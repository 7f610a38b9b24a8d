//! The upstream admin network policy conformance suite as data
//! (testdata/admin-conformance): the case-file schema, the rendering of the
//! upstream manifests, and the pods the base manifests define. Schema and
//! derivation are documented in testdata/admin-conformance/README.md.
//! Shared with later runners (model, kernel) through `#[path]`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::net::Ipv4Addr;

/// One upstream API version of the suite: its directory under
/// testdata/admin-conformance and the upstream revision it was taken from.
pub struct Version {
    pub dir: &'static str,
    pub upstream_ref: &'static str,
    pub upstream_commit: &'static str,
}

pub const V1ALPHA1: Version = Version {
    dir: "v1alpha1",
    upstream_ref: "v0.1.8",
    upstream_commit: "5a62954284765fb16f2e601f11907ca0b839b89f",
};

pub const V1ALPHA2: Version = Version {
    dir: "v1alpha2",
    upstream_ref: "main",
    upstream_commit: "0eec1b0e5fa92715b4c0f4c48d3c8d2913ed2159",
};

pub fn admin_conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/admin-conformance")
}

impl Version {
    pub fn root(&self) -> PathBuf {
        admin_conformance_dir().join(self.dir)
    }

    pub fn cases_dir(&self) -> PathBuf {
        self.root().join("cases")
    }

    /// The case files, sorted by name.
    pub fn case_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.cases_dir())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub source: Source,
    /// Path of the base cluster manifests, relative to the case file.
    pub base: String,
    /// Values of the `{{ index .HostNetworkPorts N }}` template in the manifests.
    pub host_network_ports: Vec<u16>,
    pub tests: Vec<Test>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub repository: String,
    pub path: String,
    #[serde(rename = "ref")]
    pub upstream_ref: String,
    pub commit: String,
}

/// One upstream `suite.ConformanceTest`: its manifests are applied fresh,
/// then the steps run in order on the accumulated state.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub short_name: String,
    pub description: String,
    pub features: Vec<String>,
    /// Paths of the test's manifests, relative to the case file.
    pub policies: Vec<String>,
    pub steps: Vec<Step>,
}

/// One upstream `t.Run` subtest, or one part of it when the subtest
/// interleaves changes and probes (`part` counts from 1).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default)]
    pub part: Option<u32>,
    /// Changes applied, in order, before the probes; they persist for the
    /// rest of the test.
    #[serde(default)]
    pub mutate: Vec<Mutation>,
    pub probes: Vec<Probe>,
}

#[derive(Deserialize, Debug)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mutation {
    /// Exchange the rules at indexes `i` and `j` of `spec.<field>`.
    SwapRules {
        kind: String,
        name: String,
        field: String,
        i: usize,
        j: usize,
        /// Rule names of `spec.<field>` after the swap (a redundant check).
        rules_after: Vec<String>,
    },
    /// Insert `rule` at `index` of `spec.<field>`. Inside `rule`, an object
    /// `{pod_ip_of: ns/pod, prefix: host}` stands for the CIDR string
    /// `<pod IP>/32` (IPv4) or `<pod IP>/128` (IPv6).
    InsertRule {
        kind: String,
        name: String,
        field: String,
        index: usize,
        rule: Json,
        rules_after: Vec<String>,
    },
    /// Replace the value at `path` (dotted fields and `[index]`, e.g.
    /// `spec.egress[5].protocols`) with `value`.
    Set {
        kind: String,
        name: String,
        path: String,
        value: Json,
    },
    /// Replace the namespace's labels with `labels` (the API server keeps
    /// `kubernetes.io/metadata.name`).
    SetNamespaceLabels {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// Delete an object of the test's manifests.
    Delete {
        kind: String,
        #[serde(default)]
        namespace: Option<String>,
        name: String,
    },
}

impl Mutation {
    /// The (kind, namespace, name) of the object the mutation edits, if it
    /// edits one of the test's manifests.
    pub fn target(&self) -> Option<(&str, Option<&str>, &str)> {
        match self {
            Mutation::SwapRules { kind, name, .. }
            | Mutation::InsertRule { kind, name, .. }
            | Mutation::Set { kind, name, .. } => Some((kind, None, name)),
            Mutation::Delete {
                kind,
                namespace,
                name,
            } => Some((kind, namespace.as_deref(), name)),
            Mutation::SetNamespaceLabels { .. } => None,
        }
    }
}

/// A connection attempt from the client container of `from` to the
/// `status.podIP` of `to` (the node IP when `to_host_network`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub protocol: String,
    pub port: u16,
    #[serde(default)]
    pub host_network_port_index: Option<usize>,
    #[serde(default)]
    pub to_host_network: bool,
    pub expect: String,
}

pub fn load_case(path: &Path) -> CaseFile {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Json =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Apply the Go template the upstream suite applies to every manifest: the
/// only construct used is `{{ index .HostNetworkPorts N }}`.
pub fn render(text: &str, host_network_ports: &[u16]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = start
            + rest[start..]
                .find("}}")
                .expect("unterminated template action")
            + 2;
        let action = rest[start + 2..end - 2].trim();
        let index: usize = action
            .strip_prefix("index .HostNetworkPorts ")
            .unwrap_or_else(|| panic!("unsupported template action {action:?}"))
            .parse()
            .unwrap();
        out.push_str(&host_network_ports[index].to_string());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The rendered documents of a manifest file.
pub fn load_manifests(path: &Path, host_network_ports: &[u16]) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents: Vec<Json> = serde_saphyr::from_multiple(&render(&text, host_network_ports))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// A pod of the base manifests: replica `i` of a StatefulSet `s` in
/// namespace `ns` is `ns/s-i`.
#[derive(Debug, Clone)]
pub struct BasePod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub host_network: bool,
    /// (protocol, port) of every server container.
    pub serves: Vec<(String, u16)>,
    /// Named container ports: name -> (protocol, port).
    pub named_ports: BTreeMap<String, (String, u16)>,
}

pub fn base_pods(documents: &[Json]) -> BTreeMap<String, BasePod> {
    let mut pods = BTreeMap::new();
    for document in documents {
        if document["kind"] != "StatefulSet" {
            continue;
        }
        let namespace = document["metadata"]["namespace"].as_str().unwrap();
        let name = document["metadata"]["name"].as_str().unwrap();
        let template = &document["spec"]["template"];
        let labels: BTreeMap<String, String> =
            serde_json::from_value(template["metadata"]["labels"].clone()).unwrap();
        let host_network = template["spec"]["hostNetwork"].as_bool().unwrap_or(false);
        let mut serves = Vec::new();
        let mut named_ports = BTreeMap::new();
        for container in template["spec"]["containers"].as_array().unwrap() {
            serves.extend(served_ports(container));
            for port in container["ports"].as_array().into_iter().flatten() {
                if let Some(port_name) = port["name"].as_str() {
                    named_ports.insert(
                        port_name.to_string(),
                        (
                            port["protocol"].as_str().unwrap_or("TCP").to_string(),
                            port["containerPort"].as_u64().unwrap() as u16,
                        ),
                    );
                }
            }
        }
        for i in 0..document["spec"]["replicas"].as_u64().unwrap() {
            let pod = format!("{name}-{i}");
            pods.insert(
                format!("{namespace}/{pod}"),
                BasePod {
                    namespace: namespace.to_string(),
                    name: pod,
                    labels: labels.clone(),
                    host_network,
                    serves: serves.clone(),
                    named_ports: named_ports.clone(),
                },
            );
        }
    }
    pods
}

/// What an agnhost container listens on, from its command line:
/// `serve-hostname --tcp|--udp --port N`, `netexec --http-port N --udp-port M`,
/// and
/// `porter` with `SERVE_SCTP_PORT_N` in its environment.
fn served_ports(container: &Json) -> Vec<(String, u16)> {
    let command: Vec<&str> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    let words: Vec<&str> = command
        .last()
        .map(|line| line.split_whitespace().collect())
        .unwrap_or_default();
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .map(|i| words[i + 1].parse::<u16>().unwrap())
    };
    let mut out = Vec::new();
    if words.contains(&"serve-hostname") {
        let protocol = if words.contains(&"--udp") {
            "UDP"
        } else {
            "TCP"
        };
        out.push((protocol.to_string(), flag("--port").unwrap()));
    } else if words.contains(&"netexec") {
        out.push(("TCP".to_string(), flag("--http-port").unwrap()));
        out.push(("UDP".to_string(), flag("--udp-port").unwrap()));
    } else if words.contains(&"porter") {
        for env in container["env"].as_array().into_iter().flatten() {
            if let Some(port) = env["name"]
                .as_str()
                .and_then(|n| n.strip_prefix("SERVE_SCTP_PORT_"))
            {
                out.push(("SCTP".to_string(), port.parse().unwrap()));
            }
        }
    }
    out
}

/// The `name` of every rule of `spec.<field>`, in order.
pub fn rule_names(policy: &Json, field: &str) -> Vec<String> {
    policy["spec"][field]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Follow a `spec.egress[5].protocols` path; every step must exist.
pub fn at_path<'a>(document: &'a mut Json, path: &str) -> &'a mut Json {
    let mut node = document;
    for segment in path.split('.') {
        let (field, index) = match segment.split_once('[') {
            Some((field, rest)) => (
                field,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (segment, None),
        };
        node = node
            .get_mut(field)
            .unwrap_or_else(|| panic!("path {path}: no field {field}"));
        if let Some(index) = index {
            node = node
                .get_mut(index)
                .unwrap_or_else(|| panic!("path {path}: no index {index} in {field}"));
        }
    }
    node
}

/// Where each base pod runs and its address.
pub struct Placement {
    pub node: String,
    pub ip: Ipv4Addr,
}

pub fn pod_object(pod: &BasePod, placement: &Placement) -> Json {
    let ports: Vec<Json> = (pod.named_ports.iter())
        .map(|(name, (protocol, port))| {
            json!({"name": name, "containerPort": port, "protocol": protocol})
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
        "spec": {
            "nodeName": placement.node,
            "hostNetwork": pod.host_network,
            "containers": [{"name": "server", "image": "agnhost", "ports": ports}],
        },
        "status": {
            "phase": "Running",
            "podIP": placement.ip.to_string(),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

pub fn find<'a>(objects: &'a mut [Json], kind: &str, name: &str) -> &'a mut Json {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// `{pod_ip_of: ns/pod, prefix: host}` → `<ip>/32`, anywhere inside `value`.
pub fn resolve_pod_ips(value: &mut Json, placements: &BTreeMap<String, Placement>) {
    match value {
        Json::Object(map) if map.contains_key("pod_ip_of") => {
            let pod = map["pod_ip_of"].as_str().unwrap();
            *value = json!(format!("{}/32", placements[pod].ip));
        }
        Json::Object(map) => map
            .values_mut()
            .for_each(|v| resolve_pod_ips(v, placements)),
        Json::Array(items) => items
            .iter_mut()
            .for_each(|v| resolve_pod_ips(v, placements)),
        _ => {}
    }
}

pub fn apply(
    mutation: &Mutation,
    objects: &mut Vec<Json>,
    placements: &BTreeMap<String, Placement>,
) {
    match mutation {
        Mutation::SwapRules {
            kind,
            name,
            field,
            i,
            j,
            rules_after,
        } => {
            let object = find(objects, kind, name);
            object["spec"][field].as_array_mut().unwrap().swap(*i, *j);
            assert_eq!(&rule_names(object, field), rules_after);
        }
        Mutation::InsertRule {
            kind,
            name,
            field,
            index,
            rule,
            rules_after,
        } => {
            let object = find(objects, kind, name);
            let mut rule = rule.clone();
            resolve_pod_ips(&mut rule, placements);
            let rules = object["spec"][field].as_array_mut().unwrap();
            rules.insert(*index, rule);
            assert_eq!(&rule_names(object, field), rules_after);
        }
        Mutation::Set {
            kind,
            name,
            path,
            value,
        } => {
            let mut value = value.clone();
            resolve_pod_ips(&mut value, placements);
            *at_path(find(objects, kind, name), path) = value;
        }
        Mutation::SetNamespaceLabels { name, labels } => {
            find(objects, "Namespace", name)["metadata"]["labels"] = json!(labels);
        }
        Mutation::Delete {
            kind,
            namespace,
            name,
        } => {
            let before = objects.len();
            objects.retain(|o| {
                !(o["kind"] == kind.as_str()
                    && o["metadata"]["name"] == name.as_str()
                    && namespace
                        .as_deref()
                        .is_none_or(|ns| o["metadata"]["namespace"] == ns))
            });
            assert_eq!(objects.len(), before - 1, "deleted {kind} {name}");
        }
    }
}

/// A Node object as the suite's nodes are labelled, with one InternalIP.
pub fn node_object(name: &str, address: Ipv4Addr) -> Json {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}},
        "status": {"addresses": [{"type": "InternalIP", "address": address.to_string()}]},
    })
}

/// The model of a step's objects, with the default configuration; the
/// objects must load without errors.
pub fn model_of(objects: &[Json]) -> policy_core::Model {
    let text: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    let mut loader = policy_core::Loader::new();
    loader.load_str("cluster.yaml", &text.join("\n---\n"));
    let loaded = loader.finish();
    let errors: Vec<_> = (loaded.diagnostics.iter())
        .filter(|d| d.severity == policy_core::diagnostic::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    policy_core::Model::new(loaded.cluster, policy_core::Config::default())
}
