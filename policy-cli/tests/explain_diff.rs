//! `netpol explain` and `netpol diff`: what reviewers read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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

#[test]
fn explain_describes_every_policy_in_english() {
    let output = netpol(&["explain", "examples/demo"]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn explain_a_pod_says_what_it_may_receive_and_send() {
    let output = netpol(&[
        "explain",
        "examples/demo",
        "--pod",
        "payments/checkout",
        "--pod",
        "kube-system/coredns",
    ]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn explain_rejects_unknown_names() {
    assert_eq!(
        netpol(&["explain", "examples/demo", "--policy", "shop/nope"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        netpol(&["explain", "examples/demo", "--pod", "shop/nope"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn diff_reports_added_and_removed_connections_grouped_by_workload() {
    let output = netpol(&["diff", "testdata/diff/old", "testdata/diff/new"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "without --exit-code a change is not a failure"
    );
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn diff_markdown_suits_a_pull_request_comment() {
    let output = netpol(&[
        "diff",
        "testdata/diff/old",
        "testdata/diff/new",
        "--output",
        "markdown",
    ]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn diff_json_lists_groups_with_their_pairs() {
    let output = netpol(&[
        "diff",
        "testdata/diff/old",
        "testdata/diff/new",
        "--output",
        "json",
    ]);
    let changes: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(changes["changed"], Value::Bool(true));
    assert_eq!(changes["appeared"], serde_json::json!(["shop/cache"]));
    let removed = changes["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["from"], "shop/web");
    assert_eq!(removed[0]["to"], "shop/db");
    assert_eq!(removed[0]["ports"], "TCP 9187");
    assert_eq!(removed[0]["pairs"].as_array().unwrap().len(), 2);
    let added: Vec<&str> = changes["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["to"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["203.0.113.0/24", "shop/db"]);
}

#[test]
fn exit_code_is_1_on_a_change_and_0_on_a_semantic_no_op() {
    let changed = netpol(&[
        "diff",
        "testdata/diff/old",
        "testdata/diff/new",
        "--exit-code",
    ]);
    assert_eq!(changed.status.code(), Some(1));
    // Reordered, renamed, reformatted (flow style, JSON, a List, matchExpressions for matchLabels).
    let same = netpol(&[
        "diff",
        "testdata/diff/old",
        "testdata/diff/reordered",
        "--exit-code",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    assert_eq!(
        stdout(&same),
        "No change: both sides allow exactly the same connections.\n"
    );
}

#[test]
fn diff_reads_one_side_from_standard_input() {
    let mut text = String::new();
    for file in [
        "testdata/diff/old/cluster.yaml",
        "testdata/diff/old/policies.yaml",
    ] {
        text.push_str(&std::fs::read_to_string(repo().join(file)).unwrap());
        text.push_str("\n---\n");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(["diff", "-", "testdata/diff/reordered", "--exit-code"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(netpol(&["diff", "-", "-"]).status.code(), Some(2));
}

/// The lines of `text` from the line equal to `start` (trimmed) up to the
/// next line that is not indented deeper than it.
fn section(text: &str, start: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != start);
    let Some(first) = lines.next() else {
        panic!("no line {start:?} in:\n{text}");
    };
    let indent = first.len() - first.trim_start().len();
    lines
        .take_while(|l| l.len() - l.trim_start().len() > indent)
        .map(|l| l.trim().to_string())
        .collect()
}

/// The paragraph of `explain --pod` about one pod.
fn pod_paragraph<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(title)
        .unwrap_or_else(|| panic!("no {title:?} in:\n{text}"));
    let rest = &text[start..];
    &rest[..rest.find("\n\n").map_or(rest.len(), |end| end + 1)]
}

// Expected by hand from testdata/services/cluster.yaml (no NetworkPolicy
// there: every pod admits everything) and docs/SEMANTICS.md §17.
#[test]
fn explain_a_pod_names_the_services_and_entry_points_that_lead_to_it() {
    let output = netpol(&[
        "explain",
        "testdata/services/cluster.yaml",
        "--pod",
        "shop/web-2",
        "--pod",
        "shop/web-3",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let web_2 = pod_paragraph(&text, "Pod shop/web-2:");
    // §17.2: the named targetPort http is 8080 on web-2; the headless
    // Service ignores targetPort, so clients use the Service port 80.
    assert_eq!(
        section(web_2, "Services that lead to it:"),
        [
            "service shop/web port http (TCP 80) -> target port 8080",
            "service shop/web-headless port http (TCP 80) -> port 80 (headless: clients connect to the pod on the Service port)",
            "service shop/web-lb port http (TCP 80) -> target port 8080",
        ]
    );
    // §17.8: shop/web-lb (LoadBalancer, so node ports too) opens 30083 on
    // both nodes' InternalIPs. §17.4, externalTrafficPolicy Cluster under
    // --profile netpol: web-2 runs on node-2, so through node-1 it sees
    // node-1's address 192.168.77.1, which it admits: every IPv4 client
    // gets through, hidden, and no IPv6 client (node-1 has no IPv6
    // address); through node-2 it sees the client itself. The load
    // balancer takes the union over the receiving nodes, narrowed by
    // loadBalancerSourceRanges. §17.5: the Ingress reaches web-2 through
    // controller-1 (IngressClass nginx, ingress-nginx's labels), which its
    // own NodePort Service (Local, on node-1) opens to every address.
    assert_eq!(
        section(web_2, "Entry points from outside that lead to it:"),
        [
            "NodePort 192.168.77.1 (node node-1) TCP 30083 (service shop/web-lb) -> port 8080: from 0.0.0.0/0 [client hidden: the pod may see a node's address]",
            "note: loadBalancerSourceRanges restrict only the load balancer's address, not the node port",
            "NodePort 192.168.77.2 (node node-2) TCP 30083 (service shop/web-lb) -> port 8080: from 0.0.0.0/0, ::/0",
            "note: loadBalancerSourceRanges restrict only the load balancer's address, not the node port",
            "LoadBalancer 198.51.100.1 TCP 80 (service shop/web-lb) -> port 8080: from 203.0.113.0/28 [client hidden: the pod may see a node's address]",
            "Ingress shop/shop shop.example.com/ (service shop/web port 80) -> port 8080: from 0.0.0.0/0, ::/0 through ingress-nginx/controller-1 [client hidden: the pod sees the ingress controller]",
        ]
    );
    // §17.2: web-3 has no port named http, so it is no backend of the
    // named port of shop/web and shop/web-lb, but the headless Service
    // still lists it; nothing from outside leads to it.
    let web_3 = pod_paragraph(&text, "Pod shop/web-3:");
    assert_eq!(
        section(web_3, "Services that lead to it:"),
        [
            "service shop/web: not a backend of port http (TCP 80): no container port named http",
            "service shop/web-headless port http (TCP 80) -> port 80 (headless: clients connect to the pod on the Service port)",
            "service shop/web-lb: not a backend of port http (TCP 80): no container port named http",
        ]
    );
    assert!(
        web_3.contains("\n  No entry point from outside leads to it.\n"),
        "{web_3}"
    );
}

// testdata/diff/exposure: one node, every pod on it, so under --profile
// netpol a node-port backend sees the client (docs/SEMANTICS.md §17.4).
// NEW adds web-internal (shop/web admits only pods of shop: no outside
// address), makes shop/api a NodePort Service, and widens shop/admin's
// ipBlocks from 203.0.113.0/24 to that and 198.51.100.0/24.
#[test]
fn diff_reports_newly_and_no_longer_exposed_entry_points() {
    let output = netpol(&[
        "diff",
        "testdata/diff/exposure/old",
        "testdata/diff/exposure/new",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert_eq!(
        section(&text, "Newly exposed entry points (1):"),
        [
            "+ NodePort 192.168.0.1 (node node-1) TCP 30090 (service shop/api) -> shop/api port 9000: from 0.0.0.0/0, ::/0"
        ]
    );
    // Both pods of the Deployment are one line: keyed by workload.
    assert_eq!(
        section(&text, "No longer exposed entry points (1):"),
        [
            "- NodePort 192.168.0.1 (node node-1) TCP 30080 (service shop/web) -> shop/web port 8080: was from 0.0.0.0/0, ::/0"
        ]
    );
    assert_eq!(
        section(&text, "Entry points whose outside sources changed (1):"),
        [
            "~ NodePort 192.168.0.1 (node node-1) TCP 30070 (service shop/admin) -> shop/admin port 7000: widened: gained 198.51.100.0/24; now from 198.51.100.0/24, 203.0.113.0/24"
        ]
    );

    let json = netpol(&[
        "diff",
        "testdata/diff/exposure/old",
        "testdata/diff/exposure/new",
        "--output",
        "json",
    ]);
    let changes: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let exposure: Vec<Value> = changes["exposure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            serde_json::json!([
                c["change"],
                c["via"],
                c["address"],
                c["entry_port"],
                c["service"],
                c["workload"],
                c["port"],
                c["sources_before"],
                c["sources_after"],
                c["client_hidden"],
            ])
        })
        .collect();
    let everything = serde_json::json!(["0.0.0.0/0", "::/0"]);
    assert_eq!(
        exposure,
        [
            serde_json::json!([
                "widened",
                "NodePort",
                "192.168.0.1",
                30070,
                "shop/admin",
                "shop/admin",
                7000,
                ["203.0.113.0/24"],
                ["198.51.100.0/24", "203.0.113.0/24"],
                false
            ]),
            serde_json::json!([
                "no-longer-exposed",
                "NodePort",
                "192.168.0.1",
                30080,
                "shop/web",
                "shop/web",
                8080,
                everything,
                [],
                false
            ]),
            serde_json::json!([
                "newly-exposed",
                "NodePort",
                "192.168.0.1",
                30090,
                "shop/api",
                "shop/api",
                9000,
                [],
                everything,
                false
            ]),
        ]
    );

    let markdown = stdout(&netpol(&[
        "diff",
        "testdata/diff/exposure/old",
        "testdata/diff/exposure/new",
        "--output",
        "markdown",
    ]));
    assert!(
        markdown.contains("**Entry points from outside: 1 newly exposed, 1 no longer exposed**, 1 with other sources."),
        "{markdown}"
    );
    assert!(
        markdown.contains("| NodePort 192.168.0.1 (node node-1) TCP 30090 (service shop/api) -> shop/api port 9000 | newly exposed | nobody | 0.0.0.0/0, ::/0 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| NodePort 192.168.0.1 (node node-1) TCP 30080 (service shop/web) -> shop/web port 8080 | no longer exposed | 0.0.0.0/0, ::/0 | nobody |"),
        "{markdown}"
    );
}

#[test]
fn an_exposure_change_alone_is_a_change() {
    // Only the Service type differs between the two sides: no connection
    // changes, but shop/api becomes reachable on a node port.
    let output = netpol(&[
        "diff",
        "testdata/diff/exposure/old/cluster.yaml",
        "testdata/diff/exposure/new/cluster.yaml",
        "--exit-code",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(
        stdout(&output),
        "Newly exposed entry points (1):\n  + NodePort 192.168.0.1 (node node-1) TCP 30090 (service shop/api) -> shop/api port 9000: from 0.0.0.0/0, ::/0\n"
    );
}

/// `diff` includes the admin tiers: an AdminNetworkPolicy that denies
/// web -> db removes every connection the NetworkPolicies allowed there.
#[test]
fn diff_includes_the_admin_tiers() {
    let dir = std::env::temp_dir().join(format!("netpol-diff-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["cluster.yaml", "policies.yaml"] {
        std::fs::copy(repo().join("testdata/diff/old").join(file), dir.join(file)).unwrap();
    }
    std::fs::write(
        dir.join("admin.yaml"),
        "apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: guard-db}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - {name: deny-web, action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]}
",
    )
    .unwrap();
    let output = netpol(&[
        "diff",
        "testdata/diff/old",
        dir.to_str().unwrap(),
        "--output",
        "json",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    let changes: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(changes["added"], serde_json::json!([]));
    let removed = changes["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{changes}");
    assert_eq!(removed[0]["from"], "shop/web");
    assert_eq!(removed[0]["to"], "shop/db");
    assert_eq!(removed[0]["ports"], "TCP 5432,9187");
}
