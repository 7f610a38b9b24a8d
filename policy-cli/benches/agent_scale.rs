//! The agent at scale with the Kubernetes source: the real `netpol agent`
//! in its own process, reading a synthetic cluster from the `kube-fake` API
//! server on loopback, as a DaemonSet pod reads the API server.
//!
//! `cargo bench -p policy-cli --bench agent_scale` (about 5 minutes at 100k).
//! `NETPOL_SCALE_PRESET` picks the cluster (default `100k-realistic`; any
//! name of `netpol-scale generate --preset`), `NETPOL_SCALE_CHURN_SECONDS`
//! the length of the sustained phase (default 60).
//!
//! The agent runs with `--dry-run` (it prints its transactions to
//! /dev/null), so this machine's own tables are never touched. With
//! `NETPOL_SCALE_APPLY=1` (root, `ip` and `nft`) it applies them for real
//! instead, in a network namespace of its own: its API connections are
//! forwarded to the fake server on the host's loopback, and "applied" is
//! the kernel's commit. Measured:
//!
//! - the agent's resident memory after its initial sync, and at the end;
//! - one pod or policy event, from the API server's write until the agent
//!   has planned it (`netpol_agent_snapshots_total` moves) and until the
//!   kernel enforces the result (`netpol_agent_last_sync_timestamp_seconds`
//!   moves: after the apply, or when there was nothing to change), and the
//!   agent's own `planned_ms`;
//! - 100 pod events per second for a minute: the agent's CPU time over the
//!   wall time, and afterwards its model and ruleset sizes compared with a
//!   fresh compile of the server's final objects.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_fake::{FakeApiServer, Res};
use policy_core::yaml::{Node, Value as Yaml, for_each_document};
use policy_core::{Config, Loader, Model};
use policy_nft::Compiler;
use serde_json::{Value, json};

const NODE: &str = "node-0000";

fn to_json(node: &Node) -> Value {
    match &node.value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Int(i) => json!(i),
        Yaml::UInt(u) => json!(u),
        Yaml::Float(f) => json!(f),
        Yaml::String(s) => json!(s),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(entries) => Value::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}

fn res_of(kind: &str) -> Option<Res> {
    match kind {
        "Namespace" => Some(Res::Namespaces),
        "Pod" => Some(Res::Pods),
        "NetworkPolicy" => Some(Res::NetworkPolicies),
        "Node" => Some(Res::Nodes),
        _ => None,
    }
}

fn http_get(address: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_string())
}

/// The sum of a metric's samples.
fn metric(address: SocketAddr, name: &str) -> Option<f64> {
    let body = http_get(address, "/metrics")?;
    let values: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .expect("field")
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User plus system CPU time of a process.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Agent {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Agent {
    fn snapshots(&self) -> f64 {
        metric(self.metrics, "netpol_agent_snapshots_total").unwrap_or(0.0)
    }

    /// When the kernel last became what the agent planned (an apply, or
    /// nothing to change).
    fn last_sync(&self) -> f64 {
        metric(self.metrics, "netpol_agent_last_sync_timestamp_seconds").unwrap_or(0.0)
    }

    /// `planned_ms` of every planning logged so far.
    fn planned_ms(&self) -> Vec<f64> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let at = line.find("planned_ms=")?;
                line[at + "planned_ms=".len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Waits until the agent has planned `count` batches, then until it is
    /// quiet for `quiet`.
    fn settle(&self, quiet: Duration) {
        let mut last = self.snapshots();
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.snapshots();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace for the agent (`NETPOL_SCALE_APPLY=1`), deleted on
/// drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Netns {
        let name = format!("netpol-scale-{}", std::process::id());
        let run = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("ip");
            assert!(status.success(), "ip {args:?}");
        };
        run(&["netns", "add", &name]);
        run(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Moves the calling thread into the namespace (or back, with `file`).
    fn enter_file(file: &std::fs::File) {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    fn file(&self) -> std::fs::File {
        std::fs::File::open(format!("/run/netns/{}", self.name)).expect("netns file")
    }

    /// Forwards `127.0.0.1:port` inside the namespace to the same port on
    /// the host's loopback (the fake API server). A socket stays in the
    /// namespace it was made in, so the listener is made inside and each
    /// upstream connection outside.
    fn forward(&self, port: u16) {
        let host = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        let inside = self.file();
        std::thread::spawn(move || {
            Netns::enter_file(&inside);
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind inside");
            Netns::enter_file(&host);
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pipe(upstream, client);
            }
        });
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A copy of `pod` named `name`, with address `ip`.
fn pod_copy(pod: &Value, name: &str, ip: &str) -> Value {
    let mut pod = pod.clone();
    pod["metadata"]["name"] = json!(name);
    pod["status"]["podIP"] = json!(ip);
    pod["status"]["podIPs"] = json!([{"ip": ip}]);
    pod
}

fn main() {
    let preset = std::env::var("NETPOL_SCALE_PRESET").unwrap_or_else(|_| "100k-realistic".into());
    let churn_seconds: u64 = std::env::var("NETPOL_SCALE_CHURN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let params = netpol_synth::Params::preset(&preset).expect("a preset name");
    let started = Instant::now();
    let text = netpol_synth::generate(&params);
    let mut objects: Vec<(Res, Value)> = Vec::new();
    for_each_document(&text, |document| {
        let value = to_json(&document.expect("generated YAML parses"));
        if let Some(res) = value["kind"].as_str().and_then(res_of) {
            objects.push((res, value));
        }
    });
    drop(text);
    println!(
        "{preset}: {} namespaces, pods, policies and nodes, generated in {:.1} s",
        objects.len(),
        started.elapsed().as_secs_f64()
    );

    // The server runs on its own thread's runtime; its methods are sync.
    let (server_tx, server_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            server_tx.send(FakeApiServer::start_empty().await).unwrap();
            std::future::pending::<()>().await
        })
    });
    let server = server_rx.recv().expect("server");
    let pods: Vec<Value> = (objects.iter())
        .filter(|(res, _)| *res == Res::Pods)
        .map(|(_, v)| v.clone())
        .collect();
    let policies: Vec<Value> = (objects.iter())
        .filter(|(res, _)| *res == Res::NetworkPolicies)
        .map(|(_, v)| v.clone())
        .collect();
    for res in [Res::Namespaces, Res::Pods, Res::NetworkPolicies, Res::Nodes] {
        let of_res: Vec<Value> = (objects.iter())
            .filter(|(r, _)| *r == res)
            .map(|(_, v)| v.clone())
            .collect();
        server.preload(res, of_res);
    }
    drop(objects);

    let directory = std::env::temp_dir().join(format!("netpol-agent-scale-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let kubeconfig = directory.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("fake")).unwrap();
    let log = directory.join("agent.log");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let metrics: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let netns = (std::env::var("NETPOL_SCALE_APPLY").as_deref() == Ok("1")).then(Netns::create);
    let mut command = match &netns {
        Some(netns) => {
            let api_port: u16 = (server.kubeconfig("fake").split("http://127.0.0.1:"))
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|port| port.parse().ok())
                .expect("the fake server's port");
            netns.forward(api_port);
            // From here on this thread polls the agent's metrics inside.
            Netns::enter_file(&netns.file());
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &netns.name])
                .arg(env!("CARGO_BIN_EXE_netpol"))
                .args(["agent", "--node", NODE]);
            command
        }
        None => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_netpol"));
            command.args(["agent", "--node", NODE, "--dry-run"]);
            command
        }
    };
    println!(
        "agent: {}",
        if netns.is_some() {
            "applying with nft, in a network namespace of its own"
        } else {
            "--dry-run"
        }
    );
    let started = Instant::now();
    let child = command
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", &metrics.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("netpol agent");
    let agent = Agent {
        child,
        metrics,
        log: log.clone(),
    };
    let pid = agent.child.id();
    wait_for("the initial sync", Duration::from_secs(600), || {
        agent.snapshots() >= 1.0
    });
    let synced_in = started.elapsed();
    agent.settle(Duration::from_secs(2));
    let (rss, hwm) = memory(pid);
    println!(
        "initial sync: {:.1} s from start (list, load, model, compile); planned in {:?} ms",
        synced_in.as_secs_f64(),
        agent.planned_ms()
    );
    println!("after sync: RSS {rss:.0} MiB, peak {hwm:.0} MiB");

    // One event at a time.
    let on_node = |pod: &&Value| pod["spec"]["nodeName"] == NODE;
    let local = pods
        .iter()
        .find(on_node)
        .expect("a pod on the node")
        .clone();
    let remote = pods
        .iter()
        .find(|p| !on_node(p))
        .expect("a remote pod")
        .clone();
    let policy = policies[policies.len() / 2].clone();
    let namespace = |v: &Value| v["metadata"]["namespace"].as_str().unwrap().to_string();
    let name = |v: &Value| v["metadata"]["name"].as_str().unwrap().to_string();
    let rounds = 11;
    type Event<'a> = Box<dyn Fn(usize) + 'a>;
    let events: Vec<(&str, Event)> = vec![
        (
            "a remote pod changes its IP",
            Box::new(|round| {
                let ip = if round % 2 == 0 {
                    "10.254.0.1".to_string()
                } else {
                    remote["status"]["podIP"].as_str().unwrap().to_string()
                };
                server.apply(Res::Pods, pod_copy(&remote, &name(&remote), &ip));
            }),
        ),
        (
            "a replica comes (and goes) on another node",
            Box::new(|round| {
                if round % 2 == 0 {
                    server.apply(Res::Pods, pod_copy(&remote, "scale-replica", "10.254.0.2"));
                } else {
                    server.delete(Res::Pods, &namespace(&remote), "scale-replica");
                }
            }),
        ),
        (
            "a replica comes (and goes) on this node",
            Box::new(|round| {
                if round % 2 == 0 {
                    server.apply(Res::Pods, pod_copy(&local, "scale-local", "10.254.0.3"));
                } else {
                    server.delete(Res::Pods, &namespace(&local), "scale-local");
                }
            }),
        ),
        (
            "a pod with new labels (a new class) comes and goes",
            Box::new(|round| {
                if round % 2 == 0 {
                    let mut pod = pod_copy(&remote, "scale-new-class", "10.254.0.4");
                    pod["metadata"]["labels"]["scale-bench"] = json!("unique");
                    server.apply(Res::Pods, pod);
                } else {
                    server.delete(Res::Pods, &namespace(&remote), "scale-new-class");
                }
            }),
        ),
        (
            "a policy changes (and changes back)",
            Box::new(|round| {
                let mut changed = policy.clone();
                if round % 2 == 0 {
                    changed["metadata"]["labels"] = json!({"scale-bench": "touched"});
                    changed["spec"]["ingress"] = json!([{"ports": [{"port": 4242}]}]);
                }
                server.apply(Res::NetworkPolicies, changed);
            }),
        ),
    ];
    for (what, event) in &events {
        let (mut to_planned, mut to_applied) = (Vec::new(), Vec::new());
        let logged_before = agent.planned_ms().len();
        for round in 0..rounds * 2 {
            // After a quiet spell (the default debounce is 100 ms), so the
            // source sends the change at once.
            std::thread::sleep(Duration::from_millis(150));
            let (before, synced_before) = (agent.snapshots(), agent.last_sync());
            let start = Instant::now();
            event(round);
            wait_for(what, Duration::from_secs(60), || agent.snapshots() > before);
            to_planned.push(start.elapsed().as_secs_f64() * 1e3);
            wait_for(what, Duration::from_secs(60), || {
                agent.last_sync() != synced_before
            });
            to_applied.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let mut planned: Vec<f64> = agent.planned_ms()[logged_before..].to_vec();
        println!(
            "{what}: write to planned {:.1} ms, to enforced {:.1} ms ({}) median (of {}), agent's planned_ms {:.0} median",
            median(&mut to_planned),
            median(&mut to_applied),
            if netns.is_some() { "nft" } else { "dry run" },
            to_planned.len(),
            if planned.is_empty() {
                f64::NAN
            } else {
                median(&mut planned)
            },
        );
    }
    let (rss, hwm) = memory(pid);
    println!("after single events: RSS {rss:.0} MiB, peak {hwm:.0} MiB");

    // 100 events per second: pods replaced (a rollout) and pods moving.
    let movers: Vec<&Value> = pods
        .iter()
        .filter(|p| !on_node(p))
        .step_by(97)
        .take(500)
        .collect();
    let cpu_before = cpu_time(pid);
    let batches_before = agent.snapshots();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut replicas: std::collections::VecDeque<(String, String)> = Default::default();
    let interval = Duration::from_millis(10);
    while start.elapsed() < Duration::from_secs(churn_seconds) {
        let pod = movers[sent as usize % movers.len()];
        match sent % 3 {
            0 => {
                let ip = format!("10.253.{}.{}", (sent / 250) % 250, sent % 250);
                server.apply(Res::Pods, pod_copy(pod, &name(pod), &ip));
            }
            1 => {
                let replica = format!("churn-{sent}");
                let ip = format!("10.252.{}.{}", (sent / 250) % 250, sent % 250);
                server.apply(Res::Pods, pod_copy(pod, &replica, &ip));
                replicas.push_back((namespace(pod), replica));
            }
            _ => {
                if replicas.len() > 50 {
                    let (namespace, name) = replicas.pop_front().unwrap();
                    server.delete(Res::Pods, &namespace, &name);
                } else {
                    server.apply(Res::Pods, pod_copy(pod, &name(pod), "10.251.0.1"));
                }
            }
        }
        sent += 1;
        let next = start + interval * sent as u32;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wall = start.elapsed();
    agent.settle(Duration::from_secs(3));
    let cpu = cpu_time(pid) - cpu_before;
    let batches = agent.snapshots() - batches_before;
    println!(
        "sustained: {sent} events in {:.1} s ({:.0}/s), {batches} batches planned; agent CPU {:.2} s = {:.1}% of one core",
        wall.as_secs_f64(),
        sent as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );

    // The agent's final state against a fresh compile of the server's objects.
    let mut loader = Loader::new();
    for res in [Res::Namespaces, Res::Pods, Res::NetworkPolicies, Res::Nodes] {
        for value in server.objects(res) {
            let object: policy_core::load::Object = match res {
                Res::Namespaces => {
                    policy_core::load::Object::Namespace(serde_json::from_value(value).unwrap())
                }
                Res::Pods => policy_core::load::Object::Pod(serde_json::from_value(value).unwrap()),
                Res::NetworkPolicies => {
                    policy_core::load::Object::NetworkPolicy(serde_json::from_value(value).unwrap())
                }
                _ => policy_core::load::Object::Node(serde_json::from_value(value).unwrap()),
            };
            loader.add(object);
        }
    }
    let loaded = loader.finish();
    let model = Model::new(loaded.cluster, Config::default());
    let (fresh, _) = Compiler::new(&model).expect("compiler").compile(NODE);
    let agent_elements = metric(metrics, "netpol_agent_ruleset_elements").unwrap();
    let agent_chains = metric(metrics, "netpol_agent_ruleset_chains").unwrap();
    let agent_endpoints = metric(metrics, "netpol_agent_model_endpoints").unwrap();
    let agent_policies = metric(metrics, "netpol_agent_model_policies").unwrap();
    let fresh_sizes = (
        fresh.element_count() as f64,
        fresh.group_count() as f64,
        model.cluster().endpoints.len() as f64,
        model.cluster().policies.len() as f64,
    );
    println!(
        "final state: agent {agent_elements} elements, {agent_chains} chains, {agent_endpoints} endpoints, {agent_policies} policies; fresh compile {fresh_sizes:?}"
    );
    assert_eq!(
        (
            agent_elements,
            agent_chains,
            agent_endpoints,
            agent_policies
        ),
        fresh_sizes,
        "the agent's final state differs from a fresh compile"
    );
    let errors = metric(metrics, "netpol_agent_errors_total").unwrap_or(0.0);
    println!("agent errors: {errors}");
    let (rss, hwm) = memory(pid);
    println!("at the end: RSS {rss:.0} MiB, peak {hwm:.0} MiB");
    let log_tail: Vec<String> = BufReader::new(std::fs::File::open(&log).unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(5)
        .collect();
    if !log_tail.is_empty() {
        println!("agent warnings: {log_tail:#?}");
    }
    drop(agent);
    let _ = std::fs::remove_dir_all(&directory);
}
