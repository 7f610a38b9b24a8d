//! Golden rulesets: the nft text of a few small clusters, pinned with insta.
//! (That the kernel enforces them is the kernel tests' job.)

use std::path::{Path, PathBuf};

use policy_core::config::{AddressFamily, HostNetworkMode, SelfTraffic};
use policy_core::{Config, Loader, Model};
use policy_nft::{CompileError, Compiler};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The conformance cluster with the policies of one conformance case.
fn conformance_case(case: &str) -> String {
    let mut text =
        std::fs::read_to_string(repo().join("testdata/conformance/cluster.yaml")).unwrap();
    let case_text =
        std::fs::read_to_string(repo().join(format!("testdata/conformance/cases/{case}.yaml")))
            .unwrap();
    let case: serde_json::Value = serde_saphyr::from_str(&case_text).unwrap();
    for policy in case["policies"].as_array().unwrap() {
        text.push_str(&format!("\n---\n{policy}\n"));
    }
    text
}

fn model(text: &str, config: Config) -> Model {
    let mut loader = Loader::new();
    loader.load_str("input.yaml", text);
    let loaded = loader.finish();
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    Model::new(loaded.cluster, config)
}

fn ruleset(text: &str, node: &str) -> String {
    let model = model(text, Config::default());
    let (ruleset, _) = Compiler::new(&model).unwrap().compile(node);
    policy_nft::text::render(&ruleset)
}

#[test]
fn dual_stack_node_with_named_ports_sctp_endport_and_ipblocks() {
    let text = std::fs::read_to_string(repo().join("testdata/nft/dual-stack.yaml")).unwrap();
    insta::assert_snapshot!(ruleset(&text, "node-1"));
}

#[test]
fn dual_stack_node_whose_pod_is_isolated_by_a_default_deny_only() {
    let text = std::fs::read_to_string(repo().join("testdata/nft/dual-stack.yaml")).unwrap();
    insta::assert_snapshot!(ruleset(&text, "node-2"));
}

#[test]
fn upstream_named_port_case() {
    insta::assert_snapshot!(ruleset(
        &conformance_case("017-ingress-one-named-port"),
        "node-1"
    ));
}

#[test]
fn upstream_cidr_except_case() {
    insta::assert_snapshot!(ruleset(
        &conformance_case("035-egress-cidr-except"),
        "node-1"
    ));
}

#[test]
fn a_cluster_without_policies_isolates_nothing() {
    let text = std::fs::read_to_string(repo().join("testdata/conformance/cluster.yaml")).unwrap();
    let model = model(&text, Config::default());
    let (ruleset, _) = Compiler::new(&model).unwrap().compile("node-1");
    assert!(ruleset.isolates_nothing());
    assert!(ruleset.sides.iter().all(|side| side.groups.len() == 1
        && side.peer_addresses.is_empty()
        && side.peer_ranges.is_empty()));
}

#[test]
fn choices_the_kernel_cannot_enforce_are_refused() {
    let text = conformance_case("001-default-deny-ingress");
    let pods = model(
        &text,
        Config {
            host_network: HostNetworkMode::Pod,
            ..Config::default()
        },
    );
    assert_eq!(
        Compiler::new(&pods).err(),
        Some(CompileError::HostNetworkAsPods)
    );
    let evaluate = model(
        &text,
        Config {
            self_traffic: SelfTraffic::Evaluate,
            ..Config::default()
        },
    );
    assert_eq!(
        Compiler::new(&evaluate).err(),
        Some(CompileError::SelfTrafficEvaluated)
    );
}

#[test]
fn json_declares_verdict_maps_raw_and_everything_else_typed() {
    let text = std::fs::read_to_string(repo().join("testdata/nft/dual-stack.yaml")).unwrap();
    let model = model(&text, Config::default());
    let (ruleset, _) = Compiler::new(&model).unwrap().compile("node-1");
    let document = policy_nft::json::render(&ruleset);
    let text: serde_json::Value =
        serde_json::from_str(&policy_nft::json::render_string(&ruleset)).unwrap();
    assert_eq!(text, document, "the text and value renderings differ");
    let commands = document["nftables"].as_array().unwrap();
    // Replace the table atomically: add, delete, add.
    assert!(commands[0]["add"]["table"].is_object());
    assert!(commands[1]["delete"]["table"].is_object());
    assert!(commands[2]["add"]["table"].is_object());
    let maps: Vec<&serde_json::Value> = commands
        .iter()
        .filter_map(|c| c["add"].get("map"))
        .collect();
    // Per direction and family, the peer maps: exact and ranges.
    assert_eq!(maps.len(), 8);
    assert!(maps.iter().all(|m| m["map"] == "verdict"));
    assert_eq!(
        maps.iter()
            .filter(|m| m["flags"] == serde_json::json!(["interval"]))
            .count(),
        4
    );
    // Chains come before the map elements that go to them.
    let first_element = commands
        .iter()
        .position(|c| c["add"].get("element").is_some())
        .unwrap();
    let last_chain = commands
        .iter()
        .rposition(|c| c["add"].get("chain").is_some())
        .unwrap();
    assert!(last_chain < first_element);
}

/// Each family's chains come from that family's exact model, so the ruleset
/// does not depend on the `--family` the caller's model was built with.
/// Here an IPv4 ipBlock matches a dual-stack pod: only its IPv4 address may
/// pass, in every case.
#[test]
fn the_ruleset_does_not_depend_on_the_models_family() {
    let text = "\
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.1}, {ip: \"fd00::1\"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: default, labels: {app: server}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIPs: [{ip: 10.0.0.2}, {ip: \"fd00::2\"}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-v4-block, namespace: default}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/24}}]
";
    let render = |family| {
        let model = model(
            text,
            Config {
                address_family: family,
                ..Config::default()
            },
        );
        let (ruleset, _) = Compiler::new(&model).unwrap().compile("node-1");
        policy_nft::text::render(&ruleset)
    };
    let any = render(AddressFamily::Any);
    assert!(
        any.contains("elements = { 10.0.0.0/24 : goto ingress_v4_g1 }"),
        "{any}"
    );
    assert!(
        !any.contains("fd00::1"),
        "the IPv4 block must not admit the IPv6 address: {any}"
    );
    assert_eq!(render(AddressFamily::Ipv4), any);
    assert_eq!(render(AddressFamily::Ipv6), any);
}
