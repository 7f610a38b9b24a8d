//! Load → model → matrix on synthetic clusters from `netpol-synth`.
//!
//! Sizes (`netpol_synth::Params` presets):
//! - `small`: `scale(100, 100)`: 100 pods, 100 policies;
//! - `1k`: `scale(1_000, 1_000)`;
//! - `10k`: `scale(10_000, 10_000)`.
//!
//! Run with `cargo bench -p policy-core --bench model`; pick a size or phase
//! with divan's filter, e.g. `cargo bench -p policy-core --bench model -- query`.
//! BENCHMARKS.md at the repository root records results.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use divan::Bencher;
use netpol_synth::{Params, generate};
use policy_core::cluster::EndpointId;
use policy_core::{
    Cluster, Config, Direction, Loaded, Loader, Model, PortQuery, Protocol, QueryEndpoint,
};

fn main() {
    divan::main();
}

const SIZES: &[&str] = &["small", "1k", "10k"];

fn params(size: &str) -> Params {
    match size {
        "small" => Params::small(),
        "1k" => Params::medium(),
        "10k" => Params::large(),
        other => panic!("unknown size {other}"),
    }
}

/// Everything a benchmark needs, built once per size outside the timings.
struct Fixture {
    text: String,
    cluster: Cluster,
    model: Model,
    /// Query pairs whose both sides are isolated by several policies.
    pairs: Vec<(QueryEndpoint, QueryEndpoint, PortQuery, Protocol)>,
}

fn load(text: &str) -> Loaded {
    let mut loader = Loader::new();
    loader.load_str("synth.yaml", text);
    loader.finish()
}

fn fixture(size: &str) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = SIZES.iter().position(|s| *s == size).expect("known size");
    FIXTURES[index].get_or_init(|| {
        let text = generate(&params(size));
        let loaded = load(&text);
        assert!(loaded.diagnostics.is_empty(), "synthetic input has diagnostics");
        let cluster = loaded.cluster;
        let model = Model::new(cluster.clone(), Config::default());
        let pairs = query_pairs(&model);
        let policies: usize = pairs
            .iter()
            .map(|(from, to, _, _)| {
                let (QueryEndpoint::Endpoint(from), QueryEndpoint::Endpoint(to)) = (from, to)
                else {
                    return 0;
                };
                model.policies_selecting(*from, Direction::Egress).len()
                    + model.policies_selecting(*to, Direction::Ingress).len()
            })
            .sum();
        let allowed = pairs
            .iter()
            .filter(|(from, to, port, protocol)| {
                model.query(*from, *to, port, *protocol).unwrap().allowed()
            })
            .count();
        eprintln!(
            "[{size}] {} bytes of YAML, {} pods, {} policies, {} classes; {} query pairs, {:.1} policies selecting source (egress) + destination (ingress) per pair, {allowed} allowed",
            text.len(),
            cluster.endpoints.len(),
            cluster.policies.len(),
            model.classes().len(),
            pairs.len(),
            policies as f64 / pairs.len().max(1) as f64,
        );
        Fixture {
            text,
            cluster,
            model,
            pairs,
        }
    })
}

/// Pairs along the app chain and across namespaces: gateway → api (grpc),
/// web → gateway (http), api → db (postgres), prometheus → api (metrics),
/// web → db (denied), gateway → another namespace's api (shared APIs).
fn query_pairs(model: &Model) -> Vec<(QueryEndpoint, QueryEndpoint, PortQuery, Protocol)> {
    let cluster = model.cluster();
    let component = |id: EndpointId| {
        cluster.endpoints[id]
            .labels
            .get("app.kubernetes.io/component")
            .map(|value| value.as_str())
    };
    let mut by_namespace: std::collections::BTreeMap<&str, Vec<EndpointId>> = Default::default();
    for (id, endpoint) in cluster.endpoints.iter().enumerate() {
        by_namespace
            .entry(endpoint.namespace.as_str())
            .or_default()
            .push(id);
    }
    let prometheus = cluster
        .endpoints
        .iter()
        .position(|e| e.name.starts_with("prometheus-"));
    let first = |ids: &[EndpointId], tier: &str, skip: usize| {
        ids.iter()
            .copied()
            .filter(|&id| component(id) == Some(tier))
            .nth(skip)
    };
    let namespaces: Vec<&Vec<EndpointId>> = by_namespace.values().collect();
    let mut pairs = Vec::new();
    let endpoint = QueryEndpoint::Endpoint;
    for (n, ids) in namespaces.iter().enumerate() {
        for skip in 0..2 {
            let (web, gateway, api, db) = (
                first(ids, "web", skip),
                first(ids, "gateway", skip),
                first(ids, "api", skip),
                first(ids, "db", 0),
            );
            let mut push = |from: Option<EndpointId>, to: Option<EndpointId>, port: u16| {
                if let (Some(from), Some(to)) = (from, to) {
                    pairs.push((
                        endpoint(from),
                        endpoint(to),
                        PortQuery::Number(port),
                        Protocol::Tcp,
                    ));
                }
            };
            push(gateway, api, 9000);
            push(web, gateway, 8080);
            push(api, db, 5432);
            push(prometheus, api, 9090);
            push(web, db, 5432);
            let other = namespaces[(n + 1 + skip) % namespaces.len()];
            push(gateway, first(other, "api", 0), 9000);
        }
    }
    pairs
}

/// YAML text → `Loaded` (parse, decode, validate, normalise).
#[divan::bench(args = SIZES, sample_count = 20, max_time = 60)]
fn load_yaml(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| load(&fixture.text));
}

/// `Model::new` on a loaded cluster (the clone it consumes is made outside the timing).
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn model_new(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher
        .with_inputs(|| fixture.cluster.clone())
        .bench_values(|cluster| Model::new(cluster, Config::default()));
}

/// The full truth table for TCP/80 on a built model.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn port_matrix_tcp_80(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| {
        let matrix = fixture
            .model
            .port_matrix(Protocol::Tcp, &PortQuery::Number(80));
        divan::black_box(matrix.class_matrix());
    });
}

/// `Model::new` followed by the TCP/80 truth table: what `netpol matrix` costs after loading.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn model_and_matrix(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher
        .with_inputs(|| fixture.cluster.clone())
        .bench_values(|cluster| {
            let model = Model::new(cluster, Config::default());
            {
                let matrix = model.port_matrix(Protocol::Tcp, &PortQuery::Number(80));
                divan::black_box(matrix.class_matrix());
            }
            model
        });
}

/// One `Model::query` on a built model; the pair changes every iteration
/// (picked in the untimed input step), so each sample is the mean over 64
/// different pairs.
#[divan::bench(args = SIZES, sample_count = 200, sample_size = 64, max_time = 10)]
fn query(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    let next = AtomicUsize::new(0);
    bencher
        .with_inputs(|| {
            let index = next.fetch_add(1, Ordering::Relaxed) % fixture.pairs.len();
            fixture.pairs[index].clone()
        })
        .bench_values(|(from, to, port, protocol)| {
            fixture.model.query(from, to, &port, protocol).unwrap()
        });
}
