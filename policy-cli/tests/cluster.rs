//! `--cluster`: every analysis command reads a running cluster through the
//! Kubernetes API, here a fake API server on loopback (the `kube-fake`
//! crate) that speaks the real list protocol, pages included.
//!
//! The oracle is the file path, which the rest of the suite pins: the same
//! objects written to a manifest file must give the same answers as when
//! listed from the API. Failures must name the call, the cause and the fix.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube_fake::{FakeApiServer, Res};
use serde_json::{Value, json};

/// A fake API server (on its own runtime) and a scratch directory holding a
/// kubeconfig for it.
struct Cluster {
    server: FakeApiServer,
    dir: PathBuf,
    // Keeps the server's tasks running while the tests run commands.
    _runtime: tokio::runtime::Runtime,
}

impl Cluster {
    /// The recorded fixtures plus the workloads that own their pods (all of
    /// which have pods, so they add no endpoint either way) and a Service.
    fn start(test: &str) -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime.block_on(FakeApiServer::start());
        let owner = |kind: &str, name: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}]);
        server.apply(
            Res::Deployments,
            json!({"metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web", "tier": "frontend"}},
                                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        );
        server.apply(
            Res::ReplicaSets,
            json!({"metadata": {"name": "web-6f8d7c9b5", "namespace": "shop", "ownerReferences": owner("Deployment", "web")},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web", "tier": "frontend"}},
                                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        );
        // Scaled to zero: no pods, so no endpoint (in manifests too).
        server.apply(
            Res::Deployments,
            json!({"metadata": {"name": "batch", "namespace": "shop"},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "batch"}},
                            "template": {"metadata": {"labels": {"app": "batch"}},
                                         "spec": {"containers": [{"name": "b", "image": "busybox"}]}}}}),
        );
        server.apply(
            Res::StatefulSets,
            json!({"metadata": {"name": "db", "namespace": "shop"},
                   "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                            "template": {"metadata": {"labels": {"app": "db"}},
                                         "spec": {"containers": [{"name": "db", "image": "postgres"}]}}}}),
        );
        server.apply(
            Res::Services,
            json!({"metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        );
        let dir =
            std::env::temp_dir().join(format!("netpol-cluster-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let cluster = Cluster {
            server,
            dir,
            _runtime: runtime,
        };
        cluster.write_kubeconfig("kubeconfig", "fake");
        cluster
    }

    fn kubeconfig(&self) -> String {
        self.dir.join("kubeconfig").display().to_string()
    }

    fn write_kubeconfig(&self, name: &str, context: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, self.server.kubeconfig(context)).expect("kubeconfig");
        path
    }

    /// The objects that define the model, as one manifest file: what
    /// `kubectl get namespaces,pods,services,networkpolicies -A -o json`
    /// would print.
    fn dump(&self) -> PathBuf {
        let items: Vec<Value> = [
            Res::Namespaces,
            Res::Pods,
            Res::Services,
            Res::NetworkPolicies,
        ]
        .into_iter()
        .flat_map(|res| self.server.objects(res))
        .collect();
        let path = self.dir.join("dump.json");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(&path, serde_json::to_string_pretty(&list).unwrap()).expect("dump");
        path
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("manifest");
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs netpol with no kubeconfig in the environment (HOME is the scratch
/// directory), so only the flags name a cluster.
fn netpol_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env_remove("KUBECONFIG")
        .env("HOME", dir)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("netpol runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that a command gives the same stdout and exit status from the
/// cluster as from the dump of its objects.
fn assert_same_from_cluster_and_files(cluster: &Cluster, command: &[&str], extra: &[&str]) {
    assert_same_from_cluster_and_file(cluster, &cluster.dump(), command, extra);
}

/// Asserts that a command gives the same stdout and exit status from the
/// cluster as from the manifest `dump`, up to the source locations only a
/// file has.
fn assert_same_from_cluster_and_file(
    cluster: &Cluster,
    dump: &Path,
    command: &[&str],
    extra: &[&str],
) {
    let kubeconfig = cluster.kubeconfig();
    let mut from_files: Vec<&str> = command.to_vec();
    from_files.push(dump.to_str().unwrap());
    from_files.extend_from_slice(extra);
    let mut from_cluster: Vec<&str> = command.to_vec();
    from_cluster.extend_from_slice(&["--kubeconfig", &kubeconfig]);
    from_cluster.extend_from_slice(extra);
    let expected = netpol_in(&cluster.dir, &from_files);
    let actual = netpol_in(&cluster.dir, &from_cluster);
    // Objects read from a file carry `file:line:col`; from the API, none.
    let dump_name = dump.display().to_string();
    let without_locations = |output: &[u8]| -> String {
        let mut text = text(output);
        while let Some(start) = text.find(&dump_name) {
            let end = start
                + dump_name.len()
                + text[start + dump_name.len()..]
                    .find(|c: char| !(c.is_ascii_digit() || c == ':'))
                    .unwrap_or(0);
            let (before, after) = (&text[..start], &text[end..]);
            text = if before.ends_with(" (") && after.starts_with(')') {
                format!("{}{}", &before[..before.len() - 2], &after[1..])
            } else if before.ends_with('"') && after.starts_with('"') {
                format!("{}null{}", &before[..before.len() - 1], &after[1..])
            } else {
                format!("{before}{after}")
            };
        }
        text
    };
    assert_eq!(
        actual.status.code(),
        expected.status.code(),
        "{command:?}: stderr from the cluster:\n{}\nfrom files:\n{}",
        text(&actual.stderr),
        text(&expected.stderr)
    );
    assert!(
        !expected.stdout.is_empty(),
        "{command:?} printed nothing from files: {}",
        text(&expected.stderr)
    );
    assert_eq!(
        text(&actual.stdout),
        without_locations(&expected.stdout),
        "{command:?}: stderr {}",
        text(&actual.stderr)
    );
}

#[test]
fn every_analysis_command_answers_from_the_cluster_as_from_its_manifests() {
    let cluster = Cluster::start("commands");
    // Pages of two: every collection with more objects needs continues.
    for res in Res::ALL {
        cluster.server.set_page_cap(res, Some(2));
    }
    assert_same_from_cluster_and_files(&cluster, &["matrix"], &[]);
    assert_same_from_cluster_and_files(
        &cluster,
        &["matrix"],
        &["--port", "5432", "--output", "json"],
    );
    assert_same_from_cluster_and_files(
        &cluster,
        &["query"],
        &[
            "--from",
            "shop/web-6f8d7c9b5-x2k4p",
            "--to",
            "shop/db-0",
            "--port",
            "5432",
            "--output",
            "json",
        ],
    );
    assert_same_from_cluster_and_files(
        &cluster,
        &["query"],
        &[
            "--from",
            "kube-system/coredns-7db6d8ff4d-5t8fr",
            "--to",
            "shop/db-0",
            "--port",
            "5432",
        ],
    );
    assert_same_from_cluster_and_files(&cluster, &["explain"], &[]);
    assert_same_from_cluster_and_files(&cluster, &["explain"], &["--pod", "shop/db-0"]);
    assert_same_from_cluster_and_files(&cluster, &["compile"], &["--node", "worker-1"]);
    // Lint findings name objects; from files they also carry file:line, so
    // compare what they say about which object.
    let lint = |args: &[&str]| -> Vec<(String, String, String)> {
        let output = netpol_in(&cluster.dir, args);
        let findings: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stderr)));
        findings
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap_or_default().to_string(),
                    f["message"].as_str().unwrap_or_default().to_string(),
                    f["object"].to_string(),
                )
            })
            .collect()
    };
    let dump = cluster.dump();
    let mut from_files = lint(&["lint", dump.to_str().unwrap(), "--output", "json"]);
    let mut from_cluster = lint(&[
        "lint",
        "--kubeconfig",
        &cluster.kubeconfig(),
        "--output",
        "json",
    ]);
    assert!(
        !from_files.is_empty(),
        "the fixtures have findings (NP008 at least)"
    );
    // Findings from files are in file order; without files, in object order.
    from_files.sort();
    from_cluster.sort();
    assert_eq!(from_cluster, from_files);

    // Every kind was listed, and pods took more than one page.
    let requests = cluster.server.requests();
    for res in Res::ALL {
        assert!(
            requests.iter().any(|r| r.res == res && r.is_list_start()),
            "{res:?} was never listed"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r.res == Res::Pods && r.is_list_continue())
    );
    assert!(requests.iter().all(|r| r.param("limit") == Some("500")));
}

#[test]
fn cluster_and_context_flags_find_the_cluster_as_kubectl_does() {
    let cluster = Cluster::start("context");
    // A kubeconfig with a second context that points nowhere.
    let mut kubeconfig = cluster.server.kubeconfig("fake");
    kubeconfig = kubeconfig.replace("current-context: fake", "current-context: broken");
    kubeconfig.push_str("- name: broken\n  context: {cluster: nowhere, user: tester}\n");
    kubeconfig = kubeconfig.replace(
        "clusters:\n",
        "clusters:\n- name: nowhere\n  cluster: {server: \"http://127.0.0.1:1\"}\n",
    );
    let path = cluster.write("two-contexts", &kubeconfig);
    let path = path.to_str().unwrap();

    let ok = netpol_in(
        &cluster.dir,
        &["matrix", "--kubeconfig", path, "--context", "fake"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));

    let broken = netpol_in(&cluster.dir, &["matrix", "--kubeconfig", path]);
    assert_eq!(broken.status.code(), Some(2));
    let message = text(&broken.stderr);
    assert!(
        message.contains("cannot reach http://127.0.0.1:1"),
        "{message}"
    );
    assert!(
        message.contains("kubectl config current-context"),
        "{message}"
    );

    let missing = netpol_in(
        &cluster.dir,
        &["matrix", "--kubeconfig", path, "--context", "prod"],
    );
    assert_eq!(missing.status.code(), Some(2));
    let message = text(&missing.stderr);
    assert!(
        message.contains("no context `prod`") && message.contains("fake, broken"),
        "{message}"
    );

    // --cluster with KUBECONFIG, as kubectl reads it.
    let from_env = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(["matrix", "--cluster"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HOME", &cluster.dir)
        .output()
        .unwrap();
    assert_eq!(
        from_env.status.code(),
        Some(0),
        "{}",
        text(&from_env.stderr)
    );
    assert_eq!(from_env.stdout, ok.stdout);

    // No kubeconfig anywhere and not in a cluster: say so.
    let nothing = netpol_in(&cluster.dir, &["matrix", "--cluster"]);
    assert_eq!(nothing.status.code(), Some(2));
    let message = text(&nothing.stderr);
    assert!(message.contains("no kubeconfig found"), "{message}");

    // Neither manifests nor a cluster: a usage error.
    let neither = netpol_in(&cluster.dir, &["matrix"]);
    assert_eq!(neither.status.code(), Some(2));
    assert!(text(&neither.stderr).contains("--cluster"));
}

#[test]
fn a_forbidden_list_names_the_call_and_the_missing_rbac_verb() {
    let cluster = Cluster::start("forbidden");
    cluster.server.forbid(Res::Pods, None);
    cluster.server.forbid(Res::NetworkPolicies, None);
    let output = netpol_in(
        &cluster.dir,
        &["lint", "--kubeconfig", &cluster.kubeconfig()],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    for expected in [
        "cannot list pods in all namespaces: GET /api/v1/pods?limit=500 failed: 403 Forbidden",
        "User \"system:serviceaccount:kube-system:netpol\" cannot list resource \"pods\" in API group \"\" at the cluster scope",
        "netpol needs RBAC verb `list` on `pods` (API group \"\") cluster-wide",
        "kubectl auth can-i list pods --all-namespaces",
        "cannot list networkpolicies in all namespaces: GET /apis/networking.k8s.io/v1/networkpolicies?limit=500 failed: 403 Forbidden",
        "kubectl auth can-i list networkpolicies.networking.k8s.io --all-namespaces",
        "--namespace",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    assert!(output.stdout.is_empty(), "no partial answer");
}

#[test]
fn a_namespace_scoped_user_reads_their_namespace() {
    let cluster = Cluster::start("namespaced");
    for res in Res::ALL {
        cluster.server.forbid(res, None);
    }
    // The user may read shop, and get the shop Namespace, nothing else.
    let output = netpol_in(
        &cluster.dir,
        &[
            "matrix",
            "--kubeconfig",
            &cluster.kubeconfig(),
            "-n",
            "shop",
            "--port",
            "5432",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(
        table.contains("shop/db-0") && !table.contains("coredns"),
        "{table}"
    );
    let message = text(&output.stderr);
    assert!(message.contains("read namespace shop only"), "{message}");
    let requests = cluster.server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.res == Res::Pods && r.namespace.as_deref() == Some("shop"))
    );
    // The Namespace list was refused, so its labels came from a get.
    assert!(requests.iter().any(|r| r.res == Res::Namespaces && r.get));

    // The same namespace from a dump of only its objects answers the same.
    let items: Vec<Value> = [
        Res::Namespaces,
        Res::Pods,
        Res::Services,
        Res::NetworkPolicies,
    ]
    .into_iter()
    .flat_map(|res| cluster.server.objects(res))
    .filter(|o| o["metadata"]["namespace"] == "shop" || o["metadata"]["name"] == "shop")
    .collect();
    let dump = cluster.write(
        "shop.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    );
    let expected = netpol_in(
        &cluster.dir,
        &["matrix", dump.to_str().unwrap(), "--port", "5432"],
    );
    assert_eq!(text(&expected.stdout), table);
}

#[test]
fn refused_credentials_and_unserved_resources_say_what_to_do() {
    let cluster = Cluster::start("refused");
    cluster.server.require_token("the-right-token");
    let output = netpol_in(
        &cluster.dir,
        &[
            "query",
            "--kubeconfig",
            &cluster.kubeconfig(),
            "--from",
            "shop/db-0",
            "--to",
            "shop/db-0",
            "--port",
            "1",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(message.contains("401 Unauthorized"), "{message}");
    assert!(
        message.contains("log in again or refresh the token"),
        "{message}"
    );

    let cluster = Cluster::start("unserved");
    cluster.server.stop_serving(Res::NetworkPolicies);
    let output = netpol_in(
        &cluster.dir,
        &["matrix", "--kubeconfig", &cluster.kubeconfig()],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(
        message.contains(
            "GET /apis/networking.k8s.io/v1/networkpolicies?limit=500 failed: 404 Not Found"
        ),
        "{message}"
    );
    assert!(message.contains("CRD is not installed"), "{message}");
}

/// The admin tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
/// ClusterNetworkPolicy) are read from the API where their CRDs are
/// installed, and answer as from a manifest holding them; where listing
/// one is forbidden, the read goes on without it and says so.
#[test]
fn admin_tier_policies_are_read_from_the_cluster_where_served() {
    let cluster = Cluster::start("admin");
    for res in Res::ADMIN {
        cluster.server.serve(res);
        // Pages of one: every kind with two objects needs a continue.
        cluster.server.set_page_cap(res, Some(1));
    }
    let subject_db = json!({"pods": {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
        "podSelector": {"matchLabels": {"app": "db"}}}});
    let from_web = json!([{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}}]);
    cluster.server.apply(
        Res::AdminNetworkPolicies,
        json!({"metadata": {"name": "guard-db"},
               "spec": {"priority": 10, "subject": subject_db,
                        "ingress": [{"name": "no-web", "action": "Deny", "from": from_web,
                                     "ports": [{"portNumber": {"protocol": "TCP", "port": 5432}}]}]},
               "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Applied",
                                          "message": "", "lastTransitionTime": "2025-03-06T10:00:00Z"}]}}),
    );
    cluster.server.apply(
        Res::AdminNetworkPolicies,
        json!({"metadata": {"name": "audit"},
               "spec": {"priority": 20, "subject": {"namespaces": {}},
                        "egress": [{"action": "Pass", "to": [{"namespaces": {}}]}]}}),
    );
    cluster.server.apply(
        Res::BaselineAdminNetworkPolicies,
        json!({"metadata": {"name": "default"},
               "spec": {"subject": {"namespaces": {}},
                        "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}}),
    );
    cluster.server.apply(
        Res::ClusterNetworkPolicies,
        json!({"metadata": {"name": "dns"},
               "spec": {"tier": "Admin", "priority": 5, "subject": {"namespaces": {}},
                        "egress": [{"action": "Accept",
                                    "to": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                                    "protocols": [{"udp": {"destinationPort": {"number": 53}}}]}]}}),
    );
    let items: Vec<Value> = [
        Res::Namespaces,
        Res::Pods,
        Res::Services,
        Res::NetworkPolicies,
    ]
    .into_iter()
    .chain(Res::ADMIN)
    .flat_map(|res| cluster.server.objects(res))
    .collect();
    let dump = cluster.write(
        "all.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    );
    let web_to_db = [
        "query",
        "--from",
        "shop/web-6f8d7c9b5-x2k4p",
        "--to",
        "shop/db-0",
        "--port",
        "5432",
    ];
    assert_same_from_cluster_and_file(&cluster, &dump, &web_to_db, &[]);
    assert_same_from_cluster_and_file(&cluster, &dump, &web_to_db, &["--output", "json"]);
    assert_same_from_cluster_and_file(&cluster, &dump, &["explain"], &[]);
    // The admin tier decides, where the NetworkPolicies alone allow.
    let kubeconfig = cluster.kubeconfig();
    let mut args = web_to_db.to_vec();
    args.extend_from_slice(&["--kubeconfig", &kubeconfig]);
    let output = netpol_in(&cluster.dir, &args);
    let answer = text(&output.stdout);
    assert!(
        answer.contains("denied") && answer.contains("guard-db"),
        "{answer}\n{}",
        text(&output.stderr)
    );
    let requests = cluster.server.requests();
    for res in Res::ADMIN {
        assert!(
            requests.iter().any(|r| r.res == res && r.is_list_start()),
            "{res:?} was never listed"
        );
    }
    assert!((requests.iter()).any(|r| r.res == Res::AdminNetworkPolicies && r.is_list_continue()));

    // Forbidden (a user with namespace-scoped rights): read without them, with a note.
    cluster.server.forbid(Res::AdminNetworkPolicies, None);
    let output = netpol_in(&cluster.dir, &args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot list adminnetworkpolicies (forbidden): read without them"),
        "{stderr}"
    );
    assert!(!text(&output.stdout).contains("guard-db"));
}

#[test]
fn diff_against_the_cluster_shows_what_applying_the_change_would_do() {
    let cluster = Cluster::start("diff");
    // The change: db also accepts DNS pods from kube-system.
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-from-web, namespace: shop}\n\
         spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {tier: frontend}}\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}\n    ports: [{port: 5432}]\n";
    let change = cluster.write("change.yaml", policy);
    let kubeconfig = cluster.kubeconfig();
    let diff = |new: &Path, output: &str| {
        netpol_in(
            &cluster.dir,
            &[
                "diff",
                "--kubeconfig",
                &kubeconfig,
                new.to_str().unwrap(),
                "--output",
                output,
            ],
        )
    };
    let output = diff(&change, "json");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // The oracle: the dump before, and the dump with the policy replaced.
    let before = cluster.dump();
    let mut after: Value =
        serde_json::from_str(&std::fs::read_to_string(&before).unwrap()).unwrap();
    after["items"]
        .as_array_mut()
        .unwrap()
        .retain(|o| !(o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "db-from-web"));
    let after = cluster.write("after.yaml", &format!("{after}\n---\n{policy}"));
    let expected = netpol_in(
        &cluster.dir,
        &[
            "diff",
            before.to_str().unwrap(),
            after.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(
        expected.status.code(),
        Some(0),
        "{}",
        text(&expected.stderr)
    );
    assert_eq!(text(&output.stdout), text(&expected.stdout));
    let changes: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(changes["changed"], true);
    assert!(
        changes["added"].to_string().contains("coredns"),
        "{changes:#}"
    );
    assert_eq!(changes["removed"], json!([]));

    // A workload's new pod template reaches its running pods: the template
    // no longer declares the container port `http`, so web-from-anywhere's
    // named port matches nothing on them any more.
    let web = cluster.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
         spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    );
    let output = diff(&web, "json");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let changes: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(changes["appeared"], json!([]), "pods are compared as pods");
    assert_eq!(changes["disappeared"], json!([]));
    assert_eq!(changes["added"], json!([]));
    let removed = changes["removed"].as_array().unwrap();
    assert!(!removed.is_empty());
    for group in removed {
        assert_eq!(group["to"], "shop/web-6f8d7c9b5", "{changes:#}");
        assert_eq!(group["ports"], "TCP 8080", "{changes:#}");
    }

    // The markdown names both sides.
    let markdown = text(&diff(&change, "markdown").stdout);
    assert!(markdown.contains("connection"), "{markdown}");

    // With --cluster, only NEW is given.
    let two = netpol_in(
        &cluster.dir,
        &[
            "diff",
            "--kubeconfig",
            &kubeconfig,
            change.to_str().unwrap(),
            change.to_str().unwrap(),
        ],
    );
    assert_eq!(two.status.code(), Some(2));
    assert!(
        text(&two.stderr).contains("give only NEW"),
        "{}",
        text(&two.stderr)
    );
}

/// Services, EndpointSlices, Nodes, Ingresses and IngressClasses are read
/// from the API too: Service queries and `exposure` answer from the cluster
/// as from the manifests (testdata/services/cluster.yaml), pages included.
#[test]
fn services_nodes_and_ingresses_are_read_from_the_cluster() {
    let cluster = Cluster::start("services");
    let manifests = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/services/cluster.yaml"),
    )
    .expect("testdata/services/cluster.yaml");
    for document in manifests.split("\n---\n") {
        let object: Value = serde_saphyr::from_str(document).expect("a YAML document");
        let res = Res::ALL
            .into_iter()
            .find(|r| object["kind"] == r.kind())
            .unwrap_or_else(|| panic!("no collection for {}", object["kind"]));
        cluster.server.apply(res, object);
    }
    // Pages of one: the two Nodes need a continue.
    for res in Res::ALL {
        cluster.server.set_page_cap(res, Some(1));
    }
    // The oracle: every object the server holds, as one manifest.
    let items: Vec<Value> = Res::ALL
        .into_iter()
        .flat_map(|res| cluster.server.objects(res))
        .collect();
    let dump = cluster.write(
        "all.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    );
    for command in [
        &["exposure", "--output", "json"][..],
        &[
            "query",
            "--from",
            "shop/client",
            "--to",
            "web.shop",
            "--port",
            "http",
            "--output",
            "json",
        ][..],
        &[
            "query",
            "--from",
            "shop/client",
            "--to",
            "service/db/external-db",
            "--port",
            "sql",
        ][..],
    ] {
        assert_same_from_cluster_and_file(&cluster, &dump, command, &[]);
    }
    let kubeconfig = cluster.kubeconfig();
    // The answers depend on what only those kinds say.
    let exposure =
        text(&netpol_in(&cluster.dir, &["exposure", "--kubeconfig", &kubeconfig]).stdout);
    assert!(
        exposure.contains("NodePort 192.168.77.2 (node node-2) TCP 30081"),
        "{exposure}"
    );
    assert!(
        exposure.contains("Ingress shop/shop shop.example.com/api"),
        "{exposure}"
    );
    let requests = cluster.server.requests();
    for res in [
        Res::Nodes,
        Res::EndpointSlices,
        Res::Ingresses,
        Res::IngressClasses,
    ] {
        assert!(
            requests.iter().any(|r| r.res == res && r.is_list_start()),
            "{res:?} was not listed"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r.res == Res::Nodes && r.is_list_continue()),
        "the Nodes were not read in pages"
    );
}

/// Nodes and IngressClasses are context: a user who may not list them
/// still gets answers, with a note saying what is missing.
#[test]
fn forbidden_nodes_are_a_note_not_a_failure() {
    let cluster = Cluster::start("nodes-forbidden");
    cluster.server.forbid(Res::Nodes, None);
    let output = netpol_in(
        &cluster.dir,
        &[
            "matrix",
            "--kubeconfig",
            &cluster.kubeconfig(),
            "--port",
            "80",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let message = text(&output.stderr);
    assert!(
        message.contains("cannot list nodes (forbidden)"),
        "{message}"
    );
}
