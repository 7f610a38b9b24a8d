//! `netpol matrix --by service` (client workloads × Service ports) and the
//! Service nodes of `netpol matrix --output dot`, on the Services
//! conformance cluster (testdata/services/cluster.yaml).
//!
//! Every expectation here is derived by hand from the manifests,
//! testdata/services/README.md and docs/SEMANTICS.md §17, never copied from
//! netpol's output:
//! - `shop/web` port `http` (80) has the named targetPort `http`: 80 on
//!   web-1, 8080 on web-2; web-3 has no `http` and is no backend (§17.2).
//!   The headless `shop/web-headless` sends to all three on its Service
//!   port, 80 (§17.2 "Headless").
//! - A policy admitting TCP 80 to app=web only from app=client lets the
//!   client through to web-1 and not web-2: intermittent, 1 of 2 (§17.1,
//!   case 002); any other pod is denied by both backends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const CLUSTER: &str = "testdata/services/cluster.yaml";

/// TCP 80 to app=web, only from app=client (case 002's policy).
const WEB_FROM_CLIENT_80: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client-80, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}]
";

/// A two-pod workload `shop/front` (a ReplicaSet's pods), of which only
/// front-1 has `role: ok`, and a policy admitting TCP 80 to app=web only
/// from `role: ok`.
const FRONT_SPLIT: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: front-5f6d-a
  namespace: shop
  labels: {app: front, pod-template-hash: 5f6d, role: ok}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: front-5f6d, uid: f1, controller: true}]
spec: {nodeName: node-1, containers: [{name: f, image: f}]}
status: {podIP: 10.0.1.40}
---
apiVersion: v1
kind: Pod
metadata:
  name: front-5f6d-b
  namespace: shop
  labels: {app: front, pod-template-hash: 5f6d}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: front-5f6d, uid: f1, controller: true}]
spec: {nodeName: node-2, containers: [{name: f, image: f}]}
status: {podIP: 10.0.2.40}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-ok-80, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: ok}}}]
    ports: [{port: 80}]
";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn netpol(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("netpol runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Writes `text` to a fresh file in a temporary directory of this test.
fn policy_file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netpol-service-matrix-{}-{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policies.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `netpol matrix CLUSTER POLICIES ARGS...`, expecting exit status 0.
fn matrix(test: &str, policies: &str, args: &[&str]) -> String {
    let path = policy_file(test, policies);
    let mut all = vec!["matrix", CLUSTER, path.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = netpol(&all);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output)
}

/// The text table's cell in the row `row` under the header `column`.
fn text_cell(table: &str, row: &str, column: &str) -> String {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let start = header
        .find(&format!("  {column}"))
        .unwrap_or_else(|| panic!("no column {column} in {header}"))
        + 2;
    let line = lines
        .find(|l| l.split_whitespace().next() == Some(row))
        .unwrap_or_else(|| panic!("no row {row} in\n{table}"));
    let rest = &line[start.min(line.len())..];
    // Cells are separated by two spaces; a cell has single spaces only.
    rest.split("  ").next().unwrap().trim_end().to_string()
}

fn json_cell<'a>(matrix: &'a Value, from: &str, service: &str, port_name: &str) -> &'a Value {
    matrix["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["from"] == from && c["service"] == service && c["port_name"] == port_name)
        .unwrap_or_else(|| panic!("no cell {from} -> {service}:{port_name}"))
}

#[test]
fn text_shows_the_named_target_port_split_as_intermittent() {
    let table = matrix(
        "text",
        WEB_FROM_CLIENT_80,
        &["--by", "service", "--port", "http"],
    );
    let header = table.lines().next().unwrap();
    let columns: Vec<&str> = header.split_whitespace().skip(1).collect();
    // Every Service port named http (none is numbered "http"), and only those.
    assert_eq!(
        columns,
        [
            "ingress-nginx/ingress-nginx-controller:http/TCP",
            "shop/web:http/TCP",
            "shop/web-headless:http/TCP",
            "shop/web-lb:http/TCP",
        ],
        "{table}"
    );
    assert_eq!(
        text_cell(&table, "shop/client", "shop/web:http/TCP"),
        "intermittent (1 of 2)"
    );
    assert_eq!(
        text_cell(&table, "other/stranger", "shop/web:http/TCP"),
        "denied"
    );
    // Headless: all three web pods, each on port 80, which the policy admits.
    assert_eq!(
        text_cell(&table, "shop/client", "shop/web-headless:http/TCP"),
        "allowed"
    );
    // The load-balancer Service has the same backends as shop/web.
    assert_eq!(
        text_cell(&table, "shop/client", "shop/web-lb:http/TCP"),
        "intermittent (1 of 2)"
    );
    // web-1 reaching shop/web may be sent to itself, through its node: its
    // own ingress must admit it (§17.3), and it is no app=client.
    assert_eq!(
        text_cell(&table, "shop/web-1", "shop/web:http/TCP"),
        "denied"
    );
    // No policy selects the controller: everyone is allowed.
    assert_eq!(
        text_cell(
            &table,
            "other/stranger",
            "ingress-nginx/ingress-nginx-controller:http/TCP"
        ),
        "allowed"
    );
    // One row per workload; every pod here is its own workload.
    assert_eq!(table.lines().count(), 1 + 11, "{table}");
}

#[test]
fn json_cells_carry_outcome_and_backend_counts() {
    let text = matrix(
        "json",
        WEB_FROM_CLIENT_80,
        &["--by", "service", "--port", "http", "--output", "json"],
    );
    let matrix: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = matrix.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["workloads", "service_ports", "cells"]);
    assert_eq!(matrix["workloads"].as_array().unwrap().len(), 11);
    assert_eq!(matrix["service_ports"].as_array().unwrap().len(), 4);
    assert_eq!(matrix["cells"].as_array().unwrap().len(), 11 * 4);

    let client = json_cell(&matrix, "shop/client", "shop/web", "http");
    let keys: Vec<&String> = client.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "from",
            "service",
            "port",
            "port_name",
            "protocol",
            "outcome",
            "allowed_backends",
            "backends",
            "external_name",
            "pods",
            "targets"
        ]
    );
    assert_eq!(client["port"], 80);
    assert_eq!(client["protocol"], "TCP");
    assert_eq!(client["outcome"], "intermittent");
    assert_eq!(client["allowed_backends"], 1);
    assert_eq!(client["backends"], 2);
    assert_eq!(client["pods"], serde_json::json!({"intermittent": 1}));
    assert_eq!(
        client["targets"],
        serde_json::json!([
            {"pod": "shop/web-1", "address": null, "port": 80, "allowed": true},
            {"pod": "shop/web-2", "address": null, "port": 8080, "allowed": false},
        ])
    );

    let stranger = json_cell(&matrix, "other/stranger", "shop/web", "http");
    assert_eq!(stranger["outcome"], "denied");
    assert_eq!(stranger["allowed_backends"], 0);
    assert_eq!(stranger["backends"], 2);

    let headless = json_cell(&matrix, "shop/client", "shop/web-headless", "http");
    assert_eq!(headless["outcome"], "allowed");
    assert_eq!(headless["allowed_backends"], 3);
    assert_eq!(headless["backends"], 3);
}

#[test]
fn csv_has_one_line_per_workload_and_service_port() {
    let csv = matrix(
        "csv",
        WEB_FROM_CLIENT_80,
        &["--by", "service", "--port", "http", "--output", "csv"],
    );
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("from,service,port,protocol,outcome,allowed_backends,backends")
    );
    assert_eq!(lines.count(), 11 * 4);
    assert!(
        csv.contains("\nshop/client,shop/web,http,TCP,intermittent,1,2\n"),
        "{csv}"
    );
    assert!(
        csv.contains("\nother/stranger,shop/web,http,TCP,denied,0,2\n"),
        "{csv}"
    );
}

#[test]
fn every_service_port_without_port_and_external_name_is_unknown() {
    let text = matrix(
        "all",
        WEB_FROM_CLIENT_80,
        &["--by", "service", "--output", "json"],
    );
    let matrix: Value = serde_json::from_str(&text).unwrap();
    let columns: Vec<String> = matrix["service_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}/{}",
                c["service"].as_str().unwrap(),
                c["port"],
                c["protocol"].as_str().unwrap_or("-")
            )
        })
        .collect();
    // Every port of every Service, by Service; the ExternalName Service
    // lists none and still gets a column.
    assert_eq!(
        columns,
        [
            "db/cloud-db:null/-",
            "db/external-db:80/TCP",
            "ingress-nginx/ingress-nginx-controller:80/TCP",
            "kube-system/kube-dns:53/UDP",
            "kube-system/kube-dns:53/TCP",
            "shop/api:80/TCP",
            "shop/api-local:80/TCP",
            "shop/web:80/TCP",
            "shop/web-headless:80/TCP",
            "shop/web-lb:80/TCP",
        ]
    );
    let cloud = matrix["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["from"] == "shop/client" && c["service"] == "db/cloud-db")
        .unwrap();
    assert_eq!(cloud["outcome"], "external-name");
    assert_eq!(cloud["external_name"], "db.example.com");
    assert_eq!(cloud["backends"], 0);
    // db/external-db: its EndpointSlice's pod pg-1 and the outside host
    // 192.0.2.50, both on 80; nothing isolates the client's egress or pg-1.
    let external = matrix["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["from"] == "shop/client" && c["service"] == "db/external-db")
        .unwrap();
    assert_eq!(external["outcome"], "allowed");
    assert_eq!(
        external["targets"],
        serde_json::json!([
            {"pod": "db/pg-1", "address": null, "port": 80, "allowed": true},
            {"pod": null, "address": "192.0.2.50", "port": 80, "allowed": true},
        ])
    );

    let table = self::matrix("all-text", WEB_FROM_CLIENT_80, &["--by", "service"]);
    assert_eq!(
        text_cell(&table, "shop/client", "db/cloud-db"),
        "unknown",
        "{table}"
    );

    // --port 53 names both kube-dns ports; --protocol picks one.
    let table = self::matrix(
        "dns",
        "",
        &["--by", "service", "--port", "53", "--protocol", "UDP"],
    );
    assert_eq!(
        table.lines().next().unwrap(),
        "workload                    kube-system/kube-dns:dns/UDP"
    );
}

#[test]
fn pods_of_one_workload_that_disagree_make_a_partial_cell() {
    let text = matrix(
        "partial",
        FRONT_SPLIT,
        &["--by", "service", "--port", "http", "--output", "json"],
    );
    let matrix: Value = serde_json::from_str(&text).unwrap();
    // front-5f6d-a (role: ok) reaches every headless backend on 80,
    // front-5f6d-b none: one row for the workload, partial.
    let headless = json_cell(&matrix, "shop/front", "shop/web-headless", "http");
    assert_eq!(headless["outcome"], "partial");
    assert_eq!(
        headless["pods"],
        serde_json::json!({"allowed": 1, "denied": 1})
    );
    // No backend admits both pods.
    assert_eq!(headless["allowed_backends"], 0);
    assert_eq!(headless["backends"], 3);
    // shop/web: front-5f6d-a gets web-1 (80) and not web-2 (8080).
    let web = json_cell(&matrix, "shop/front", "shop/web", "http");
    assert_eq!(web["outcome"], "partial");
    assert_eq!(
        web["pods"],
        serde_json::json!({"intermittent": 1, "denied": 1})
    );

    let table = self::matrix(
        "partial-text",
        FRONT_SPLIT,
        &["--by", "service", "--port", "http"],
    );
    assert_eq!(
        text_cell(&table, "shop/front", "shop/web-headless:http/TCP"),
        "partial (1 allowed, 1 denied)"
    );
    assert_eq!(
        text_cell(&table, "shop/front", "shop/web:http/TCP"),
        "partial (1 intermittent, 1 denied)"
    );
}

#[test]
fn dot_draws_services_with_dashed_edges_to_their_backends() {
    let dot = matrix("dot", WEB_FROM_CLIENT_80, &["--output", "dot"]);
    for line in [
        // One box per Service, in its namespace's cluster.
        "    \"svc:shop/web\" [label=\"svc shop/web\", shape=box, style=rounded];",
        "    \"svc:db/cloud-db\" [label=\"svc db/cloud-db (ExternalName db.example.com)\", shape=box, style=rounded];",
        // Each backend with its target port: the named port per pod.
        "  \"svc:shop/web\" -> \"shop/web-1\" [style=dashed, label=\"TCP 80\"];",
        "  \"svc:shop/web\" -> \"shop/web-2\" [style=dashed, label=\"TCP 8080\"];",
        "  \"svc:shop/web-headless\" -> \"shop/web-3\" [style=dashed, label=\"TCP 80\"];",
        "  \"svc:kube-system/kube-dns\" -> \"kube-system/coredns-1\" [style=dashed, label=\"TCP 53; UDP 53\"];",
        "  \"svc:shop/api\" -> \"shop/api-2\" [style=dashed, label=\"TCP 81\"];",
        // An EndpointSlice address outside the cluster gets a node.
        "  \"192.0.2.50\" [shape=ellipse];",
        "  \"svc:db/external-db\" -> \"192.0.2.50\" [style=dashed, label=\"TCP 80\"];",
        // The pod edges are still there: client to web pods on TCP 80.
        "  \"shop/client\" -> \"shop/web-1\" [label=\"TCP 80\"];",
    ] {
        assert!(dot.contains(&format!("{line}\n")), "missing {line}\n{dot}");
    }
    // web-3 is no backend of shop/web (no port named http).
    assert!(!dot.contains("\"svc:shop/web\" -> \"shop/web-3\""), "{dot}");
    // The stranger reaches no web pod.
    assert!(
        !dot.contains("\"other/stranger\" -> \"shop/web-1\""),
        "{dot}"
    );

    // The truth-table form draws the Services too.
    let dot = matrix(
        "dot-port",
        WEB_FROM_CLIENT_80,
        &["--port", "80", "--output", "dot"],
    );
    assert!(
        dot.contains("  \"shop/client\" -> \"shop/web-1\";\n"),
        "{dot}"
    );
    assert!(
        dot.contains("  \"svc:shop/web\" -> \"shop/web-2\" [style=dashed, label=\"TCP 8080\"];\n"),
        "{dot}"
    );
}

#[test]
fn unusable_combinations_are_usage_errors() {
    let path = policy_file("errors", WEB_FROM_CLIENT_80);
    let path = path.to_str().unwrap();
    let dot = netpol(&[
        "matrix", CLUSTER, path, "--by", "service", "--output", "dot",
    ]);
    assert_eq!(dot.status.code(), Some(2));
    assert!(stderr(&dot).contains("--by pod"), "{}", stderr(&dot));
    let nothing = netpol(&["matrix", CLUSTER, path, "--by", "service", "--port", "grpc"]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(
        stderr(&nothing).contains("no Service has a port"),
        "{}",
        stderr(&nothing)
    );
}
