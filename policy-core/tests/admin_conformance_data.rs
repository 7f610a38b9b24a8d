//! The upstream admin network policy conformance suite as data
//! (testdata/admin-conformance) is complete and self-consistent.
//!
//! No policy is evaluated here: the checks are that every upstream Go test
//! file has its case file, every case file parses with the documented schema,
//! every path, pod, policy and rule it names exists, every probe targets a
//! port its server listens on, and every mutation applies to the state the
//! previous steps left (with the recorded rule order after each reordering).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value as Json;

#[path = "support/admin_conformance_case.rs"]
mod admin_conformance_case;

use admin_conformance_case::{
    BasePod, CaseFile, Mutation, V1ALPHA1, V1ALPHA2, Version, admin_conformance_dir, at_path,
    base_pods, load_case, load_manifests, rule_names,
};

/// Every upstream Go test file (conformance/tests, without main.go, which
/// only declares the test list). The same 22 files exist at v0.1.8 and main.
const UPSTREAM_TEST_FILES: [&str; 22] = [
    "admin-network-policy-experimental-egress-rules.go",
    "admin-network-policy-experimental-ingress-rules.go",
    "admin-network-policy-standard-egress-inline-cidr-rules.go",
    "admin-network-policy-standard-egress-sctp-rules.go",
    "admin-network-policy-standard-egress-tcp-rules.go",
    "admin-network-policy-standard-egress-udp-rules.go",
    "admin-network-policy-standard-gress-rules.go",
    "admin-network-policy-standard-ingress-sctp-rules.go",
    "admin-network-policy-standard-ingress-tcp-rules.go",
    "admin-network-policy-standard-ingress-udp-rules.go",
    "admin-network-policy-standard-integration.go",
    "admin-network-policy-standard-priority.go",
    "baseline-admin-network-policy-experimental-egress-rules.go",
    "baseline-admin-network-policy-experimental-ingress-rules.go",
    "baseline-admin-network-policy-standard-egress-inline-cidr-rules.go",
    "baseline-admin-network-policy-standard-egress-sctp-rules.go",
    "baseline-admin-network-policy-standard-egress-tcp-rules.go",
    "baseline-admin-network-policy-standard-egress-udp-rules.go",
    "baseline-admin-network-policy-standard-gress-rules.go",
    "baseline-admin-network-policy-standard-ingress-sctp-rules.go",
    "baseline-admin-network-policy-standard-ingress-tcp-rules.go",
    "baseline-admin-network-policy-standard-ingress-udp-rules.go",
];

/// The pods of the base manifests: 5 StatefulSets of 2 replicas.
const BASE_PODS: [&str; 10] = [
    "network-policy-conformance-forbidden-forrest/centaur-0",
    "network-policy-conformance-forbidden-forrest/centaur-1",
    "network-policy-conformance-gryffindor/harry-potter-0",
    "network-policy-conformance-gryffindor/harry-potter-1",
    "network-policy-conformance-hufflepuff/cedric-diggory-0",
    "network-policy-conformance-hufflepuff/cedric-diggory-1",
    "network-policy-conformance-ravenclaw/luna-lovegood-0",
    "network-policy-conformance-ravenclaw/luna-lovegood-1",
    "network-policy-conformance-slytherin/draco-malfoy-0",
    "network-policy-conformance-slytherin/draco-malfoy-1",
];

/// The upstream suite's default host-network port range (34345, 8 ports).
const HOST_NETWORK_PORTS: [u16; 8] = [34345, 34346, 34347, 34348, 34349, 34350, 34351, 34352];

/// What the translation of each version holds; a dropped or added test,
/// step or probe changes these.
struct Expected {
    version: Version,
    policy_kinds: &'static [&'static str],
    actions: &'static [&'static str],
    tests: usize,
    steps: usize,
    probes: usize,
    allow: usize,
    mutations: usize,
}

const EXPECTED: [Expected; 2] = [
    Expected {
        version: V1ALPHA1,
        policy_kinds: &["AdminNetworkPolicy", "BaselineAdminNetworkPolicy"],
        actions: &["Allow", "Deny", "Pass"],
        tests: 24,
        steps: 92,
        probes: 289,
        allow: 160,
        mutations: 42,
    },
    Expected {
        version: V1ALPHA2,
        policy_kinds: &["ClusterNetworkPolicy"],
        actions: &["Accept", "Deny", "Pass"],
        tests: 24,
        steps: 96,
        probes: 301,
        allow: 166,
        mutations: 46,
    },
];

type Key = (String, String, String); // kind, namespace ("" if cluster-scoped), name

fn key_of(document: &Json) -> Key {
    let text = |v: &Json| v.as_str().unwrap_or_default().to_string();
    (
        text(&document["kind"]),
        text(&document["metadata"]["namespace"]),
        text(&document["metadata"]["name"]),
    )
}

/// Check the `{pod_ip_of: ns/pod, prefix: host}` placeholders of an inserted
/// rule; returns how many there are.
fn check_placeholders(value: &Json, pods: &BTreeMap<String, BasePod>) -> usize {
    match value {
        Json::Object(map) if map.contains_key("pod_ip_of") => {
            assert_eq!(map.len(), 2, "placeholder {value}");
            assert_eq!(map["prefix"], "host", "placeholder {value}");
            let pod = map["pod_ip_of"].as_str().unwrap();
            assert!(
                pods.contains_key(pod),
                "placeholder names unknown pod {pod}"
            );
            1
        }
        Json::Object(map) => map.values().map(|v| check_placeholders(v, pods)).sum(),
        Json::Array(items) => items.iter().map(|v| check_placeholders(v, pods)).sum(),
        _ => 0,
    }
}

#[derive(Default, Debug, PartialEq)]
struct Counts {
    tests: usize,
    steps: usize,
    probes: usize,
    allow: usize,
    mutations: usize,
}

fn check_version(expected: &Expected) {
    let version = &expected.version;
    let root = version.root();

    // One case file per upstream Go test file, and nothing else.
    let files = version.case_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    let wanted: Vec<String> = UPSTREAM_TEST_FILES
        .iter()
        .map(|f| f.replace(".go", ".yaml"))
        .collect();
    assert_eq!(names, wanted, "{}: case files", version.dir);

    // The base manifests, rendered with the default host-network ports.
    let base_documents = load_manifests(&root.join("base/manifests.yaml"), &HOST_NETWORK_PORTS);
    let pods = base_pods(&base_documents);
    assert_eq!(
        pods.keys().map(String::as_str).collect::<Vec<_>>(),
        BASE_PODS,
        "{}: base pods",
        version.dir
    );
    let base_namespaces: BTreeMap<String, BTreeMap<String, String>> = base_documents
        .iter()
        .filter(|d| d["kind"] == "Namespace")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                serde_json::from_value(d["metadata"]["labels"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(base_namespaces.len(), 5);
    for pod in pods.values() {
        assert!(base_namespaces.contains_key(&pod.namespace));
    }

    let mut counts = Counts::default();
    let mut short_names = BTreeSet::new();
    let mut used_manifests = BTreeSet::new();
    for (file, upstream_file) in files.iter().zip(UPSTREAM_TEST_FILES) {
        let case: CaseFile = load_case(file);
        let at = file.display();
        assert_eq!(
            case.source.repository,
            "https://github.com/kubernetes-sigs/network-policy-api"
        );
        assert_eq!(
            case.source.path,
            format!("conformance/tests/{upstream_file}")
        );
        assert_eq!(case.source.upstream_ref, version.upstream_ref, "{at}");
        assert_eq!(case.source.commit, version.upstream_commit, "{at}");
        assert_eq!(case.base, "../base/manifests.yaml", "{at}");
        assert_eq!(case.host_network_ports, HOST_NETWORK_PORTS, "{at}");
        assert!(!case.tests.is_empty(), "{at}: no tests");

        for test in &case.tests {
            let at = format!("{at}: {}", test.short_name);
            counts.tests += 1;
            assert!(
                short_names.insert(test.short_name.clone()),
                "{at}: duplicate short name"
            );
            assert!(!test.description.is_empty(), "{at}");
            assert!(!test.features.is_empty(), "{at}");
            assert!(
                test.features.iter().all(|f| f.starts_with("Support")),
                "{at}: features {:?}",
                test.features
            );

            // The test's manifests: they must exist under base/.
            assert!(!test.policies.is_empty(), "{at}: no policies");
            let mut objects: BTreeMap<Key, Json> = BTreeMap::new();
            for policy_path in &test.policies {
                let relative = policy_path
                    .strip_prefix("../base/")
                    .unwrap_or_else(|| panic!("{at}: {policy_path} is not under ../base/"));
                assert!(!relative.contains(".."), "{at}: {policy_path}");
                let path = version.cases_dir().join(policy_path);
                assert!(path.is_file(), "{at}: {} does not exist", path.display());
                used_manifests.insert(relative.to_string());
                for document in load_manifests(&path, &HOST_NETWORK_PORTS) {
                    let key = key_of(&document);
                    assert!(
                        expected.policy_kinds.contains(&key.0.as_str()) || key.0 == "NetworkPolicy",
                        "{at}: unexpected kind {}",
                        key.0
                    );
                    assert!(
                        objects.insert(key.clone(), document).is_none(),
                        "{at}: {key:?} defined twice"
                    );
                }
            }

            // Replay the steps on the test's objects and namespaces.
            let mut namespaces = base_namespaces.clone();
            let mut names_seen: BTreeMap<&str, Vec<Option<u32>>> = BTreeMap::new();
            for step in &test.steps {
                let at = format!("{at}: {:?} part {:?}", step.name, step.part);
                counts.steps += 1;
                names_seen.entry(&step.name).or_default().push(step.part);
                for mutation in &step.mutate {
                    counts.mutations += 1;
                    if let Some((kind, namespace, name)) = mutation.target() {
                        let key = (
                            kind.to_string(),
                            namespace.unwrap_or_default().to_string(),
                            name.to_string(),
                        );
                        assert!(
                            objects.contains_key(&key),
                            "{at}: mutation of {key:?}, which the test's manifests do not define (or an earlier step deleted)"
                        );
                        if !matches!(mutation, Mutation::Delete { .. }) {
                            assert!(expected.policy_kinds.contains(&kind), "{at}: {kind}");
                        }
                    }
                    match mutation {
                        Mutation::SwapRules {
                            kind,
                            name,
                            field,
                            i,
                            j,
                            rules_after,
                        } => {
                            let policy = objects
                                .get_mut(&(kind.clone(), String::new(), name.clone()))
                                .unwrap();
                            let rules = policy["spec"][field.as_str()].as_array_mut().unwrap();
                            assert!(i != j && *i < rules.len() && *j < rules.len(), "{at}");
                            rules.swap(*i, *j);
                            assert_eq!(&rule_names(policy, field), rules_after, "{at}");
                        }
                        Mutation::InsertRule {
                            kind,
                            name,
                            field,
                            index,
                            rule,
                            rules_after,
                        } => {
                            assert!(check_placeholders(rule, &pods) > 0, "{at}");
                            assert!(rule["name"].is_string(), "{at}");
                            let policy = objects
                                .get_mut(&(kind.clone(), String::new(), name.clone()))
                                .unwrap();
                            let rules = policy["spec"][field.as_str()].as_array_mut().unwrap();
                            assert!(*index <= rules.len(), "{at}");
                            rules.insert(*index, rule.clone());
                            assert_eq!(&rule_names(policy, field), rules_after, "{at}");
                        }
                        Mutation::Set {
                            kind,
                            name,
                            path,
                            value,
                        } => {
                            let policy = objects
                                .get_mut(&(kind.clone(), String::new(), name.clone()))
                                .unwrap();
                            let slot = at_path(policy, path);
                            assert_ne!(slot, value, "{at}: set {path} to its current value");
                            *slot = value.clone();
                        }
                        Mutation::SetNamespaceLabels { name, labels } => {
                            let current = namespaces
                                .get_mut(name)
                                .unwrap_or_else(|| panic!("{at}: unknown namespace {name}"));
                            assert_ne!(current, labels, "{at}: relabel to the same labels");
                            *current = labels.clone();
                        }
                        Mutation::Delete {
                            kind,
                            namespace,
                            name,
                        } => {
                            let key = (
                                kind.clone(),
                                namespace.clone().unwrap_or_default(),
                                name.clone(),
                            );
                            objects.remove(&key).unwrap();
                        }
                    }
                }
                // Every rule of every policy still has a valid action.
                for (key, object) in &objects {
                    if key.0 == "NetworkPolicy" {
                        continue;
                    }
                    for field in ["ingress", "egress"] {
                        for rule in object["spec"][field].as_array().into_iter().flatten() {
                            let action = rule["action"].as_str().unwrap_or_default();
                            assert!(
                                expected.actions.contains(&action),
                                "{at}: {key:?} rule action {action:?}"
                            );
                        }
                    }
                }

                assert!(!step.probes.is_empty(), "{at}: no probes");
                for probe in &step.probes {
                    counts.probes += 1;
                    let from = pods
                        .get(&probe.from)
                        .unwrap_or_else(|| panic!("{at}: unknown pod {}", probe.from));
                    let to = pods
                        .get(&probe.to)
                        .unwrap_or_else(|| panic!("{at}: unknown pod {}", probe.to));
                    assert!(!from.host_network, "{at}: probe from a host-network pod");
                    assert_ne!(probe.from, probe.to, "{at}: self probe");
                    assert!(
                        ["TCP", "UDP", "SCTP"].contains(&probe.protocol.as_str()),
                        "{at}: protocol {}",
                        probe.protocol
                    );
                    match probe.expect.as_str() {
                        "allow" => counts.allow += 1,
                        "deny" => {}
                        other => panic!("{at}: expect {other:?}"),
                    }
                    assert_eq!(probe.to_host_network, to.host_network, "{at}: {probe:?}");
                    match probe.host_network_port_index {
                        Some(index) => {
                            assert!(to.host_network, "{at}");
                            assert_eq!(probe.port, HOST_NETWORK_PORTS[index], "{at}");
                        }
                        None => assert!(!to.host_network, "{at}: host port without its index"),
                    }
                    assert!(
                        to.serves.contains(&(probe.protocol.clone(), probe.port)),
                        "{at}: {} does not listen on {}/{}",
                        probe.to,
                        probe.protocol,
                        probe.port
                    );
                }
            }
            // Subtest names: unique, or consecutive parts numbered 1..n.
            for (name, parts) in names_seen {
                if parts.len() == 1 {
                    assert_eq!(parts, [None], "{at}: {name:?}");
                } else {
                    let want: Vec<Option<u32>> = (1..=parts.len() as u32).map(Some).collect();
                    assert_eq!(parts, want, "{at}: {name:?}");
                }
            }
            let mut previous: Option<&str> = None;
            let mut finished = BTreeSet::new();
            for step in &test.steps {
                if previous != Some(step.name.as_str()) {
                    assert!(
                        finished.insert(&step.name),
                        "{at}: parts of {:?} not consecutive",
                        step.name
                    );
                }
                previous = Some(&step.name);
            }
            // The base namespaces are shared by all tests: a test that
            // relabels one restores it.
            assert_eq!(namespaces, base_namespaces, "{at}: namespaces not restored");
        }
    }

    // Every vendored test manifest is used by some test.
    let mut vendored = BTreeSet::new();
    collect_yaml(&root.join("base"), &root.join("base"), &mut vendored);
    vendored.remove("manifests.yaml");
    assert_eq!(
        used_manifests, vendored,
        "{}: vendored vs used manifests",
        version.dir
    );

    assert_eq!(
        counts,
        Counts {
            tests: expected.tests,
            steps: expected.steps,
            probes: expected.probes,
            allow: expected.allow,
            mutations: expected.mutations,
        },
        "{}",
        version.dir
    );
}

fn collect_yaml(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_yaml(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.insert(
                path.strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
}

#[test]
fn v1alpha1_cases_are_complete_and_consistent() {
    check_version(&EXPECTED[0]);
}

#[test]
fn v1alpha2_cases_are_complete_and_consistent() {
    check_version(&EXPECTED[1]);
}

#[test]
fn vendored_files_carry_the_upstream_license() {
    let license = std::fs::read_to_string(admin_conformance_dir().join("LICENSE")).unwrap();
    assert!(license.contains("Apache License"));
    assert!(license.contains("Version 2.0, January 2004"));
    let readme = std::fs::read_to_string(admin_conformance_dir().join("README.md")).unwrap();
    for version in [V1ALPHA1, V1ALPHA2] {
        assert!(
            readme.contains(version.upstream_commit),
            "README names {}",
            version.upstream_commit
        );
    }
}
