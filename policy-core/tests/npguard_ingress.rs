//! The np-guard/netpol-analyzer Ingress and Route corpus as an external
//! oracle for `netpol exposure`'s Ingress entries.
//!
//! The corpus (input manifests and that analyser's expected connlists, data
//! only) is vendored in `testdata/npguard-ingress`; its README says what is
//! compared and how. In short:
//!
//! - every input directory is loaded file by file through [`Loader::load_str`],
//!   plus one extra document: np-guard's conventional controller, a
//!   placeholder pod `ingress-controller-ns/ingress-controller`. Our selector
//!   needs a label, so the placeholder carries one label of its own, and the
//!   controllers are found with that label in that namespace;
//! - [`exposure`] lists the Ingress entries; every target that at least one
//!   controller pod may reach is printed as np-guard prints it,
//!   `{ingress-controller} => ns/name[Kind] : TCP <ports>`, with the ports of
//!   one workload merged into one line;
//! - those lines are compared, as sets, with the `{ingress-controller} =>`
//!   lines of the expected connlist. Every difference must be listed in
//!   `testdata/npguard-ingress/differences.txt` (reasons in
//!   `DIFFERENCES.md`), and every listed difference must still occur.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use policy_core::exposure::{EntryKind, IngressControllers, exposure};

#[path = "support/npguard.rs"]
mod npguard;
use npguard::{manifest_files, read, render_connections, their_config, workload_name};
use policy_core::{Loaded, Loader, Model, PortQuery, PortSet, Protocol, QueryEndpoint, Severity};

// ---------------------------------------------------------------------------
// The corpus

/// The vendored corpus (`testdata/npguard-ingress`). Missing data is a
/// failure, never a silent skip.
fn corpus_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/npguard-ingress");
    assert!(
        root.join("tests").is_dir() && root.join("test_outputs").is_dir(),
        "the np-guard Ingress corpus is not at {} (expected `tests/` and `test_outputs/` there)",
        root.display()
    );
    root
}

/// The input directories under `tests/`, each compared with
/// `test_outputs/connlist/<dir>_connlist_output.txt`.
const DIRS: [&str; 4] = [
    "acs-security-demos",
    "demo_app_with_routes_and_ingress",
    "multiple_ingress_objects_with_different_ports",
    "one_ingress_multiple_services",
];

/// np-guard's placeholder for the ingress controller (its
/// `IngressPodNamespace` / `IngressPodName`, pkg/netpol/connlist/internal/
/// ingressanalyzer): a pod without labels in a namespace of its own. Ours
/// carries [`PLACEHOLDER_LABEL`], because a controller selector needs one;
/// no policy of the corpus selects pods by that key.
const PLACEHOLDER_NAMESPACE: &str = "ingress-controller-ns";
const PLACEHOLDER_LABEL: (&str, &str) = ("netpol.dev/placeholder", "ingress-controller");
const PLACEHOLDER: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: ingress-controller-ns
---
apiVersion: v1
kind: Pod
metadata:
  name: ingress-controller
  namespace: ingress-controller-ns
  labels:
    netpol.dev/placeholder: ingress-controller
spec:
  containers:
  - name: controller
    image: ingress-controller
";

/// The controller selector that finds the placeholder pod, and only it.
fn placeholder_controllers() -> IngressControllers {
    let labels = [PLACEHOLDER_LABEL]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    IngressControllers {
        selector: Some((Some(PLACEHOLDER_NAMESPACE.to_string()), labels)),
    }
}

/// Loads `tests/<dir>`, one `load_str` call per file, then the placeholder
/// controller. Sources are named by their path relative to the corpus root.
fn load_dir(root: &Path, dir: &str) -> Loaded {
    let base = root.join("tests").join(dir);
    assert!(base.is_dir(), "missing corpus directory {}", base.display());
    let mut loader = Loader::new();
    for path in manifest_files(&base) {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.strip_prefix(root).unwrap_or(&path);
        loader.load_str(&name.to_string_lossy(), &text);
    }
    loader.load_str("<np-guard ingress-controller placeholder>", PLACEHOLDER);
    loader.finish()
}

// ---------------------------------------------------------------------------
// Their output format (as in `npguard_corpus.rs`)

/// The pseudo-source of their Ingress and Route lines.
const CONTROLLER: &str = "{ingress-controller}";

/// Our Ingress lines: for every Ingress entry, each target that some
/// controller pod may reach, on the target's port (the backend's target
/// port, as np-guard prints it). Ports of one workload, from every route of
/// every Ingress, are merged into one line, as np-guard merges them.
fn our_ingress_lines(model: &Model) -> BTreeSet<String> {
    let mut per_workload: BTreeMap<String, PortSet> = BTreeMap::new();
    for entry in exposure(model, &placeholder_controllers()) {
        if entry.via != EntryKind::Ingress {
            continue;
        }
        for target in entry.targets {
            if target.via_controllers.is_empty() {
                continue;
            }
            per_workload
                .entry(workload_name(model, target.pod))
                .or_default()
                .insert(entry.protocol, target.port, target.port);
        }
    }
    per_workload
        .into_iter()
        .filter_map(|(workload, ports)| {
            render_connections(&ports).map(|conn| format!("{CONTROLLER} => {workload} : {conn}"))
        })
        .collect()
}

/// Their `{ingress-controller} =>` lines.
fn their_ingress_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| line.starts_with(&format!("{CONTROLLER} => ")))
        .inspect(|line| assert!(line.contains(" : "), "not a connlist line: {line:?}"))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// differences.txt

/// `(dir, sign, line)`: `-` for a line of theirs we do not produce, `+` for
/// a line of ours they do not have.
type Difference = (String, char, String);

/// The listed differences: one per line, `<dir> <+|-> <line>`; blank lines
/// and lines starting with `#` are ignored.
fn listed_differences() -> BTreeSet<Difference> {
    let path = corpus_root().join("differences.txt");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut listed = BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), number + 1);
        let (dir, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: expected `<dir> <+|-> <line>`", at()));
        assert!(DIRS.contains(&dir), "{}: unknown directory {dir:?}", at());
        let (sign, connection) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: expected `<dir> <+|-> <line>`", at()));
        let sign = match sign {
            "+" => '+',
            "-" => '-',
            _ => panic!("{}: the sign must be `+` or `-`, not {sign:?}", at()),
        };
        assert!(
            connection.starts_with(&format!("{CONTROLLER} => ")),
            "{}: not an ingress-controller line: {connection:?}",
            at()
        );
        assert!(
            listed.insert((dir.to_string(), sign, connection.to_string())),
            "{}: listed twice",
            at()
        );
    }
    listed
}

// ---------------------------------------------------------------------------
// Expected load errors

/// Loader errors expected on the corpus: `(dir, substring of our message,
/// how many, reason)`. Any other error fails the test, and so does an
/// expected error that is no longer reported. Listed in DIFFERENCES.md too.
const EXPECTED_LOAD_ERRORS: [(&str, &str, usize, &str); 2] = [
    (
        "multiple_ingress_objects_with_different_ports",
        "a Service with several ports must name each one",
        3,
        "Service ingressworld/ingress-world has three unnamed ports; the API server \
         requires a name on every port of a multi-port Service (docs/SEMANTICS.md §13, item 9). \
         The ports are still loaded, so the comparison is unaffected",
    ),
    (
        "one_ingress_multiple_services",
        "a Service with several ports must name each one",
        2,
        "Service ingressworld/ingress-world-svc1 has two unnamed ports; the API server \
         requires a name on every port of a multi-port Service (docs/SEMANTICS.md §13, item 9). \
         The ports are still loaded, so the comparison is unaffected",
    ),
];

/// Checks the errors of one directory against [`EXPECTED_LOAD_ERRORS`].
fn check_load_errors(dir: &str, loaded: &Loaded, failures: &mut String) {
    let expected: Vec<_> = EXPECTED_LOAD_ERRORS
        .iter()
        .filter(|(d, ..)| *d == dir)
        .collect();
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    for error in &errors {
        if !expected.iter().any(|(_, m, ..)| error.message.contains(m)) {
            let _ = writeln!(failures, "{dir}: unexpected load error: {error}");
        }
    }
    for (_, message, count, reason) in expected {
        let found = errors
            .iter()
            .filter(|e| e.message.contains(message))
            .count();
        if found != *count {
            let _ = writeln!(
                failures,
                "{dir}: expected {count} load errors {message:?}, found {found} ({reason})"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The tests

#[test]
fn ingress_connections_match_the_analyser_up_to_listed_differences() {
    let root = corpus_root();
    let listed = listed_differences();
    let mut found: BTreeSet<Difference> = BTreeSet::new();
    let mut failures = String::new();
    let mut summary = String::new();
    for dir in DIRS {
        let loaded = load_dir(&root, dir);
        check_load_errors(dir, &loaded, &mut failures);
        let model = Model::new(loaded.cluster, their_config());
        let ours = our_ingress_lines(&model);
        let theirs = their_ingress_lines(&read(
            &root,
            &format!("test_outputs/connlist/{dir}_connlist_output.txt"),
        ));
        let missing: Vec<&String> = theirs.difference(&ours).collect();
        let extra: Vec<&String> = ours.difference(&theirs).collect();
        let _ = writeln!(
            summary,
            "{:>3} lines theirs, {:>3} ours, {:>3} matching, {} missing, {} extra: {dir}",
            theirs.len(),
            ours.len(),
            theirs.intersection(&ours).count(),
            missing.len(),
            extra.len(),
        );
        found.extend(
            missing
                .into_iter()
                .map(|l| (dir.to_string(), '-', l.clone())),
        );
        found.extend(extra.into_iter().map(|l| (dir.to_string(), '+', l.clone())));
    }
    println!("{summary}");
    for (dir, sign, line) in found.difference(&listed) {
        let what = if *sign == '-' { "we lack" } else { "we add" };
        let _ = writeln!(
            failures,
            "{dir}: {what} (not in differences.txt): {sign} {line}"
        );
    }
    for (dir, sign, line) in listed.difference(&found) {
        let _ = writeln!(
            failures,
            "{dir}: listed in differences.txt but no longer a difference (stale): {sign} {line}"
        );
    }
    assert!(
        failures.is_empty(),
        "differences with the np-guard Ingress corpus:\n{failures}"
    );
}

/// The reason given for the Route differences: the loader reads no
/// OpenShift Route, it only counts them as skipped. And nothing else stands
/// in the way: the placeholder controller may reach each Route-only
/// backend on the port np-guard prints. Pinned here so that the reason in
/// DIFFERENCES.md stays true.
#[test]
fn route_differences_come_from_skipped_routes_only() {
    let root = corpus_root();
    // (dir, Route documents, Route-only backends with their target port)
    type Backends = &'static [(&'static str, u16)];
    let cases: [(&str, usize, Backends); 2] = [
        (
            "acs-security-demos",
            2,
            &[
                ("frontend/asset-cache[Deployment]", 8080),
                ("frontend/webapp[Deployment]", 8080),
            ],
        ),
        (
            "demo_app_with_routes_and_ingress",
            2,
            &[("routeworld/route-world[Deployment]", 8060)],
        ),
    ];
    for (dir, routes, backends) in cases {
        let loaded = load_dir(&root, dir);
        assert_eq!(
            loaded.skipped.get("Route (route.openshift.io/v1)"),
            Some(&routes),
            "{dir}: skipped kinds {:?}",
            loaded.skipped
        );
        let model = Model::new(loaded.cluster, their_config());
        let cluster = model.cluster();
        let controller = cluster
            .find_endpoint("ingress-controller-ns/ingress-controller[Pod]")
            .unwrap();
        for &(backend, port) in backends {
            let pod = cluster.find_endpoint(backend).unwrap();
            let verdict = model
                .query(
                    QueryEndpoint::Endpoint(controller),
                    QueryEndpoint::Endpoint(pod),
                    &PortQuery::Number(port),
                    Protocol::Tcp,
                )
                .unwrap();
            assert!(
                verdict.allowed(),
                "{dir}: the placeholder controller may not reach {backend} on TCP {port}"
            );
        }
    }
}

/// The placeholder is the one controller pod, and it is found.
#[test]
fn the_placeholder_is_the_only_controller() {
    let root = corpus_root();
    let loaded = load_dir(&root, "one_ingress_multiple_services");
    let model = Model::new(loaded.cluster, their_config());
    let controllers: BTreeSet<String> = exposure(&model, &placeholder_controllers())
        .into_iter()
        .filter(|entry| entry.via == EntryKind::Ingress)
        .flat_map(|entry| entry.targets)
        .flat_map(|target| target.via_controllers)
        .map(|pod| workload_name(&model, pod))
        .collect();
    assert_eq!(
        controllers,
        BTreeSet::from(["ingress-controller-ns/ingress-controller[Pod]".to_string()])
    );
}
