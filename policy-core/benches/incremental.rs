//! One cluster event applied in place (`Model::apply`) against a rebuild.
//!
//! Shapes (`netpol_synth::Params`):
//! - `10k`: `scale(10_000, 10_000)`, the realistic mix (replicas share a class);
//! - `10k-worst`: `worst_case(10_000, 10_000)`, every pod its own class;
//! - `100k-worst`: `worst_case(100_000, 100_000)` (setup alone takes minutes:
//!   generating and parsing 254 MiB of YAML).
//!
//! Each event benchmark applies a change and then its inverse, so the model
//! ends where it started: the figures are for **two** events.
//!
//! `cargo bench -p policy-core --bench incremental -- 10k` (sizes by filter).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use divan::Bencher;
use netpol_synth::{Params, load_cluster};
use policy_core::cluster::{Cluster, Endpoint, EndpointKind};
use policy_core::model::Change;
use policy_core::{Config, Model};

fn main() {
    divan::main();
}

const SIZES: &[&str] = &["10k", "10k-worst", "100k-worst"];

fn cluster(size: &str) -> &'static Cluster {
    static CLUSTERS: [OnceLock<Cluster>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = SIZES.iter().position(|s| *s == size).expect("known size");
    CLUSTERS[index].get_or_init(|| {
        load_cluster(&match size {
            "10k" => Params::large(),
            "10k-worst" => Params::worst_case(10_000, 10_000),
            _ => Params::worst_case(100_000, 100_000),
        })
    })
}

/// A fresh model, updated once so its update indexes exist (the agent's
/// steady state).
fn model(size: &str) -> Model {
    let mut model = Model::new(cluster(size).clone(), Config::default());
    let stats = model.apply(vec![Change::UpsertEndpoint(pod(&model).clone())]);
    assert_eq!(stats.rebuilt, None);
    model
}

/// A running pod from the middle of the cluster.
fn pod(model: &Model) -> &Endpoint {
    let endpoints = &model.cluster().endpoints;
    endpoints[endpoints.len() / 2..]
        .iter()
        .find(|e| e.kind == EndpointKind::Pod && !e.ips.is_empty() && !e.host_network)
        .expect("a running pod")
}

fn removal(endpoint: &Endpoint) -> Change {
    Change::RemoveEndpoint {
        namespace: endpoint.namespace.clone(),
        name: endpoint.name.clone(),
        kind: endpoint.kind,
    }
}

const SPARE_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 255, 255, 254));

/// A new pod with labels no other pod has: a new class, evaluated against
/// every rule that can reach it; then removed (its class emptied).
#[divan::bench(args = SIZES, sample_count = 20)]
fn pod_new_class(bencher: Bencher, size: &str) {
    let mut model = model(size);
    let mut added = pod(&model).clone();
    added.name.push_str("-bench");
    added.labels.insert("bench/unique", "yes");
    added.ips = vec![SPARE_ADDRESS];
    let remove = removal(&added);
    bencher.bench_local(|| {
        let stats = model.apply(vec![Change::UpsertEndpoint(added.clone())]);
        debug_assert_eq!(stats.classes_added, 1);
        model.apply(vec![remove.clone()])
    });
}

/// Another replica of an existing pod's class (same labels): joins and
/// leaves the class's member list.
#[divan::bench(args = SIZES, sample_count = 20)]
fn pod_same_class(bencher: Bencher, size: &str) {
    let mut model = model(size);
    let mut added = pod(&model).clone();
    added.name.push_str("-bench");
    added.ips = vec![SPARE_ADDRESS];
    let remove = removal(&added);
    bencher.bench_local(|| {
        let stats = model.apply(vec![Change::UpsertEndpoint(added.clone())]);
        debug_assert_eq!(stats.classes_added, 0);
        model.apply(vec![remove.clone()])
    });
}

/// A pod's address changes (a restart on the same node): same class.
#[divan::bench(args = SIZES, sample_count = 20)]
fn pod_new_address(bencher: Bencher, size: &str) {
    let mut model = model(size);
    let original = pod(&model).clone();
    let mut moved = original.clone();
    moved.ips = vec![SPARE_ADDRESS];
    bencher.bench_local(|| {
        model.apply(vec![Change::UpsertEndpoint(moved.clone())]);
        model.apply(vec![Change::UpsertEndpoint(original.clone())])
    });
}

/// A pod gets a label, then loses it: it leaves its class for a new one
/// and comes back.
#[divan::bench(args = SIZES, sample_count = 20)]
fn pod_relabel(bencher: Bencher, size: &str) {
    let mut model = model(size);
    let original = pod(&model).clone();
    let mut relabelled = original.clone();
    relabelled.labels.insert("bench/unique", "yes");
    bencher.bench_local(|| {
        model.apply(vec![Change::UpsertEndpoint(relabelled.clone())]);
        model.apply(vec![Change::UpsertEndpoint(original.clone())])
    });
}

/// A policy loses its ingress rules (deny all), then gets them back: the
/// policy's rules are recompiled, nothing else.
#[divan::bench(args = SIZES, sample_count = 20)]
fn policy_replace(bencher: Bencher, size: &str) {
    let mut model = model(size);
    let policies = &model.cluster().policies;
    let original = policies[policies.len() / 2..]
        .iter()
        .find(|p| p.ingress.as_ref().is_some_and(|rules| !rules.is_empty()))
        .expect("a policy with ingress rules")
        .clone();
    let mut denying = original.clone();
    denying.ingress = Some(Vec::new());
    bencher.bench_local(|| {
        let stats = model.apply(vec![Change::UpsertPolicy(denying.clone())]);
        debug_assert_eq!(stats.rebuilt, None);
        model.apply(vec![Change::UpsertPolicy(original.clone())])
    });
}

/// What each event cost before: a fresh model of the whole cluster.
#[divan::bench(args = SIZES, sample_count = 5)]
fn rebuild(bencher: Bencher, size: &str) {
    let cluster = cluster(size);
    bencher
        .with_inputs(|| cluster.clone())
        .bench_local_values(|cluster| Model::new(cluster, Config::default()));
}
