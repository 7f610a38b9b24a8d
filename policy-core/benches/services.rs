//! Service queries and exposure on synthetic clusters from `netpol-synth`,
//! with the model already built (issue 10).
//!
//! Sizes (`netpol_synth::Params` presets, `services: true`, which is their
//! default): a Service per workload, ClusterIP for the application
//! workloads and four infrastructure ones, LoadBalancer (with fixed node
//! ports, no load-balancer address) for the ingress controller. The
//! generator writes no Node, EndpointSlice or Ingress objects.
//! - `1k`: `scale(1_000, 1_000)`;
//! - `10k`: `scale(10_000, 10_000)`.
//!
//! Run with `cargo bench -p policy-core --bench services`; pick one with
//! divan's filter, e.g. `cargo bench -p policy-core --bench services -- exposure`.
//! BENCHMARKS.md at the repository root records results.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use divan::Bencher;
use divan::counter::ItemsCount;
use netpol_synth::{Params, load_cluster};
use policy_core::exposure::{EntryKind, IngressControllers, exposure};
use policy_core::model::ServiceOutcome;
use policy_core::{Config, Model, QueryEndpoint};

fn main() {
    divan::main();
}

const SIZES: &[&str] = &["1k", "10k"];

fn params(size: &str) -> Params {
    let params = match size {
        "1k" => Params::medium(),
        "10k" => Params::large(),
        other => panic!("unknown size {other}"),
    };
    Params {
        services: true,
        ..params
    }
}

/// Everything a benchmark needs, built once per size outside the timings.
struct Fixture {
    model: Model,
    /// The client: the first `gateway` pod of the first application
    /// namespace (egress-isolated by several policies).
    client: QueryEndpoint,
    /// Every port of every Service: `(service, port index)`.
    targets: Vec<(usize, usize)>,
    /// Backends over all of `targets`.
    backends: usize,
}

fn fixture(size: &str) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 2] = [OnceLock::new(), OnceLock::new()];
    let index = SIZES.iter().position(|s| *s == size).expect("known size");
    FIXTURES[index].get_or_init(|| {
        let model = Model::new(load_cluster(&params(size)), Config::default());
        let cluster = model.cluster();
        let client = cluster
            .endpoints
            .iter()
            .position(|e| {
                e.labels.get("app.kubernetes.io/component").is_some_and(|v| v == "gateway")
            })
            .map(QueryEndpoint::Endpoint)
            .expect("a gateway pod");
        let targets: Vec<(usize, usize)> = cluster
            .services
            .iter()
            .enumerate()
            .flat_map(|(id, s)| (0..s.ports.len()).map(move |port| (id, port)))
            .collect();
        let mut backends = 0;
        let mut allowed = 0;
        let mut outcomes = [0usize; 4];
        for &(service, port) in &targets {
            let verdict = model.query_service(client, service, port).unwrap();
            backends += verdict.backends.len();
            allowed += verdict.allowed_count();
            outcomes[match verdict.outcome {
                ServiceOutcome::Allowed => 0,
                ServiceOutcome::Intermittent => 1,
                ServiceOutcome::Denied => 2,
                _ => 3,
            }] += 1;
        }
        let entries = exposure(&model, &IngressControllers::default());
        let node_ports = entries
            .iter()
            .filter(|e| e.via == EntryKind::NodePort)
            .count();
        eprintln!(
            "[{size}] {} pods, {} policies, {} classes, {} Services ({} ports), {} Nodes; \
             client {}: {backends} backends over all Service ports ({:.2} per port), {allowed} allowed; \
             outcomes allowed/intermittent/denied/other {outcomes:?}; \
             exposure: {} entries ({node_ports} NodePort, address {:?}), {} targets",
            cluster.endpoints.len(),
            cluster.policies.len(),
            model.classes().len(),
            cluster.services.len(),
            targets.len(),
            cluster.nodes.len(),
            match client {
                QueryEndpoint::Endpoint(id) => format!(
                    "{}/{}",
                    cluster.endpoints[id].namespace, cluster.endpoints[id].name
                ),
                QueryEndpoint::Address(a) => a.to_string(),
            },
            backends as f64 / targets.len() as f64,
            entries.len(),
            entries
                .iter()
                .find(|e| e.via == EntryKind::NodePort)
                .map(|e| e.address),
            entries.iter().map(|e| e.targets.len()).sum::<usize>(),
        );
        Fixture {
            model,
            client,
            targets,
            backends,
        }
    })
}

/// One client to every port of every Service: `query_service` for each.
/// The items counter is the number of backends asked, so divan's
/// throughput is backends per second.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn query_service_sweep(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher
        .counter(ItemsCount::new(fixture.backends))
        .bench(|| {
            let mut allowed = 0;
            for &(service, port) in &fixture.targets {
                let verdict = fixture
                    .model
                    .query_service(fixture.client, service, port)
                    .unwrap();
                allowed += verdict.allowed_count();
            }
            allowed
        });
}

/// One `query_service`; the Service port changes every iteration (picked in
/// the untimed input step), so each sample is the mean over 64 ports.
#[divan::bench(args = SIZES, sample_count = 200, sample_size = 64, max_time = 10)]
fn query_service(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    let next = AtomicUsize::new(0);
    bencher
        .with_inputs(|| {
            let index = next.fetch_add(1, Ordering::Relaxed) % fixture.targets.len();
            fixture.targets[index]
        })
        .bench_values(|(service, port)| {
            fixture
                .model
                .query_service(fixture.client, service, port)
                .unwrap()
        });
}

/// `service_backends` for every port of every Service: the backend lookup
/// alone, without the policy verdicts.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn service_backends_sweep(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher
        .counter(ItemsCount::new(fixture.backends))
        .bench(|| {
            let mut backends = 0;
            for &(service, port) in &fixture.targets {
                backends += fixture.model.service_backends(service, port).backends.len();
            }
            backends
        });
}

/// `dns_verdict` for the client (kube-system/coredns on UDP and TCP 53).
#[divan::bench(args = SIZES, sample_count = 200, sample_size = 16, max_time = 10)]
fn dns_verdict(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| {
        fixture
            .model
            .dns_verdict(fixture.client, ("kube-system", "coredns"))
    });
}

/// Every entry point of the cluster.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn exposure_all(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| exposure(&fixture.model, &IngressControllers::default()));
}
