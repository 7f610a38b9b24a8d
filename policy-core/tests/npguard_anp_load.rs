//! Loads every directory of the vendored np-guard AdminNetworkPolicy
//! corpus (testdata/npguard-anp) and checks our diagnostics against what
//! that analyser expects. Where we deliberately differ, the difference is
//! listed in testdata/npguard-anp/README.md and asserted here.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use policy_core::{Diagnostic, DiagnosticKind, Loaded, Loader, Severity};

#[path = "support/npguard.rs"]
mod npguard;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/npguard-anp/tests")
}

/// Every manifest under `directory`, one `load_str` per file, in name order.
fn load_directory(directory: &Path) -> Loaded {
    let files = npguard::manifest_files(directory);
    let mut loader = Loader::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        loader.load_str(&file.display().to_string(), &text);
    }
    loader.finish()
}

/// Every input directory, each loaded once; a panic fails with its name.
fn load_all() -> Vec<(String, Loaded)> {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 69, "the vendored corpus has 69 directories");
    names
        .into_iter()
        .map(|name| {
            let directory = corpus().join(&name);
            let loaded = catch_unwind(AssertUnwindSafe(|| load_directory(&directory)))
                .unwrap_or_else(|_| panic!("loading {name} panicked"));
            (name, loaded)
        })
        .collect()
}

fn errors(loaded: &Loaded) -> Vec<&Diagnostic> {
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// The v1alpha1 schema requires `podSelector` in `pods` (NamespacedPod has
/// both selectors required); np-guard reads a missing one as `{}`.
fn is_missing_pod_selector(diagnostic: &Diagnostic) -> bool {
    diagnostic.field.to_string().ends_with(".pods.podSelector")
        && diagnostic.message.contains("`podSelector` is required")
}

/// Good-path inputs whose policies leave `podSelector` out of a `pods`
/// peer: the API server rejects them (README, difference 2).
const WITHOUT_POD_SELECTOR: &[&str] = &[
    "anp_demo",
    "anp_test_10",
    "anp_test_11",
    "anp_test_12",
    "anp_test_3_pass_traffic",
    "anp_test_8",
    "anp_test_9",
    "anp_test_combining_test_6_and_test_10",
    "anp_test_multiple_anps",
];

/// Does `diagnostic` say what np-guard's error constant says? The
/// meanings are those of the README's table.
fn means(expected: &str, diagnostic: &Diagnostic) -> bool {
    let field = diagnostic.field.to_string();
    let message = &diagnostic.message;
    match expected {
        "PriorityValueErr" => field == "spec.priority" && message.contains("priority"),
        "ANPsWithSameNameErr" => {
            diagnostic.kind == DiagnosticKind::Duplicate
                && message.contains("duplicate AdminNetworkPolicy")
        }
        "OneFieldSetSubjectErr" => field == "spec.subject" && message.contains("subject"),
        "ANPEgressRulePeersErr" => field.ends_with(".to") && message.contains("`to`"),
        "ANPIngressRulePeersErr" => field.ends_with(".from") && message.contains("`from`"),
        "OneFieldSetRulePeerErr" => message.contains("must be set in a peer"),
        "ANPPortsError" => message.contains("must be set in a port"),
        "UnknownRuleActionErr" => field.ends_with(".action") && message.contains("action"),
        "InvalidCIDRAddr" => field.contains(".networks[") && message.contains("not a valid CIDR"),
        "BANPAlreadyExists" => {
            diagnostic.kind == DiagnosticKind::Duplicate
                && message.contains("duplicate BaselineAdminNetworkPolicy default")
                && diagnostic
                    .help
                    .as_deref()
                    .is_some_and(|help| help.contains("at most one"))
        }
        "BANPNameAssertion" => {
            field == "metadata.name" && message.contains("must be named \"default\"")
        }
        other => panic!("no meaning for {other}"),
    }
}

/// The README's table (from np-guard's connlist_test.go), less
/// anp_bad_path_test_1, where we deliberately warn instead.
const EXPECTED_ERRORS: &[(&str, &str)] = &[
    ("anp_bad_path_test_2", "PriorityValueErr"),
    ("anp_bad_path_test_3", "ANPsWithSameNameErr"),
    ("anp_bad_path_test_4", "OneFieldSetSubjectErr"),
    ("anp_bad_path_test_5", "OneFieldSetSubjectErr"),
    ("anp_bad_path_test_6", "ANPEgressRulePeersErr"),
    ("anp_bad_path_test_7", "OneFieldSetRulePeerErr"),
    ("anp_bad_path_test_8", "ANPPortsError"),
    ("anp_bad_path_test_9", "UnknownRuleActionErr"),
    ("anp_bad_path_test_10", "ANPEgressRulePeersErr"),
    ("anp_bad_path_test_12", "UnknownRuleActionErr"),
    ("anp_bad_path_test_14", "ANPIngressRulePeersErr"),
    ("anp_bad_path_test_15", "ANPIngressRulePeersErr"),
    ("anp_bad_path_test_16", "OneFieldSetRulePeerErr"),
    ("anp_bad_path_test_17", "ANPPortsError"),
    ("anp_bad_path_test_18", "UnknownRuleActionErr"),
    ("anp_bad_path_test_19", "InvalidCIDRAddr"),
    ("anp_bad_path_test_20", "PriorityValueErr"),
    ("banp_bad_path_test_1", "BANPAlreadyExists"),
    ("banp_bad_path_test_2", "BANPNameAssertion"),
    ("banp_bad_path_test_3", "OneFieldSetSubjectErr"),
    ("banp_bad_path_test_4", "OneFieldSetSubjectErr"),
    ("banp_bad_path_test_5", "ANPEgressRulePeersErr"),
    ("banp_bad_path_test_6", "ANPEgressRulePeersErr"),
    ("banp_bad_path_test_7", "OneFieldSetRulePeerErr"),
    ("banp_bad_path_test_8", "UnknownRuleActionErr"),
    ("banp_bad_path_test_9", "ANPPortsError"),
    ("banp_bad_path_test_10", "ANPIngressRulePeersErr"),
    ("banp_bad_path_test_11", "ANPIngressRulePeersErr"),
    ("banp_bad_path_test_12", "OneFieldSetRulePeerErr"),
    ("banp_bad_path_test_13", "ANPPortsError"),
    ("banp_bad_path_test_14", "UnknownRuleActionErr"),
    ("banp_bad_path_test_15", "InvalidCIDRAddr"),
];

#[test]
fn good_path_directories_load_without_errors_but_the_documented_ones() {
    let mut good = 0;
    let mut rejected_by_the_api = BTreeSet::new();
    for (name, loaded) in load_all() {
        if name.contains("bad_path") {
            continue;
        }
        good += 1;
        let errors = errors(&loaded);
        if !errors.is_empty() {
            assert!(
                errors.iter().all(|d| is_missing_pod_selector(d)),
                "{name}: {errors:#?}"
            );
            rejected_by_the_api.insert(name.clone());
        }
        if WITHOUT_POD_SELECTOR.contains(&name.as_str()) {
            continue;
        }
        assert!(
            !loaded.cluster.admin_policies.is_empty(),
            "{name}: no admin policy loaded"
        );
        // The one note on which commands read these tiers, never more.
        let notes = loaded
            .diagnostics
            .iter()
            .filter(|d| d.kind == DiagnosticKind::Skipped)
            .count();
        assert_eq!(notes, 1, "{name}");
    }
    assert_eq!(good, 26, "one good-path directory per connlist output");
    assert_eq!(
        rejected_by_the_api,
        WITHOUT_POD_SELECTOR
            .iter()
            .map(|name| name.to_string())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn bad_path_directories_give_an_error_of_the_expected_meaning() {
    let loaded: Vec<(String, Loaded)> = load_all();
    let by_name = |name: &str| &loaded.iter().find(|(n, _)| n == name).unwrap().1;
    for (name, expected) in EXPECTED_ERRORS {
        let errors = errors(by_name(name));
        assert!(
            errors.iter().any(|d| means(expected, d)),
            "{name}: no error means {expected}: {errors:#?}"
        );
    }
    // Bad paths outside the table: NetworkPolicy and Namespace problems.
    let duplicate = |name: &str, what: &str| {
        errors(by_name(name))
            .iter()
            .any(|d| d.kind == DiagnosticKind::Duplicate && d.message.contains(what))
    };
    assert!(duplicate(
        "bad_path_namespace_with_same_name",
        "duplicate Namespace blue"
    ));
    assert!(duplicate(
        "np_bad_path_test_1",
        "duplicate NetworkPolicy default/backend-netpol"
    ));
    assert!(
        errors(by_name("np_bad_path_test_2"))
            .iter()
            .any(|d| d.field.to_string() == "spec.ingress[1].ports[0].endPort")
    );
    // Every bad path is covered by one of the checks above or below.
    let checked: BTreeSet<&str> = EXPECTED_ERRORS
        .iter()
        .map(|(name, _)| *name)
        .chain([
            "anp_bad_path_test_1",
            "bad_path_namespace_with_same_name",
            "np_bad_path_test_1",
            "np_bad_path_test_2",
        ])
        .collect();
    for (name, _) in &loaded {
        if name.contains("bad_path") && !name.starts_with("udn_") {
            assert!(checked.contains(name.as_str()), "{name} is not checked");
        }
    }
}

/// README, difference 1: equal priorities are allowed by the API, with an
/// undefined order where both policies match; we warn, np-guard rejects.
#[test]
fn equal_priorities_are_a_warning_not_an_error() {
    let loaded = load_directory(&corpus().join("anp_bad_path_test_1"));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.cluster.admin_policies.len(), 2);
    let warnings: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.kind == DiagnosticKind::Questionable)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].severity, Severity::Warning);
    assert_eq!(warnings[0].field.to_string(), "spec.priority");
    assert!(
        warnings[0].message.contains(
            "AdminNetworkPolicy same-priority has the same priority (50) as priority-50-example"
        ),
        "{}",
        warnings[0].message
    );
}

/// README, difference 2: a v1alpha1 `pods` peer without `podSelector` is
/// rejected by the API server; np-guard reads it as every pod.
#[test]
fn a_pods_peer_without_pod_selector_is_rejected() {
    let loaded = load_directory(&corpus().join("anp_test_10"));
    let errors = errors(&loaded);
    assert_eq!(errors.len(), 7, "one per egress rule: {errors:#?}");
    assert_eq!(
        errors[0].field.to_string(),
        "spec.egress[0].to[0].pods.podSelector"
    );
    assert_eq!(errors[0].source.as_ref().unwrap().location.line, 17);
    assert!(loaded.cluster.admin_policies.is_empty());
}

/// README, difference 3: UserDefinedNetwork (OVN-Kubernetes) is not a kind
/// netpol reads; those inputs load, with the UDNs counted as skipped.
#[test]
fn user_defined_networks_are_skipped() {
    for index in 1..=7 {
        let name = format!("udn_bad_path_test_{index}");
        let loaded = load_directory(&corpus().join(&name));
        assert!(!loaded.has_errors(), "{name}: {:#?}", loaded.diagnostics);
        assert!(
            loaded
                .skipped
                .get("UserDefinedNetwork (k8s.ovn.org/v1)")
                .is_some_and(|count| *count >= 1),
            "{name}: {:?}",
            loaded.skipped
        );
    }
}
