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
