//! Kernel-side costs of a compiled ruleset, in the network-namespace testbed
//! of the kernel proof (needs root, `ip` and `nft`):
//!
//! - **load**: `nft -f -` (text) and `nft -j -f -` (JSON) of one node's
//!   ruleset (about 110 pods) from a cluster of 10,000 pods and 10,000
//!   policies, into a fresh node namespace and as a reload over itself;
//! - **connect rate**: TCP connections per second from a pod on one node to a
//!   pod on another, with the two nodes' rulesets compiled from clusters of
//!   10,000 pods and 0, 1,000 and 10,000 policies loaded. The two pods are
//!   the same in every cluster, and with policies both are isolated (egress
//!   at the source, ingress at the destination), so every new connection goes
//!   through both sides' peer maps and group chains. For
//!   reference, two more runs: no `netpol` table at all, and a table that
//!   only accepts established connections (which turns conntrack on, as
//!   kube-proxy does on every real node).
//!
//! Configurations are measured in interleaved rounds so that drift in the
//! machine's load hits them alike; the figure that matters is each round's
//! rate relative to the 0-policy ruleset's in the same round, whose median
//! and quartiles are reported.
//!
//! Run with `cargo bench -p policy-nft --bench kernel` (as root).
//! Environment: `NETPOL_BENCH_ROUNDS` (default 41), `NETPOL_BENCH_CONNECTS`
//! per round (default 2000). BENCHMARKS.md records results.

#[path = "../tests/testbed/mod.rs"]
mod testbed;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use netpol_synth::{Params, load_cluster};
use policy_core::cluster::EndpointId;
use policy_core::{Config, Direction, Model, PortQuery, Protocol, QueryEndpoint};
use policy_nft::Compiler;
use testbed::{PodSpec, Probe, Testbed, TestbedSpec};

const PODS: usize = 10_000;
const PODS_PER_NODE: usize = 110;
/// Ports the synthetic workloads serve; the pair is looked for on these.
const CANDIDATE_PORTS: [u16; 4] = [8080, 9000, 5432, 9090];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn model(policies: usize) -> Model {
    let params = Params {
        nodes: PODS.div_ceil(PODS_PER_NODE),
        ..Params::scale(PODS, policies)
    };
    Model::new(load_cluster(&params), Config::default())
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

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this
    // too, so do the work only when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !testbed::e2e_available() {
        eprintln!("kernel benchmarks need root, ip and nft");
        std::process::exit(1);
    }
    let rounds = env_usize("NETPOL_BENCH_ROUNDS", 41);
    let connects = env_usize("NETPOL_BENCH_CONNECTS", 2000);

    let started = Instant::now();
    let models: Vec<(usize, Model)> = [0, 1_000, 10_000]
        .into_iter()
        .map(|policies| (policies, model(policies)))
        .collect();
    eprintln!(
        "built 3 models of {PODS} pods in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    load_time(&models[2].1, rounds);
    connect_rate(&models, rounds, connects);
}

/// `nft -f` of node-0000's ruleset in the 10k/10k cluster.
fn load_time(model: &Model, rounds: usize) {
    const NODE: &str = "node-0000";
    let compiler = Compiler::new(model).expect("compilable");
    let (ruleset, _) = compiler.compile(NODE);
    let text = policy_nft::text::render(&ruleset);
    let json = policy_nft::json::render_string(&ruleset);
    let local = model
        .cluster()
        .endpoints
        .iter()
        .filter(|e| e.node.as_deref() == Some(NODE))
        .count();
    println!(
        "load: {NODE} of {} pods / {} policies: {local} local pods, {} peer group chains, {} elements, {} bytes text, {} bytes JSON",
        model.cluster().endpoints.len(),
        model.cluster().policies.len(),
        ruleset.group_count(),
        ruleset.element_count(),
        text.len(),
        json.len()
    );
    let testbed = Testbed::new(&TestbedSpec {
        nodes: vec![NODE.into()],
        ..TestbedSpec::default()
    })
    .expect("testbed");
    let time = |args: &[&str], input: &str| {
        let start = Instant::now();
        testbed
            .nft(NODE, args, input)
            .expect("nft accepts the ruleset");
        start.elapsed()
    };
    let (mut fresh_text, mut reload_text, mut fresh_json, mut reload_json, mut check_text) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        testbed.clear(NODE).expect("clear");
        fresh_text.push(ms(time(&["-f", "-"], &text)));
        reload_text.push(ms(time(&["-f", "-"], &text)));
        testbed.clear(NODE).expect("clear");
        fresh_json.push(ms(time(&["-j", "-f", "-"], &json)));
        reload_json.push(ms(time(&["-j", "-f", "-"], &json)));
        check_text.push(ms(time(&["-c", "-f", "-"], &text)));
    }
    for (what, values) in [
        ("nft -f (text), empty node", &mut fresh_text),
        ("nft -f (text), reload", &mut reload_text),
        ("nft -j -f (JSON), empty node", &mut fresh_json),
        ("nft -j -f (JSON), reload", &mut reload_json),
        ("nft -c -f (text), check only", &mut check_text),
    ] {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "  {what:<32} median {:>7.1} ms  (min {min:.1} ms, {rounds} runs)",
            median(values)
        );
    }
}

/// A source and destination pod on different nodes, with a TCP port the
/// model allows between them in every model, both isolated in every model
/// that has policies. Prefers the pair isolated by the most policies in the
/// last model.
fn choose_pair(models: &[(usize, Model)]) -> (EndpointId, EndpointId, u16) {
    let reference = &models.last().expect("models").1;
    let cluster = reference.cluster();
    let same_pod = |model: &Model, id: EndpointId| {
        let (a, b) = (&model.cluster().endpoints[id], &cluster.endpoints[id]);
        a.namespace == b.namespace && a.name == b.name && a.ips == b.ips && a.node == b.node
    };
    let isolated = |model: &Model, id: EndpointId, direction: Direction| {
        !model.policies_selecting(id, direction).is_empty()
    };
    let mut best: Option<(usize, EndpointId, EndpointId, u16)> = None;
    // Candidates: pairs within a namespace (where the synthetic app chain
    // allows traffic), sampled to keep the search short.
    let mut by_namespace: std::collections::BTreeMap<&str, Vec<EndpointId>> = Default::default();
    for (id, endpoint) in cluster.endpoints.iter().enumerate() {
        by_namespace
            .entry(endpoint.namespace.as_str())
            .or_default()
            .push(id);
    }
    for ids in by_namespace.values().take(200) {
        for &from in ids.iter().take(24) {
            for &to in ids.iter().take(24) {
                if cluster.endpoints[from].node == cluster.endpoints[to].node {
                    continue;
                }
                for port in CANDIDATE_PORTS {
                    let ok = models.iter().all(|(policies, model)| {
                        same_pod(model, from)
                            && same_pod(model, to)
                            && model
                                .query(
                                    QueryEndpoint::Endpoint(from),
                                    QueryEndpoint::Endpoint(to),
                                    &PortQuery::Number(port),
                                    Protocol::Tcp,
                                )
                                .is_ok_and(|answer| answer.allowed())
                            && (*policies == 0
                                || (isolated(model, from, Direction::Egress)
                                    && isolated(model, to, Direction::Ingress)))
                    });
                    if !ok {
                        continue;
                    }
                    let weight = reference.policies_selecting(from, Direction::Egress).len()
                        + reference.policies_selecting(to, Direction::Ingress).len();
                    if best.is_none_or(|(w, ..)| weight > w) {
                        best = Some((weight, from, to, port));
                    }
                }
            }
        }
    }
    let (_, from, to, port) = best.expect("an allowed, isolated cross-node pair");
    (from, to, port)
}

fn connect_rate(models: &[(usize, Model)], rounds: usize, connects: usize) {
    let (from, to, port) = choose_pair(models);
    let cluster = models[0].1.cluster();
    let endpoint = |id: EndpointId| &cluster.endpoints[id];
    let node = |id: EndpointId| endpoint(id).node.clone().expect("scheduled");
    let ipv4 = |id: EndpointId| {
        endpoint(id)
            .ips
            .iter()
            .find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .expect("an IPv4 address")
    };
    let nodes = [node(from), node(to)];
    let spec = TestbedSpec {
        nodes: nodes.to_vec(),
        pods: [from, to]
            .into_iter()
            .map(|id| PodSpec {
                name: cluster.endpoint_name(id).to_string(),
                node: node(id),
                ipv4: ipv4(id),
                ipv6: None,
            })
            .collect(),
        tcp_ports: vec![port],
        ..TestbedSpec::default()
    };
    let (from_name, to_name) = (
        cluster.endpoint_name(from).to_string(),
        cluster.endpoint_name(to).to_string(),
    );
    println!(
        "connect rate: {from_name} ({}) -> {to_name} ({}) tcp/{port}, {connects} connections per round, {rounds} rounds",
        nodes[0], nodes[1]
    );

    // Each configuration: the rulesets of both nodes (None: no table).
    // Conntrack is enabled in a namespace only once a rule needs it; this
    // table turns it on and does nothing else. Kubernetes nodes always run
    // conntrack (kube-proxy's NAT), so this, not an empty namespace, is the
    // floor a policy ruleset is compared against.
    let conntrack_only = "table inet netpol\ndelete table inet netpol\ntable inet netpol {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t}\n}\n".to_string();
    let mut configurations: Vec<(String, Option<[String; 2]>)> = vec![
        ("no netpol table".into(), None),
        (
            "conntrack only".into(),
            Some([conntrack_only.clone(), conntrack_only]),
        ),
    ];
    for (policies, model) in models {
        let compiler = Compiler::new(model).expect("compilable");
        let rulesets = nodes.clone().map(|n| compiler.compile(&n).0);
        let chain_elements: Vec<String> = rulesets
            .iter()
            .map(|r| {
                format!(
                    "{}: {} peer group chains, {} elements",
                    r.node,
                    r.group_count(),
                    r.element_count()
                )
            })
            .collect();
        println!(
            "  {policies} policies: {}; source egress-isolated by {}, destination ingress-isolated by {} policies",
            chain_elements.join("; "),
            model.policies_selecting(from, Direction::Egress).len(),
            model.policies_selecting(to, Direction::Ingress).len(),
        );
        configurations.push((
            format!("{policies} policies"),
            Some(rulesets.map(|r| policy_nft::text::render(&r))),
        ));
    }

    // A testbed per configuration, loaded once: no reload (and no freeing
    // of the previous table) happens between measurements.
    let testbeds: Vec<Testbed> = configurations
        .iter()
        .map(|(name, rulesets)| {
            let testbed = Testbed::new(&spec).expect("testbed");
            // Generous timeouts: a lost probe is a failure, not a slow sample.
            testbed.set_probe_timeouts(vec![Duration::from_secs(5)]);
            if let Some(rulesets) = rulesets {
                for (node, ruleset) in nodes.iter().zip(rulesets) {
                    testbed
                        .load(node, ruleset)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
            testbed
        })
        .collect();
    let probes: Vec<Probe> = (0..connects)
        .map(|_| Probe::tcp(&from_name, &to_name, port))
        .collect();
    // Warm up: caches, conntrack, the prober's thread.
    for testbed in &testbeds {
        testbed.probe_all(&probes[..connects.min(500)]);
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut rates = vec![Vec::new(); configurations.len()];
    for round in 0..rounds {
        // Rotate the order so no configuration always runs first.
        for offset in 0..configurations.len() {
            let index = (round + offset) % configurations.len();
            let start = Instant::now();
            let verdicts = testbeds[index].probe_all(&probes);
            let elapsed = start.elapsed();
            let failed = verdicts.iter().filter(|v| !**v).count();
            let name = &configurations[index].0;
            assert_eq!(
                failed, 0,
                "{name}: {failed} of {connects} connections failed"
            );
            rates[index].push(connects as f64 / elapsed.as_secs_f64());
        }
    }
    // Rates drift with the machine's load over a run; each round measures
    // every configuration back to back, so the ratio within a round is the
    // stable figure. Reported: the median and quartiles of those ratios.
    const ZERO_POLICIES: usize = 2;
    let quartiles = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        (at(0.25), median(&mut values.clone()), at(0.75))
    };
    for (index, (name, _)) in configurations.iter().enumerate() {
        let (_, rate, _) = quartiles(rates[index].clone());
        let ratios: Vec<f64> = rates[index]
            .iter()
            .zip(&rates[ZERO_POLICIES])
            .map(|(rate, zero)| rate / zero)
            .collect();
        let (low, ratio, high) = quartiles(ratios);
        println!(
            "  {name:<16} median {rate:>8.0} connections/s; per round vs 0 policies: median {:+.1}% (quartiles {:+.1}%..{:+.1}%)",
            (ratio - 1.0) * 100.0,
            (low - 1.0) * 100.0,
            (high - 1.0) * 100.0,
        );
    }
}
