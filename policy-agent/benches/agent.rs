//! What the agent costs, in the network-namespace testbed (needs root, `ip`
//! and `nft`):
//!
//! - **plan**: a snapshot of the 10,000-pod, 10,000-policy cluster to
//!   node-0000's ruleset, from typed objects (the Kubernetes source) and
//!   from files (the directory source);
//! - **full resync**: an enforcer that has committed nothing (as after a
//!   restart) replaces the table with node-0000's ruleset;
//! - **incremental apply after one pod changes**: one pod gets a new IP
//!   address (as when it is recreated); the ruleset is recompiled and the
//!   enforcer applies the element delta. Measured for the remote pod that the
//!   node's sets mention most, and for a local pod;
//! - **drift check** of the unchanged table (see also `benches/drift.rs`);
//! - **file change to applied**: the real agent (`policy_agent::run`) on a
//!   directory, with nft in a testbed namespace; one policy file is edited
//!   and `/metrics` is polled until the apply shows.
//!
//! Run with `cargo bench -p policy-agent --bench agent` (as root).
//! `NETPOL_BENCH_ROUNDS` (default 21) sets the repetitions. BENCHMARKS.md
//! records results. `NETPOL_BENCH_PRESET=100k-realistic` (any
//! `netpol-scale --preset` name) runs the typed-object plan, the resync and
//! the one-pod changes on that cluster instead, and skips the directory
//! source's figures.

#[path = "../../policy-nft/tests/testbed/mod.rs"]
mod testbed;

// As in the `netpol` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Moves the calling thread into a network namespace; nft processes it
/// spawns, and threads it creates, start there too, as they would for an
/// agent in the host network namespace of a node (no `ip netns exec`).
fn enter_netns(name: &str) {
    let file = std::fs::File::open(format!("/run/netns/{name}")).expect("netns file");
    // SAFETY: setns on a valid namespace fd affects only this thread.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Applies nothing: isolates the agent's own work (names, diff, render).
struct NoKernel;

impl policy_agent::kernel::Kernel for NoKernel {
    fn apply(&mut self, _: &policy_agent::kernel::Transaction) -> Result<(), String> {
        Ok(())
    }
    fn list(&mut self) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn remove(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn is_real(&self) -> bool {
        false
    }
}

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use netpol_synth::{Params, generate};
use policy_agent::enforce::{Applied, DriftCheck, Enforcer};
use policy_agent::kernel::NftKernel;
use policy_agent::source::{Inputs, ObjectChange, SourceFile};
use policy_agent::{AgentOptions, OnUnreadable, Planner, SourceChoice};
use policy_core::Config;
use policy_core::load::Object;
use policy_nft::NodeRuleset;
use policy_nft::runner::Nft;
use testbed::{Testbed, TestbedSpec};

const NODE: &str = "node-0000";
const PODS_PER_NODE: usize = 110;

/// A pod that joins the cluster as a file of its own.
const NEW_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: newcomer, namespace: default, labels: {app: newcomer}}
spec: {nodeName: node-0001, containers: [{name: c, image: i}]}
status: {podIP: 10.254.0.1}
";

fn rounds() -> usize {
    std::env::var("NETPOL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn report(what: &str, values: &mut [f64], unit: &str) {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    println!(
        "  {what:<58} median {:>9.2} {unit} (min {min:.2}, max {max:.2}, {} runs)",
        median(values),
        values.len()
    );
}

fn params(pods: usize, policies: usize) -> Params {
    Params {
        nodes: pods.div_ceil(PODS_PER_NODE),
        ..Params::scale(pods, policies)
    }
}

/// The typed objects the Kubernetes source would deliver: namespaces, pods
/// and policies.
fn objects(text: &str) -> Vec<Object> {
    text.split("\n---\n")
        .filter_map(|document| {
            let value: serde_json::Value = serde_saphyr::from_str(document).ok()?;
            let object = match value.get("kind")?.as_str()? {
                "Namespace" => Object::Namespace(serde_json::from_value(value).ok()?),
                "Pod" => Object::Pod(serde_json::from_value(value).ok()?),
                "NetworkPolicy" => Object::NetworkPolicy(serde_json::from_value(value).ok()?),
                _ => return None,
            };
            Some(object)
        })
        .collect()
}

/// The pod's IPv4 address, and a copy of the objects where it has `to`.
fn with_pod_ip(objects: &[Object], pod: usize, to: Ipv4Addr) -> Vec<Object> {
    let mut changed = objects.to_vec();
    let Object::Pod(p) = &mut changed[pod] else {
        panic!("not a pod")
    };
    let status = p.status.as_mut().expect("status");
    status.pod_ip = Some(to.to_string());
    status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
        ip: to.to_string(),
    }]);
    changed
}

fn pod_index(objects: &[Object], ip: IpAddr) -> usize {
    objects
        .iter()
        .position(|o| match o {
            Object::Pod(p) => p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(|i| i.parse::<IpAddr>().ok() == Some(ip)),
            _ => false,
        })
        .expect("a pod with that IP")
}

fn pod_node(objects: &[Object], index: usize) -> String {
    let Object::Pod(p) = &objects[index] else {
        panic!("not a pod")
    };
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// How many of the ruleset's peer maps list each address (one per
/// direction and family at most).
fn mentions(ruleset: &NodeRuleset) -> BTreeMap<IpAddr, usize> {
    let mut counts = BTreeMap::new();
    for side in &ruleset.sides {
        for (ip, _) in &side.peer_addresses {
            *counts.entry(*ip).or_insert(0) += 1;
        }
    }
    counts
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !testbed::e2e_available() {
        eprintln!("agent benchmarks need root, ip and nft");
        std::process::exit(1);
    }
    let rounds = rounds();
    let preset = std::env::var("NETPOL_BENCH_PRESET").ok();
    let (what, cluster) = match &preset {
        Some(name) => (
            name.clone(),
            Params::preset(name).expect("a netpol-scale preset name"),
        ),
        None => (
            "10,000 pods / 10,000 policies".into(),
            params(10_000, 10_000),
        ),
    };
    let started = Instant::now();
    let text = generate(&cluster);
    let objects = objects(&text);
    eprintln!(
        "{what}: {} bytes of YAML, {} namespaces/pods/policies as objects, built in {:.1} s",
        text.len(),
        objects.len(),
        started.elapsed().as_secs_f64()
    );

    println!("plan (node {NODE}, {what})");
    let mut planner = Planner::new(NODE, Config::default(), OnUnreadable::KeepLastGood);
    let mut from_objects = Vec::new();
    let mut base = None;
    let plan_rounds = if preset.is_some() { 3 } else { rounds.min(11) };
    for _ in 0..plan_rounds {
        let start = Instant::now();
        let plan = planner
            .plan(Inputs::Objects(objects.iter().cloned().collect()))
            .expect("plan");
        from_objects.push(ms(start.elapsed()));
        assert!(plan.errors.is_empty());
        base = Some(plan.ruleset);
    }
    report(
        "from typed objects (Kubernetes source), incl. clone",
        &mut from_objects,
        "ms",
    );
    if preset.is_none() {
        plan_from_files(&text, rounds);
    }
    let base = base.expect("a ruleset");
    println!(
        "  ruleset: {} peer group chains, {} elements",
        base.group_count(),
        base.element_count()
    );

    let testbed = Testbed::new(&TestbedSpec {
        nodes: vec![NODE.into(), "node-1".into()],
        ..TestbedSpec::default()
    })
    .expect("testbed");
    let netns = testbed.netns(NODE).expect("netns").to_string();
    enter_netns(&netns);
    let kernel = || Box::new(NftKernel::new(Nft::default()));

    println!("full resync (empty enforcer, as after a restart; table present)");
    let mut full = Vec::new();
    let mut full_total = Vec::new();
    for _ in 0..rounds {
        let mut enforcer = Enforcer::new(kernel());
        let start = Instant::now();
        let applied = enforcer.enforce(base.clone()).expect("full apply");
        full_total.push(ms(start.elapsed()));
        let Applied::Transaction { latency, .. } = applied else {
            panic!("nothing applied")
        };
        full.push(ms(latency));
    }
    report("build + apply (nft -j -f)", &mut full, "ms");
    report(
        "with the listing kept for drift checks",
        &mut full_total,
        "ms",
    );

    let mut enforcer = Enforcer::new(kernel());
    enforcer.enforce(base.clone()).expect("full apply");
    let mut drift = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let check = enforcer.check_drift().expect("drift check");
        drift.push(ms(start.elapsed()));
        assert!(matches!(check, DriftCheck::Skipped | DriftCheck::Clean));
    }
    println!("drift check of the unchanged table (generation read; benches/drift.rs has more)");
    report("check", &mut drift, "ms");

    // One pod changes its address.
    let counts = mentions(&base);
    let local: Vec<IpAddr> = base
        .sides
        .iter()
        .flat_map(|side| side.isolated_addresses())
        .collect();
    let remote = counts
        .iter()
        .filter(|(ip, _)| !local.contains(ip))
        .max_by_key(|(_, n)| **n)
        .map(|(ip, n)| (*ip, *n))
        .expect("a remote peer");
    let local_pod = local
        .iter()
        .find(|ip| ip.is_ipv4())
        .copied()
        .expect("a local pod");
    for (what, ip) in [
        (format!("remote pod in {} peer maps", remote.1), remote.0),
        ("local pod".to_string(), local_pod),
    ] {
        let index = pod_index(&objects, ip);
        let changed = with_pod_ip(&objects, index, Ipv4Addr::new(10, 254, 254, 254));
        let changed_pod = changed[index].clone();
        let mut planner = Planner::new(NODE, Config::default(), OnUnreadable::KeepLastGood);
        let before = planner
            .plan(Inputs::Objects(objects.iter().cloned().collect()))
            .expect("plan")
            .ruleset;
        let start = Instant::now();
        let after = planner
            .plan(Inputs::Objects(changed.into_iter().collect()))
            .expect("plan")
            .ruleset;
        let plan_ms = ms(start.elapsed());
        // The Kubernetes source sends the one pod: follow it in place.
        let (mut follow, mut model_update) = (Vec::new(), Vec::new());
        for round in 0..rounds * 2 {
            let pod = if round % 2 == 0 {
                &changed_pod
            } else {
                &objects[index]
            };
            let start = Instant::now();
            let plan = planner
                .plan_changes(vec![ObjectChange::Applied(pod.clone())])
                .expect("plan");
            follow.push(ms(start.elapsed()));
            model_update.push(ms(plan.model_time));
        }
        let mut compute = Vec::new();
        let mut offline = Enforcer::new(Box::new(NoKernel));
        offline.enforce(before.clone()).expect("full");
        for round in 0..rounds * 2 {
            let next = if round % 2 == 0 { &after } else { &before };
            let start = Instant::now();
            offline.enforce(next.clone()).expect("apply");
            compute.push(ms(start.elapsed()));
        }
        let mut enforcer = Enforcer::new(kernel());
        enforcer.enforce(before.clone()).expect("full apply");
        let (mut apply, mut total, mut sizes, mut bytes) = (vec![], vec![], vec![], vec![]);
        for round in 0..rounds * 2 {
            let next = if round % 2 == 0 { &after } else { &before };
            let start = Instant::now();
            let applied = enforcer.enforce(next.clone()).expect("apply");
            total.push(ms(start.elapsed()));
            match applied {
                Applied::Transaction {
                    kind,
                    elements,
                    bytes: b,
                    latency,
                    ..
                } => {
                    assert_eq!(
                        kind,
                        policy_agent::kernel::TransactionKind::Incremental,
                        "{what}: expected an element update"
                    );
                    apply.push(ms(latency));
                    sizes.push(elements as f64);
                    bytes.push(b as f64);
                }
                Applied::Unchanged => panic!("{what}: nothing changed on {NODE}"),
            }
        }
        println!(
            "one pod changes its IP: {what} ({}, on {}); recompiling took {plan_ms:.1} ms",
            ip,
            pod_node(&objects, index)
        );
        report(
            "following the change (Kubernetes source): model update + compile",
            &mut follow,
            "ms",
        );
        report("of which the model update", &mut model_update, "ms");
        report("agent's own work: names, diff, render", &mut compute, "ms");
        report("incremental apply: that + nft -j -f", &mut apply, "ms");
        report("with the listing kept for drift checks", &mut total, "ms");
        report("transaction size", &mut sizes, "elements");
        report("transaction size", &mut bytes, "bytes");
    }
    drop(enforcer);
    if preset.is_none() {
        file_change_to_applied(&testbed, rounds);
    }
}

fn plan_from_files(text: &str, rounds: usize) {
    let mut from_files = Vec::new();
    for _ in 0..3 {
        let mut planner = Planner::new(NODE, Config::default(), OnUnreadable::KeepLastGood);
        let start = Instant::now();
        planner
            .plan(Inputs::Files(vec![SourceFile {
                path: "cluster.yaml".into(),
                text: text.into(),
            }]))
            .expect("plan");
        from_files.push(ms(start.elapsed()));
    }
    report(
        "from files (directory source: YAML parse of every file)",
        &mut from_files,
        "ms",
    );
    // The same cluster as 64 files; one file with one new pod comes and goes.
    let documents: Vec<&str> = text.split("\n---\n").collect();
    let mut files: Vec<SourceFile> = documents
        .chunks(documents.len().div_ceil(64))
        .enumerate()
        .map(|(index, chunk)| SourceFile {
            path: format!("part-{index:02}.yaml"),
            text: chunk.join("\n---\n").into(),
        })
        .collect();
    let mut planner = Planner::new(NODE, Config::default(), OnUnreadable::KeepLastGood);
    planner.plan(Inputs::Files(files.clone())).expect("plan");
    let new_pod = SourceFile {
        path: "zz-new-pod.yaml".into(),
        text: NEW_POD.into(),
    };
    let mut one_file = Vec::new();
    for round in 0..rounds.min(11) * 2 {
        if round % 2 == 0 {
            files.push(new_pod.clone());
        } else {
            files.pop();
        }
        let start = Instant::now();
        let plan = planner.plan(Inputs::Files(files.clone())).expect("plan");
        one_file.push(ms(start.elapsed()));
        assert!(plan.files_parsed <= 1 && plan.errors.is_empty());
    }
    report(
        "from 64 files, one pod file added or removed (the others reused)",
        &mut one_file,
        "ms",
    );
}

fn http_get(address: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_string())
}

fn applies(address: SocketAddr) -> Option<f64> {
    let body = http_get(address, "/metrics")?;
    let total = body
        .lines()
        .filter(|l| l.starts_with("netpol_agent_applies_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(total)
}

/// The real agent, its nft in the testbed's node namespace, on a directory.
fn file_change_to_applied(testbed: &Testbed, rounds: usize) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (index, what, files, node) in [
        (
            "examples/cluster (5 pods, 7 policies)",
            vec![
                (
                    "pods.yaml",
                    std::fs::read_to_string(repo.join("examples/cluster/pods.yaml")).expect("read"),
                ),
                (
                    "policies.yaml",
                    std::fs::read_to_string(repo.join("examples/cluster/policies.yaml"))
                        .expect("read"),
                ),
            ],
            "node-1",
        ),
        (
            "synthetic 1,000 pods / 1,000 policies",
            vec![("cluster.yaml", generate(&params(1_000, 1_000)))],
            NODE,
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, (what, files, node))| (index, what, files, node))
    {
        // Each agent gets its own node namespace and metrics port.
        testbed.clear(node).expect("clear");
        let netns = testbed.netns(node).expect("netns").to_string();
        std::thread::scope(|scope| {
            scope.spawn(|| {
        enter_netns(&netns);
        let dir = std::env::temp_dir().join(format!("netpol-agent-bench-{}-{node}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        // A policy whose port we toggle: every edit changes the ruleset.
        let toggled = |port: u16| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bench-toggle, namespace: bench}}\nspec:\n  podSelector: {{}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 198.51.100.0/24}}}}], ports: [{{port: {port}}}]}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: bench-0, namespace: bench}}\nspec: {{nodeName: {node}, containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: 10.253.0.1}}\n"
            )
        };
        let toggle_path = dir.join("toggle.yaml");
        std::fs::write(&toggle_path, toggled(1000)).expect("write");
        let port = 20000 + (std::process::id() % 20000) as u16 + index as u16;
        let address: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let options = AgentOptions {
            node: node.into(),
            source: SourceChoice::Directory(dir.clone()),
            config: Config::default(),
            on_unreadable: OnUnreadable::KeepLastGood,
            check_interval: Duration::from_secs(3600),
            debounce: Duration::from_millis(100),
            cleanup_on_exit: false,
            dry_run: false,
            listen: Some(address),
            nft: Nft::default(),
            release_memory: None,
        };
        // The agent runs until the process exits.
        std::thread::spawn(move || policy_agent::run(options));
        let ready = Instant::now();
        while applies(address).is_none_or(|n| n < 1.0) {
            assert!(ready.elapsed() < Duration::from_secs(120), "the agent never applied");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut latencies = Vec::new();
        for round in 0..rounds {
            let before = applies(address).expect("metrics");
            let temporary = dir.join(".toggle.tmp");
            std::fs::write(&temporary, toggled(1001 + round as u16)).expect("write");
            let start = Instant::now();
            std::fs::rename(&temporary, &toggle_path).expect("rename");
            while applies(address).is_none_or(|n| n <= before) {
                assert!(start.elapsed() < Duration::from_secs(60), "no apply");
                std::thread::sleep(Duration::from_millis(2));
            }
            latencies.push(ms(start.elapsed()));
        }
        println!("file change to applied: {what} (poll 200 ms, debounce 100 ms)");
        report("rename -> applies_total increments", &mut latencies, "ms");
        // The agent stays (idle) until the process exits; its directory
        // goes now.
        let _ = std::fs::remove_dir_all(&dir);
        });
        });
    }
    std::process::exit(0);
}
