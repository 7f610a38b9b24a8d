//! The `netpol` binary's contracts: exit codes, output formats, inputs.

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

fn netpol_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netpol runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

const DEMO: &str = "examples/demo";

#[test]
fn query_exits_0_when_allowed_and_names_the_rules() {
    let output = netpol(&[
        "query",
        DEMO,
        "--from",
        "shop/frontend",
        "--to",
        "shop/cart",
        "--port",
        "grpc",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn query_exits_1_when_denied_and_names_the_isolating_policies() {
    let output = netpol(&[
        "query",
        DEMO,
        "--from",
        "shop/frontend",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn query_json_carries_allowed_and_both_sides() {
    let output = netpol(&[
        "query",
        DEMO,
        "--from",
        "payments/checkout",
        "--to",
        "198.51.100.7",
        "--port",
        "443",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let verdict: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(verdict["allowed"], Value::Bool(true));
    assert_eq!(verdict["egress"]["reason"], "allowed-by-rule");
    assert_eq!(verdict["egress"]["rules"][0]["name"], "checkout");
    assert_eq!(verdict["egress"]["rules"][0]["rule"], "egress[0]");
    assert_eq!(verdict["ingress"]["reason"], "outside-cluster");

    // The except block of the same ipBlock is denied.
    let output = netpol(&[
        "query",
        DEMO,
        "--from",
        "payments/checkout",
        "--to",
        "198.51.100.200",
        "--port",
        "443",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let verdict: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(verdict["allowed"], Value::Bool(false));
    assert_eq!(verdict["egress"]["reason"], "no-rule-matched");
    assert_eq!(verdict["egress"]["isolated_by"][0]["name"], "checkout");
}

#[test]
fn query_exits_2_on_errors() {
    let unknown = netpol(&[
        "query",
        DEMO,
        "--from",
        "shop/nope",
        "--to",
        "shop/db",
        "--port",
        "80",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("shop/nope"));

    let missing = netpol(&[
        "query",
        "no/such/dir",
        "--from",
        "a/b",
        "--to",
        "a/c",
        "--port",
        "80",
    ]);
    assert_eq!(missing.status.code(), Some(2));

    let named_to_address = netpol(&[
        "query",
        DEMO,
        "--from",
        "shop/cart",
        "--to",
        "10.1.2.3",
        "--port",
        "http",
    ]);
    assert_eq!(named_to_address.status.code(), Some(2));

    let no_such_port = netpol(&[
        "query",
        DEMO,
        "--from",
        "shop/cart",
        "--to",
        "shop/db",
        "--port",
        "grpc",
    ]);
    assert_eq!(no_such_port.status.code(), Some(2));
    assert!(stderr(&no_such_port).contains("no TCP container port named \"grpc\""));

    let bad_port = netpol(&[
        "query",
        DEMO,
        "--from",
        "shop/cart",
        "--to",
        "shop/db",
        "--port",
        "70000",
    ]);
    assert_eq!(bad_port.status.code(), Some(2));
}

#[test]
fn input_with_errors_is_reported_by_line_and_exits_2() {
    let manifests = "\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: typo, namespace: shop}
spec:
  podSelector: {}
  ingres:
  - {}
";
    let output = netpol_with_stdin(
        &[
            "query", "-", "--from", "shop/a", "--to", "shop/a", "--port", "80",
        ],
        manifests,
    );
    assert_eq!(output.status.code(), Some(2));
    let errors = stderr(&output);
    assert!(
        errors.contains("-:10:3: error: unknown field `ingres`"),
        "{errors}"
    );
    assert!(errors.contains("did you mean `ingress`?"), "{errors}");
    assert!(errors.contains("denies all ingress"), "{errors}");
}

#[test]
fn an_ip_address_that_is_a_pods_ip_means_that_pod() {
    let output = netpol(&[
        "query",
        "testdata/conformance/cluster.yaml",
        "--from",
        "10.0.1.10",
        "--to",
        "y/b",
        "--port",
        "80",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let verdict: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(verdict["from"], "x/a");
}

#[test]
fn matrix_json_has_the_documented_shape() {
    let output = netpol(&["matrix", DEMO, "--port", "8080", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let matrix: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let keys: Vec<&String> = matrix.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["port", "protocol", "pods", "allowed"]);
    assert_eq!(matrix["port"], 8080);
    assert_eq!(matrix["protocol"], "TCP");
    assert_eq!(matrix["pods"].as_array().unwrap().len(), 6);
    let allowed = matrix["allowed"].as_array().unwrap();
    for pair in allowed {
        let keys: Vec<&String> = pair.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["from", "to"]);
    }
    // Every self pair; the two unisolated pods reach each other on any port,
    // and the frontend accepts its port from anyone whose egress allows it.
    let mut pairs: Vec<(String, String)> = allowed
        .iter()
        .map(|p| {
            (
                p["from"].as_str().unwrap().to_string(),
                p["to"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(from, to)| from != to)
        .collect();
    pairs.sort();
    let expected = [
        ("kube-system/coredns", "monitoring/prometheus"),
        ("kube-system/coredns", "shop/frontend"),
        ("monitoring/prometheus", "kube-system/coredns"),
        ("monitoring/prometheus", "shop/frontend"),
    ];
    assert_eq!(pairs, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(allowed.len(), 6 + 4);
}

#[test]
fn matrix_text_is_a_truth_table_grid() {
    let output = netpol(&["matrix", DEMO, "--port", "metrics"]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn matrix_without_port_lists_each_pairs_connections() {
    let output = netpol(&["matrix", DEMO]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn matrix_csv_and_dot_cover_every_pair() {
    let csv = stdout(&netpol(&[
        "matrix", DEMO, "--port", "80", "--output", "csv",
    ]));
    assert_eq!(csv.lines().next(), Some("from,to,protocol,port,allowed"));
    assert_eq!(csv.lines().count(), 1 + 36);
    let csv = stdout(&netpol(&["matrix", DEMO, "--output", "csv"]));
    assert!(csv.contains("shop/cart,shop/db,TCP 5432\n"), "{csv}");
    let dot = stdout(&netpol(&["matrix", DEMO, "--output", "dot"]));
    assert!(dot.starts_with("digraph netpol {"));
    assert!(
        dot.contains("\"shop/cart\" -> \"shop/db\" [label=\"TCP 5432\"];"),
        "{dot}"
    );
}

#[test]
fn matrix_reads_standard_input() {
    let manifests =
        std::fs::read_to_string(repo().join("testdata/conformance/cluster.yaml")).unwrap();
    let output = netpol_with_stdin(
        &["matrix", "-", "--port", "80", "--output", "json"],
        &manifests,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let matrix: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(matrix["allowed"].as_array().unwrap().len(), 81);
}

#[test]
fn verbose_says_what_was_skipped() {
    let manifests = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
    let output = netpol_with_stdin(&["matrix", "-", "--verbose"], manifests);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("skipped 1 document(s): 1 ConfigMap (v1)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn every_command_has_help_with_examples() {
    for command in [
        vec!["--help"],
        vec!["query", "--help"],
        vec!["matrix", "--help"],
    ] {
        let output = netpol(&command);
        assert_eq!(output.status.code(), Some(0));
        assert!(stdout(&output).contains("Examples:"), "{command:?}");
    }
    let output = netpol(&["matrix"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "missing PATH is a usage error"
    );
}

/// The vendored np-guard corpus (`testdata/npguard/corpus`).
fn corpus_root() -> PathBuf {
    repo().join("testdata/npguard/corpus")
}

/// Every manifest file under `root`, and every directory holding one.
fn inputs_under(root: &Path) -> Vec<PathBuf> {
    let mut inputs = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        inputs.push(directory.clone());
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    inputs
}

#[test]
fn no_input_in_testdata_or_the_corpus_makes_any_command_panic() {
    let corpus = corpus_root();
    assert!(
        corpus.join("tests").is_dir(),
        "the np-guard corpus is missing at {}",
        corpus.display()
    );
    // testdata/ holds the corpus too (testdata/npguard/corpus).
    let inputs: Vec<PathBuf> = [repo().join("testdata"), repo().join("examples")]
        .iter()
        .flat_map(|root| inputs_under(root))
        .collect();
    let check = |input: &PathBuf| {
        let path = input.to_str().unwrap();
        // Every command that reads manifests, with the exit statuses it may give.
        let runs: [(Vec<&str>, &[i32]); 7] = [
            (vec!["matrix", path], &[0, 2]),
            (
                vec![
                    "matrix",
                    path,
                    "--port",
                    "80",
                    "--ip-block",
                    "ignore",
                    "--host-network",
                    "pod",
                ],
                &[0, 2],
            ),
            (vec!["lint", path, "--output", "sarif"], &[0, 1, 2]),
            (vec!["lint", path, "--self-traffic", "evaluate"], &[0, 1, 2]),
            (vec!["explain", path], &[0, 2]),
            (vec!["report", path, "-o", "-"], &[0, 2]),
            (
                vec!["diff", path, "examples/demo", "--exit-code"],
                &[0, 1, 2],
            ),
        ];
        for (args, statuses) in runs {
            let output = netpol(&args);
            let errors = stderr(&output);
            assert!(
                !errors.contains("panicked"),
                "netpol {args:?} panicked:\n{errors}"
            );
            assert!(
                output
                    .status
                    .code()
                    .is_some_and(|code| statuses.contains(&code)),
                "netpol {args:?} exited with {:?}:\n{errors}",
                output.status
            );
        }
    };
    // The processes are independent: run them on every core.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let inputs = &inputs;
            scope.spawn(move || inputs.iter().skip(worker).step_by(workers).for_each(check));
        }
    });
    let checked = inputs.len();
    assert!(checked > 100, "only {checked} inputs found");
}

#[test]
fn the_deploy_manifests_parse_and_lint_clean() {
    let output = netpol(&[
        "lint",
        "examples/deploy",
        "--output",
        "json",
        "--fail-on",
        "info",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let findings: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    // And the objects were really read (a DaemonSet, not skipped).
    let output = netpol(&["matrix", "examples/deploy", "--port", "9640"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("kube-system/netpol-agent"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn agent_dry_run_prints_the_first_transaction_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("netpol-dry-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["pods.yaml", "policies.yaml"] {
        std::fs::copy(repo().join("examples/cluster").join(file), dir.join(file)).unwrap();
    }
    let compiled = netpol(&["compile", dir.to_str().unwrap(), "--node", "node-1"]);
    assert_eq!(compiled.status.code(), Some(0), "{}", stderr(&compiled));
    let mut child = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(["agent", "--node", "node-1", "--dry-run", "--listen", "off"])
        .arg("--source")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until the first transaction has been printed completely (it ends
    // where the compiled ruleset ends).
    let expected_tail = stdout(&compiled);
    let mut agent_stdout = child.stdout.take().unwrap();
    let mut printed = Vec::new();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buffer = [0u8; 4096];
        loop {
            let n = agent_stdout.read(&mut buffer).unwrap_or(0);
            if n == 0 {
                return printed;
            }
            printed.extend_from_slice(&buffer[..n]);
            if String::from_utf8_lossy(&printed).ends_with(&expected_tail) {
                return printed;
            }
        }
    });
    let printed = String::from_utf8(reader.join().unwrap()).unwrap();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (header, body) = printed.split_once('\n').unwrap();
    assert!(header.starts_with("# transaction 1: full, "), "{header}");
    // The first transaction is exactly what `netpol compile` prints.
    assert_eq!(body, stdout(&compiled));
}

/// Two pods with one address (reused before the old pod is gone) and
/// different permissions: the compiled ruleset gives the address what both
/// are allowed, and `netpol compile` says so, naming the address, instead
/// of silently narrowing one pod's traffic.
#[test]
fn compile_warns_about_a_peer_address_shared_by_pods_with_different_permissions() {
    let cluster = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: shop, labels: {app: batch}}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.9}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
  - from: [{podSelector: {matchLabels: {app: batch}}}]
    ports: [{port: 5432}, {port: 80}]
";
    let output = netpol_with_stdin(&["compile", "-", "--node", "node-1"], cluster);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let warning = stderr(&output);
    assert!(
        warning
            .contains("warning: 1 peer address(es) are shared by pods with different permissions")
            && warning.contains(": 10.0.0.5"),
        "{warning}"
    );
    // Pods that share nothing give no such warning.
    let distinct = cluster.replacen("podIP: 10.0.0.5", "podIP: 10.0.0.6", 1);
    let output = netpol_with_stdin(&["compile", "-", "--node", "node-1"], &distinct);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("shared"), "{}", stderr(&output));
}

/// `query` goes through the admin tiers: an AdminNetworkPolicy Deny decides
/// before any NetworkPolicy, and the answer names the tier, the policy, its
/// priority, the rule (index and name) and the action; a baseline Deny
/// decides only for pods no NetworkPolicy selects.
#[test]
fn query_names_the_admin_tier_rule_that_decides() {
    let cluster = "
apiVersion: v1
kind: Namespace
metadata: {name: gryffindor, labels: {house: gryffindor}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ravenclaw, labels: {house: ravenclaw}}
---
apiVersion: v1
kind: Pod
metadata: {name: harry, namespace: gryffindor, labels: {app: harry}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: luna, namespace: ravenclaw, labels: {app: luna}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: ravenclaw}
spec:
  podSelector: {}
  ingress: [{}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: block-gryffindor}
spec:
  priority: 3
  subject: {namespaces: {matchLabels: {house: ravenclaw}}}
  ingress:
  - name: deny-from-gryffindor
    action: Deny
    from: [{namespaces: {matchLabels: {house: gryffindor}}}]
    ports: [{portNumber: {protocol: TCP, port: 80}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress:
  - {name: no-egress, action: Deny, to: [{namespaces: {}}]}
";
    let query = |from: &str, to: &str, port: &str| {
        netpol_with_stdin(
            &["query", "-", "--from", from, "--to", to, "--port", port],
            cluster,
        )
    };
    let output = query("gryffindor/harry", "ravenclaw/luna", "80");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "ingress of ravenclaw/luna: DENIED: denied by AdminNetworkPolicy `block-gryffindor` (priority 3) ingress rule 0 `deny-from-gryffindor`, in the admin tier, before any NetworkPolicy"
        ),
        "{text}"
    );
    // harry has no NetworkPolicy for egress, so the baseline decides.
    assert!(
        text.contains(
            "egress of gryffindor/harry: DENIED: denied by BaselineAdminNetworkPolicy `default` egress rule 0 `no-egress`, in the baseline tier, as no NetworkPolicy selects gryffindor/harry for egress"
        ),
        "{text}"
    );
    // The other way: luna's egress is baseline-denied too; harry's ingress
    // has no NetworkPolicy and no ingress baseline rule.
    let output = query("ravenclaw/luna", "gryffindor/harry", "80");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("ingress of gryffindor/harry: allowed: not isolated"),
        "{}",
        stdout(&output)
    );
    // What does not read the tiers yet is said once, on stderr.
    let warnings = stderr(&output);
    assert_eq!(
        warnings
            .matches("every command applies the tiers, but the NetworkPolicy lint rules (NP004-NP019) still judge NetworkPolicies alone")
            .count(),
        1,
        "{warnings}"
    );
    // JSON names the deciding rule.
    let output = netpol_with_stdin(
        &[
            "query",
            "-",
            "--from",
            "gryffindor/harry",
            "--to",
            "ravenclaw/luna",
            "--port",
            "80",
            "--output",
            "json",
        ],
        cluster,
    );
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value["ingress"]["reason"], "admin-tier");
    assert_eq!(value["ingress"]["tier_rule"]["action"], "Deny");
    assert_eq!(
        value["ingress"]["tier_rule"]["rule"]["name"],
        "block-gryffindor"
    );
    assert_eq!(value["ingress"]["tier_rule"]["rule"]["priority"], 3);
    assert_eq!(
        value["ingress"]["tier_rule"]["rule"]["rule"],
        "deny-from-gryffindor"
    );
    assert_eq!(value["egress"]["reason"], "baseline-tier");
}

/// `explain` describes each admin-tier policy: its tier and priority, the
/// pods it applies to, and its rules in order with their actions.
#[test]
fn explain_describes_admin_tier_policies_rule_by_rule() {
    let manifests = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: block-gryffindor}
spec:
  priority: 3
  subject: {namespaces: {matchLabels: {house: ravenclaw}}}
  ingress:
  - name: deny-from-gryffindor
    action: Deny
    from: [{namespaces: {matchLabels: {house: gryffindor}}}]
    ports: [{portNumber: {protocol: TCP, port: 80}}]
  - {action: Pass, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {}}
  egress:
  - {name: no-internet, action: Deny, to: [{networks: [0.0.0.0/0]}], protocols: [{tcp: {destinationPort: {range: {start: 1, end: 1024}}}}]}
";
    let output = netpol_with_stdin(&["explain", "-"], manifests);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "Admin tier, priority 3: decides before any NetworkPolicy. Applies to every pod in namespaces with house=ravenclaw. Ingress, first match wins: rule 0 `deny-from-gryffindor` denies traffic from every pod in namespaces with house=gryffindor on TCP 80, whatever NetworkPolicies say; rule 1 passes traffic from pods with app=web in any namespace on any port on to NetworkPolicy; anything else goes on to NetworkPolicy. Egress is not affected."
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "Baseline tier, priority 10: decides only for pods no NetworkPolicy selects in that direction. Applies to every pod in any namespace. Ingress is not affected. Egress, first match wins: rule 0 `no-internet` denies traffic to addresses in 0.0.0.0/0 (pods and nodes there too) on TCP 1-1024; anything else is allowed."
        ),
        "{text}"
    );
    // Both are named, in the order the cluster keeps them.
    let admin = text.find("AdminNetworkPolicy block-gryffindor").unwrap();
    let baseline = text.find("ClusterNetworkPolicy baseline").unwrap();
    assert!(admin < baseline, "{text}");
}

/// The class-level commands read the tiers: `matrix` applies an ANP's Allow
/// over a BANP's Deny, `explain --pod` lists the tiers' policies and what
/// the pod may receive, and the report names the admin rule that accepts.
#[test]
fn matrix_explain_pod_and_report_apply_the_admin_tiers() {
    let manifests = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {team: monitoring}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.244.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: prometheus, namespace: monitoring, labels: {app: prometheus}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIP: 10.244.0.20}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-monitoring}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {team: shop}}}
  ingress:
  - {name: allow-monitoring, action: Allow, from: [{namespaces: {matchLabels: {team: monitoring}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {name: deny-all, action: Deny, from: [{namespaces: {}}]}
";
    let output = netpol_with_stdin(
        &["matrix", "-", "--port", "80", "--output", "json"],
        manifests,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let matrix: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    // prometheus -> web: the ANP's Allow; web -> prometheus: the BANP's Deny
    // (a pod reaching itself is allowed, --self-traffic allow).
    assert_eq!(
        matrix["allowed"],
        serde_json::json!([
            {"from": "monitoring/prometheus", "to": "monitoring/prometheus"},
            {"from": "monitoring/prometheus", "to": "shop/web"},
            {"from": "shop/web", "to": "shop/web"},
        ])
    );
    let explain = netpol_with_stdin(&["explain", "-", "--pod", "shop/web"], manifests);
    let explain = stdout(&explain);
    assert!(
        explain.contains("  Admin tier: AdminNetworkPolicy allow-monitoring (priority 5, ingress).\n  Baseline tier: BaselineAdminNetworkPolicy default (ingress).\n  Ingress: not isolated, with admin-tier rules. It may receive:\n    from monitoring/prometheus on every port\n"),
        "{explain}"
    );
    let explain_prometheus = netpol_with_stdin(
        &["explain", "-", "--pod", "monitoring/prometheus"],
        manifests,
    );
    let explain_prometheus = stdout(&explain_prometheus);
    assert!(
        explain_prometheus.contains("  Ingress: not isolated, with admin-tier rules. It may receive:\n    from any address outside the cluster on every port\n"),
        "{explain_prometheus}"
    );
    let dir = std::env::temp_dir().join(format!("netpol-admin-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("cluster.yaml");
    std::fs::write(&input, manifests).unwrap();
    let html = dir.join("report.html");
    let report = netpol(&[
        "report",
        input.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("AdminNetworkPolicy `allow-monitoring` (priority 5) ingress rule 0 `allow-monitoring`: every port"),
        "the report names the accepting admin rule"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
