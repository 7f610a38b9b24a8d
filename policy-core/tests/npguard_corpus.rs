//! The np-guard/netpol-analyzer test corpus as an external oracle.
//!
//! The corpus (input manifests and that analyser's expected outputs, data
//! only) is vendored in `testdata/npguard/corpus`; `testdata/npguard/README.md`
//! says what is compared and which conventions are normalised. In short:
//!
//! - every input directory is loaded file by file through [`Loader::load_str`];
//! - the model is built with the two documented choices that analyser makes
//!   (ipBlocks never match pod IPs, hostNetwork pods are ordinary pods);
//! - our pod-to-pod connection sets are aggregated per workload and printed
//!   in their line format, then compared as sets of lines with their
//!   expected output, minus every line that involves an `[External]` peer;
//! - every remaining difference must be listed, with a reason, in
//!   `testdata/npguard/differences.yaml`. The test checks
//!   `theirs - missing + extra == ours` exactly, so an unexplained difference
//!   and a stale entry both fail.
//!
//! Directories of expected errors (their group C) are checked for at least
//! one diagnostic about the expected problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use policy_core::cluster::EndpointKind;
use policy_core::{Diagnostic, Loaded, Loader, Model, PortSet, Protocol, Severity};
use serde::Deserialize;

#[path = "support/npguard.rs"]
mod npguard;
use npguard::{manifest_files, read, render_connections, their_config, workload_name};

// ---------------------------------------------------------------------------
// The corpus

/// The vendored corpus (`testdata/npguard/corpus`). Missing data is a
/// failure, never a silent skip.
fn corpus_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/npguard/corpus");
    assert!(
        root.join("tests").is_dir() && root.join("test_outputs").is_dir(),
        "the np-guard corpus is not at {} (expected `tests/` and `test_outputs/` there)",
        root.display()
    );
    root
}

/// The data files of the repository (`testdata/npguard`).
fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/npguard")
}

/// Loads `tests/<dir>` of the corpus, one `load_str` call per file. Sources
/// are named by their path relative to the corpus root.
fn load_dir(root: &Path, dir: &str) -> Loaded {
    let base = root.join("tests").join(dir);
    assert!(base.is_dir(), "missing corpus directory {}", base.display());
    let mut loader = Loader::new();
    for path in manifest_files(&base) {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.strip_prefix(root).unwrap_or(&path);
        loader.load_str(&name.to_string_lossy(), &text);
    }
    loader.finish()
}

// ---------------------------------------------------------------------------
// Their output format

/// Our allowed connections per ordered pair of workloads.
///
/// Aggregation rule: the set for workload pair (A, B) is the **union** over
/// every pod of A and every pod of B of what that pod pair may use, i.e.
/// "some replica of A can reach some replica of B on this port". Pods of one
/// owner normally share their labels and ports, and then union, intersection
/// and "any representative" agree. Pairs inside one workload (including a
/// pod and itself) are not reported, as in their output.
fn workload_connections(model: &Model) -> BTreeMap<(String, String), PortSet> {
    let endpoints = model.cluster().endpoints.len();
    let names: Vec<String> = (0..endpoints).map(|e| workload_name(model, e)).collect();
    let mut matrix = model.connection_matrix();
    let mut pairs: BTreeMap<(String, String), PortSet> = BTreeMap::new();
    for source in 0..endpoints {
        for destination in 0..endpoints {
            if names[source] == names[destination] {
                continue;
            }
            let ports = matrix.get(source, destination);
            pairs
                .entry((names[source].clone(), names[destination].clone()))
                .or_default()
                .union_with(&ports);
        }
    }
    pairs
}

/// Our pod-to-pod lines in their connlist format (pairs with no connection
/// are not printed).
fn our_connlist(model: &Model) -> BTreeSet<String> {
    workload_connections(model)
        .into_iter()
        .filter_map(|((source, destination), ports)| {
            render_connections(&ports).map(|conn| format!("{source} => {destination} : {conn}"))
        })
        .collect()
}

/// True for a line about an address range rather than two workloads.
fn involves_external(line: &str) -> bool {
    line.contains("[External]")
}

/// Their connlist lines, without the lines involving external addresses.
/// An exposure output is the connlist followed by `Exposure Analysis
/// Result:`; only the part before that marker is read.
fn their_connlist(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .take_while(|line| !line.starts_with("Exposure Analysis Result:"))
        .filter(|line| !line.is_empty() && !involves_external(line))
        .inspect(|line| {
            assert!(
                line.contains(" => ") && line.contains(" : "),
                "not a connlist line: {line:?}"
            )
        })
        .map(str::to_string)
        .collect()
}

/// Parses their `TCP:[1-79,81-65535], UDP, SCTP` notation (explain output):
/// a protocol without brackets means all of its ports.
fn parse_explain_ports(text: &str) -> PortSet {
    let mut ports = PortSet::empty();
    // Split at the commas between protocols, not those inside brackets.
    let mut depth = 0;
    let mut items = vec![String::new()];
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        items.last_mut().unwrap().push(c);
    }
    for item in items {
        let item = item.trim();
        let (protocol, ranges) = match item.split_once(":[") {
            Some((protocol, ranges)) => (protocol, Some(ranges.trim_end_matches(']'))),
            None => (item, None),
        };
        let protocol = Protocol::from_kubernetes(protocol)
            .unwrap_or_else(|| panic!("unknown protocol in {text:?}"));
        match ranges {
            None => ports.insert(protocol, 1, 65535),
            Some(ranges) => {
                for range in ranges.split(',') {
                    let (first, last) = range.split_once('-').unwrap_or((range, range));
                    let number = |n: &str| -> u16 {
                        n.trim()
                            .parse()
                            .unwrap_or_else(|_| panic!("bad port range in {text:?}"))
                    };
                    ports.insert(protocol, number(first), number(last));
                }
            }
        }
    }
    ports
}

/// Their explain output turned into connlist lines: the union of the
/// `Allowed ...` entries of each pair, plus the pairs listed under the
/// system-default "All Connections" heading.
fn their_explain_as_connlist(text: &str) -> BTreeSet<String> {
    let mut pairs: BTreeMap<(String, String), PortSet> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut all_connections_section = false;
    let split_pair = |pair: &str| -> (String, String) {
        let (source, destination) = pair
            .split_once(" => ")
            .unwrap_or_else(|| panic!("not a pair: {pair:?}"));
        (source.trim().to_string(), destination.trim().to_string())
    };
    for line in text.lines().map(|line| line.trim_end_matches('\r')) {
        if let Some(pair) = line
            .strip_prefix("Connections between ")
            .and_then(|rest| rest.strip_suffix(':'))
        {
            let pair = split_pair(pair);
            pairs.entry(pair.clone()).or_default();
            current = Some(pair);
        } else if line.starts_with("# ") {
            all_connections_section = line.starts_with("# All Connections");
            current = None;
        } else if let Some(allowed) = line.strip_prefix("\tAllowed ") {
            let (ports, _) = allowed
                .split_once(" due to")
                .unwrap_or_else(|| panic!("unexpected explain line {line:?}"));
            let pair = current.as_ref().expect("an Allowed line outside a pair");
            pairs
                .get_mut(pair)
                .unwrap()
                .union_with(&parse_explain_ports(ports));
        } else if all_connections_section && line.contains(" => ") {
            pairs.insert(split_pair(line), PortSet::all());
        }
    }
    pairs
        .into_iter()
        .filter_map(|((source, destination), ports)| {
            render_connections(&ports).map(|conn| format!("{source} => {destination} : {conn}"))
        })
        .filter(|line| !involves_external(line))
        .collect()
}

/// Our pod-level map (every ordered pair of Pod objects, self pairs
/// included) in the format of their in-directory `connections_map` files:
/// `src: ns/pod, dest: ns/pod, allowed conns: <conn>`, where `<conn>` is the
/// connection set (`No Connections` when empty) or, with `port`, whether
/// that port is allowed.
fn our_pod_map(model: &Model, port: Option<(Protocol, u16)>) -> BTreeSet<String> {
    let cluster = model.cluster();
    let pods: Vec<usize> = (0..cluster.endpoints.len())
        .filter(|&e| cluster.endpoints[e].kind == EndpointKind::Pod)
        .collect();
    let name = |e: usize| {
        let endpoint = &cluster.endpoints[e];
        format!("{}/{}", endpoint.namespace, endpoint.name)
    };
    let mut lines = BTreeSet::new();
    for &source in &pods {
        for &destination in &pods {
            let ports = model.connections(source, destination);
            let conn = match port {
                Some((protocol, number)) => ports.contains(protocol, number).to_string(),
                None => render_connections(&ports).unwrap_or_else(|| "No Connections".into()),
            };
            lines.insert(format!(
                "src: {}, dest: {}, allowed conns: {conn}",
                name(source),
                name(destination)
            ));
        }
    }
    lines
}

fn their_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// Our connectivity diff between two directories, in their diff format,
/// without lines involving external addresses. Only for directories with
/// the same workloads (no `workloads-diff-info`).
fn our_diff(before: &Model, after: &Model) -> BTreeSet<String> {
    let before = workload_connections(before);
    let after = workload_connections(after);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the diff oracle is only used for directories with the same workloads"
    );
    let mut lines = BTreeSet::new();
    for ((source, destination), old) in &before {
        let new = &after[&(source.clone(), destination.clone())];
        let (old, new) = (render_connections(old), render_connections(new));
        let diff_type = match (&old, &new) {
            (old, new) if old == new => continue,
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let show = |conn: &Option<String>| conn.clone().unwrap_or_else(|| "No Connections".into());
        lines.insert(format!(
            "diff-type: {diff_type}, source: {source}, destination: {destination}, ref1: {}, ref2: {}",
            show(&old),
            show(&new)
        ));
    }
    lines
}

fn their_diff(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| line.starts_with("diff-type: ") && !involves_external(line))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// The cases

/// What a case is compared with.
enum Oracle {
    /// A connlist file (or an exposure output, whose first section is the
    /// connlist), relative to the corpus root.
    Connlist(&'static str),
    /// An explain output, relative to the corpus root.
    Explain(&'static str),
    /// An in-directory pod-level connections map: full connection sets, or
    /// a yes/no answer for one port.
    PodMap(&'static str, Option<(Protocol, u16)>),
    /// Their diff output between `base` (ref1) and this directory (ref2).
    Diff {
        base: &'static str,
        output: &'static str,
    },
}

struct Case {
    /// The key in differences.yaml: the directory, with a suffix when one
    /// directory has several oracles.
    id: &'static str,
    /// The input directory under `tests/`.
    dir: &'static str,
    oracle: Oracle,
}

const fn connlist(dir: &'static str, output: &'static str) -> Case {
    Case {
        id: dir,
        dir,
        oracle: Oracle::Connlist(output),
    }
}

macro_rules! connlist_cases {
    ($($dir:literal),* $(,)?) => {
        [$(connlist($dir, concat!("test_outputs/connlist/", $dir, "_connlist_output.txt"))),*]
    };
}

macro_rules! exposure_cases {
    ($($dir:literal),* $(,)?) => {
        [$(connlist($dir, concat!("test_outputs/connlist/", $dir, "_exposure_output.txt"))),*]
    };
}

macro_rules! derived_cases {
    ($($dir:literal),* $(,)?) => {
        [$(connlist($dir, concat!("derived/", $dir, "_connlist_output.txt"))),*]
    };
}

/// Group A: directories with the analyser's own connlist output.
const GROUP_A_CONNLIST: [Case; 33] = connlist_cases![
    "netpol-analysis-example-minimal",
    "onlineboutique",
    "onlineboutique_workloads",
    "online_boutique_workloads_no_ns",
    "new_online_boutique",
    "new_online_boutique_synthesis",
    "ipblockstest",
    "ipblockstest_2",
    "ipblockstest_3",
    "ipblockstest_4",
    "test_with_named_ports",
    "test_with_named_ports_changed_netpol",
    "test_with_named_ports_changed_netpol_2",
    "netpol_named_port_test",
    "netpol_named_port_test_2",
    "with_end_port_example",
    "with_end_port_example_new",
    "minikube_resources",
    "core_pods_without_host_ip",
    "minimal_test_in_ns",
    "multiple_topology_resources_1",
    "multiple_topology_resources_2",
    "multiple_topology_resources_3",
    "multiple_topology_resources_4",
    "semanticDiff-same-topologies-old1",
    "semanticDiff-same-topologies-old2",
    "semanticDiff-same-topologies-new1",
    "semanticDiff-same-topologies-new2",
    "semanticDiff-orig-topologies-policy-a",
    "semanticDiff-different-topologies-policy-a-with-ipblock",
    "semanticDiff-different-topologies-policy-b-with-ipblock",
    "example_pods_w_same_owner_and_labels_gap_with_good_match_expression",
    "example_pods_w_same_owner_and_labels_gap_with_policy_selector_not_in_gap",
];

/// Group A: directories whose connlist was derived (corpus `derived/`).
const GROUP_A_DERIVED: [Case; 4] = derived_cases![
    "netpol-diff-example-minimal",
    "onlineboutique_workloads_changed_netpols",
    "test_with_named_ports_changed_netpol_3",
    "acs-security-demos-no-routes",
];

/// Group A: directories compared with another kind of output.
const GROUP_A_OTHER: [Case; 5] = [
    connlist(
        "exposure_test_pod_exposed_only_to_representative_peers",
        "test_outputs/connlist/exposure_test_pod_exposed_only_to_representative_peers_connlist_output.txt",
    ),
    Case {
        id: "onlineboutique/connections_map",
        dir: "onlineboutique",
        oracle: Oracle::PodMap("tests/onlineboutique/connections_map_output.txt", None),
    },
    Case {
        id: "onlineboutique_with_replicas/connections_map",
        dir: "onlineboutique_with_replicas",
        oracle: Oracle::PodMap(
            "tests/onlineboutique_with_replicas/connections_map_with_replicas_output.txt",
            Some((Protocol::Tcp, 80)),
        ),
    },
    Case {
        id: "vm_example/explain",
        dir: "vm_example",
        oracle: Oracle::Explain("test_outputs/connlist/vm_example_explain_output.txt"),
    },
    Case {
        id: "deny_all_to_from_a_deployment_changed_netpol/diff",
        dir: "deny_all_to_from_a_deployment_changed_netpol",
        oracle: Oracle::Diff {
            base: "deny_all_to_from_a_deployment",
            output: "test_outputs/diff/diff_between_deny_all_to_from_a_deployment_changed_netpol_and_deny_all_to_from_a_deployment.txt",
        },
    },
];

/// Group B: the connlist is the first section of the exposure output.
const GROUP_B: [Case; 10] = exposure_cases![
    "exposure_test_with_match_expression_in_op_with_matching_pod",
    "exposure_test_with_match_expression_not_in_op_with_matching_pods",
    "exposure_test_with_match_expression_exists_op_with_matching_pods",
    "exposure_test_with_match_expression_does_not_exist_op_with_matching_pods",
    "exposure_test_rule_with_multiple_match_expressions_with_matching_pod",
    "exposure_test_with_different_rules_6_with_matching_pods",
    "exposure_test_egress_with_named_port_with_matching_pod",
    "exposure_test_to_namespace_except_specific_pod",
    "exposure_test_conn_to_all_pods_in_an_existing_ns_with_ns_selector_only",
    "exposure_allow_egress_deny_ingress_test",
];

fn all_cases() -> impl Iterator<Item = &'static Case> {
    GROUP_A_CONNLIST
        .iter()
        .chain(&GROUP_A_DERIVED)
        .chain(&GROUP_A_OTHER)
        .chain(&GROUP_B)
}

// ---------------------------------------------------------------------------
// differences.yaml

/// One documented difference: lines of theirs we do not produce (`missing`)
/// and lines we produce that they do not (`extra`), for one case.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Difference {
    case: String,
    reason: String,
    #[serde(default)]
    missing: Vec<String>,
    #[serde(default)]
    extra: Vec<String>,
}

/// Loader errors we expect on a directory of group A or B, because the
/// input is invalid for the API server (the analyser is more lenient).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    case: String,
    reason: String,
    /// A substring of the message.
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DifferencesFile {
    differences: Vec<Difference>,
    #[serde(default)]
    load_errors: Vec<ExpectedError>,
}

fn differences() -> DifferencesFile {
    let path = testdata_dir().join("differences.yaml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: DifferencesFile =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ids: BTreeSet<&str> = all_cases().map(|case| case.id).collect();
    for id in file
        .differences
        .iter()
        .map(|d| &d.case)
        .chain(file.load_errors.iter().map(|e| &e.case))
    {
        assert!(
            ids.contains(id.as_str()),
            "differences.yaml: unknown case {id:?}"
        );
    }
    for entry in &file.differences {
        assert!(
            !entry.reason.trim().is_empty(),
            "{}: empty reason",
            entry.case
        );
        assert!(
            !entry.missing.is_empty() || !entry.extra.is_empty(),
            "{}: an entry without lines",
            entry.case
        );
    }
    file
}

// ---------------------------------------------------------------------------
// Groups A and B

/// What one case produced: our lines and theirs.
struct Outcome {
    ours: BTreeSet<String>,
    theirs: BTreeSet<String>,
    errors: Vec<Diagnostic>,
}

fn run_case(root: &Path, case: &Case) -> Outcome {
    let loaded = load_dir(root, case.dir);
    let errors: Vec<Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    let model = Model::new(loaded.cluster, their_config());
    let (ours, theirs) = match &case.oracle {
        Oracle::Connlist(output) => (our_connlist(&model), their_connlist(&read(root, output))),
        Oracle::Explain(output) => (
            our_connlist(&model),
            their_explain_as_connlist(&read(root, output)),
        ),
        Oracle::PodMap(output, port) => {
            (our_pod_map(&model, *port), their_lines(&read(root, output)))
        }
        Oracle::Diff { base, output } => {
            let before = Model::new(load_dir(root, base).cluster, their_config());
            (our_diff(&before, &model), their_diff(&read(root, output)))
        }
    };
    Outcome {
        ours,
        theirs,
        errors,
    }
}

#[test]
fn connections_match_the_analyser_up_to_documented_differences() {
    let root = corpus_root();
    let file = differences();
    let mut failures = String::new();
    let mut summary = String::new();
    for case in all_cases() {
        let outcome = run_case(&root, case);
        let entries: Vec<&Difference> = file
            .differences
            .iter()
            .filter(|d| d.case == case.id)
            .collect();
        let missing: BTreeSet<&String> = entries.iter().flat_map(|d| &d.missing).collect();
        let extra: BTreeSet<&String> = entries.iter().flat_map(|d| &d.extra).collect();
        let _ = writeln!(
            summary,
            "{:>6} lines theirs, {:>6} ours, {} missing, {} extra: {}",
            outcome.theirs.len(),
            outcome.ours.len(),
            missing.len(),
            extra.len(),
            case.id
        );

        // A listed line must be a real difference of the stated direction.
        for line in &missing {
            if !outcome.theirs.contains(*line) {
                let _ = writeln!(
                    failures,
                    "{}: listed as missing but not in their output: {line}",
                    case.id
                );
            }
        }
        for line in &extra {
            if outcome.theirs.contains(*line) {
                let _ = writeln!(
                    failures,
                    "{}: listed as extra but in their output: {line}",
                    case.id
                );
            }
        }
        // theirs - missing + extra == ours.
        let expected: BTreeSet<&String> = outcome
            .theirs
            .iter()
            .filter(|line| !missing.contains(line))
            .chain(extra.iter().copied())
            .collect();
        let ours: BTreeSet<&String> = outcome.ours.iter().collect();
        for line in expected.difference(&ours) {
            let listed = if extra.contains(line) {
                " (listed as extra: stale)"
            } else {
                ""
            };
            let _ = writeln!(failures, "{}: we lack{listed}: {line}", case.id);
        }
        for line in ours.difference(&expected) {
            let listed = if missing.contains(line) {
                " (listed as missing: stale)"
            } else {
                ""
            };
            let _ = writeln!(failures, "{}: we add{listed}: {line}", case.id);
        }

        // Loader errors: each must be expected, and each expectation must occur.
        let expected_errors: Vec<&ExpectedError> = file
            .load_errors
            .iter()
            .filter(|e| e.case == case.id)
            .collect();
        for error in &outcome.errors {
            if !expected_errors
                .iter()
                .any(|e| error.message.contains(&e.message))
            {
                let _ = writeln!(failures, "{}: unexpected load error: {error}", case.id);
            }
        }
        for expected in expected_errors {
            if !outcome
                .errors
                .iter()
                .any(|e| e.message.contains(&expected.message))
            {
                let _ = writeln!(
                    failures,
                    "{}: expected load error not reported (stale): {:?} ({})",
                    case.id, expected.message, expected.reason
                );
            }
        }
    }
    println!("{summary}");
    assert!(
        failures.is_empty(),
        "differences with the np-guard corpus:\n{failures}"
    );
}

// ---------------------------------------------------------------------------
// Group C

/// A directory the analyser rejects or warns about.
struct Rejected {
    dir: &'static str,
    /// The problem in the input.
    problem: &'static str,
    /// Lower-case fragments of our wording for that problem; at least one
    /// must appear in one of our diagnostics.
    fragments: &'static [&'static str],
}

const GROUP_C: [Rejected; 11] = [
    Rejected {
        dir: "bad_netpols/subdir1",
        problem: "ipBlock cidr `A`",
        fragments: &["not a valid cidr"],
    },
    Rejected {
        dir: "bad_netpols/subdir2",
        problem: "label key `app@b` in a podSelector",
        fragments: &["label key"],
    },
    Rejected {
        dir: "bad_netpols/subdir3",
        problem: "ipBlock and a selector in one peer",
        fragments: &["both ipblock and another peer"],
    },
    Rejected {
        dir: "bad_netpols/subdir4",
        problem: "an empty peer, `from: [{}]`",
        fragments: &["must specify a peer"],
    },
    Rejected {
        dir: "bad_netpols/subdir5",
        problem: "ingress named port `abc` that no selected pod defines \
                  (valid for the API server; matches nothing)",
        fragments: &["abc"],
    },
    Rejected {
        dir: "bad_netpols/subdir6",
        problem: "egress named port `abc` toward an ipBlock only \
                  (valid for the API server; matches nothing, docs/SEMANTICS.md §9)",
        fragments: &["abc"],
    },
    Rejected {
        dir: "bad_netpols/subdir7",
        problem: "invalid label value in a selector",
        fragments: &["label value"],
    },
    Rejected {
        dir: "np_bad_path_test_1",
        problem: "two NetworkPolicies with one namespace and name",
        fragments: &["duplicate networkpolicy"],
    },
    Rejected {
        dir: "np_bad_path_test_2",
        problem: "endPort with a named port",
        fragments: &["endport", "non-numeric"],
    },
    Rejected {
        dir: "np_test_with_empty_port_range",
        problem: "`port: 10, endPort: 1`",
        fragments: &["must be greater than or equal to port"],
    },
    Rejected {
        dir: "bad_path_namespace_with_same_name",
        problem: "two Namespaces with one name",
        fragments: &["duplicate namespace"],
    },
];

#[test]
fn rejected_inputs_produce_a_related_diagnostic() {
    let root = corpus_root();
    let mut failures = String::new();
    for case in &GROUP_C {
        // Neither loading nor building the model may panic.
        let loaded = load_dir(&root, case.dir);
        print_diagnostics(case.dir, &loaded);
        let mut diagnostics = loaded.diagnostics.clone();
        // Some problems (a named port no destination defines) need the model to see.
        diagnostics.extend(Model::new(loaded.cluster.clone(), their_config()).diagnostics());
        let related = diagnostics.iter().any(|d| {
            let text = d.to_string().to_lowercase();
            case.fragments
                .iter()
                .any(|fragment| text.contains(fragment))
        });
        if !related {
            let _ = writeln!(
                failures,
                "{} ({}): no diagnostic mentions any of {:?}",
                case.dir, case.problem, case.fragments
            );
        }
        let _ = Model::new(loaded.cluster, their_config());
    }
    assert!(failures.is_empty(), "{failures}");
}

/// `example_pods_w_same_owner_and_labels_gap_with_bad_match_expression` is
/// an error for the analyser only because it keeps one representative pod
/// per owner, and a selector here tells two pods of one owner apart. We
/// model every pod, so that is not a problem for us; what we do report is
/// that the policy's name is not a DNS subdomain (the API server rejects it).
#[test]
fn pods_of_one_owner_with_different_labels_are_not_an_error_for_us() {
    let root = corpus_root();
    let dir = "example_pods_w_same_owner_and_labels_gap_with_bad_match_expression";
    let loaded = load_dir(&root, dir);
    print_diagnostics(dir, &loaded);
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("not a valid RFC 1123 subdomain")),
        "{dir}: the invalid policy name is not reported"
    );
    let _ = Model::new(loaded.cluster, their_config());
}

fn print_diagnostics(dir: &str, loaded: &Loaded) {
    println!("== {dir}");
    for diagnostic in &loaded.diagnostics {
        println!("   {diagnostic}");
    }
}

/// `no_netpols_dir` has no policy at all: everything is allowed. (The
/// analyser warns that no policy was found; we report nothing.)
#[test]
fn a_directory_without_policies_allows_everything() {
    let root = corpus_root();
    let loaded = load_dir(&root, "no_netpols_dir");
    print_diagnostics("no_netpols_dir", &loaded);
    assert!(!loaded.has_errors());
    assert!(loaded.cluster.policies.is_empty());
    let model = Model::new(loaded.cluster, their_config());
    let endpoints = model.cluster().endpoints.len();
    assert!(endpoints > 0, "no_netpols_dir: no pods loaded");
    for source in 0..endpoints {
        for destination in 0..endpoints {
            assert!(model.connections(source, destination).is_all());
        }
    }
}
