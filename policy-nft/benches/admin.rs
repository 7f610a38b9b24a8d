//! The 10k targets with the admin tiers: the `10k` cluster of the other
//! benchmarks (`scale(10_000, 10_000)` over 91 nodes) plus 1,000
//! AdminNetworkPolicies and the BaselineAdminNetworkPolicy.
//!
//! The ANPs are written as a cluster administrator writes them: each
//! selects a namespace (by `kubernetes.io/metadata.name`) and has two ingress
//! rules (Deny from a second namespace; Pass on TCP 8080 from a third) and
//! two egress rules (Accept to a /16 network on TCP 443; Deny to the pods
//! of a fourth namespace on UDP 53); priorities 0–999, all distinct. The
//! BANP denies ingress from every namespace and accepts egress to
//! `kube-system`. Run with `cargo bench -p policy-nft --bench admin`;
//! BENCHMARKS.md records results, next to the same benchmarks without
//! the tiers (`model`, `compile`).

use std::fmt::Write as _;
use std::sync::OnceLock;

use divan::Bencher;
use netpol_synth::{Params, generate};
use policy_core::{Config, Loader, Model, PortQuery, Protocol, QueryEndpoint};
use policy_nft::Compiler;

fn main() {
    divan::main();
}

const PODS_PER_NODE: usize = 110;
const NODE: &str = "node-0000";
const ADMIN_POLICIES: usize = 1_000;

struct Fixture {
    text: String,
    model: Model,
    pairs: Vec<(QueryEndpoint, QueryEndpoint)>,
}

fn admin_policies(namespaces: &[String]) -> String {
    let n = namespaces.len();
    let mut out = String::new();
    for i in 0..ADMIN_POLICIES {
        let ns = |k: usize| &namespaces[(i + k) % n];
        let _ = write!(
            out,
            "---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: anp-{i:04}}}
spec:
  priority: {i}
  subject: {{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: {subject}}}}}}}
  ingress:
  - {{name: deny-{a}, action: Deny, from: [{{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: {a}}}}}}}]}}
  - {{name: pass-{b}, action: Pass, from: [{{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: {b}}}}}}}], ports: [{{portNumber: {{protocol: TCP, port: 8080}}}}]}}
  egress:
  - {{name: allow-network, action: Allow, to: [{{networks: [10.{octet}.0.0/16]}}], ports: [{{portNumber: {{protocol: TCP, port: 443}}}}]}}
  - {{name: deny-dns-{c}, action: Deny, to: [{{pods: {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {c}}}}}, podSelector: {{}}}}}}], ports: [{{portNumber: {{protocol: UDP, port: 53}}}}]}}
",
            subject = ns(0),
            a = ns(1),
            b = ns(2),
            c = ns(3),
            octet = i % 256,
        );
    }
    out.push_str(
        "---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {name: default-deny, action: Deny, from: [{namespaces: {}}]}
  egress:
  - {name: allow-kube-system, action: Allow, to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]}
",
    );
    out
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let params = Params {
            nodes: 10_000usize.div_ceil(PODS_PER_NODE),
            ..Params::scale(10_000, 10_000)
        };
        let cluster_text = generate(&params);
        let mut loader = Loader::new();
        loader.load_str("synth.yaml", &cluster_text);
        let namespaces: Vec<String> = (loader.finish().cluster.namespaces.iter())
            .map(|n| n.name.clone())
            .collect();
        let text = format!("{cluster_text}\n{}", admin_policies(&namespaces));
        let mut loader = Loader::new();
        loader.load_str("synth.yaml", &text);
        let loaded = loader.finish();
        assert_eq!(
            loaded.cluster.admin_policies.len(),
            ADMIN_POLICIES + 1,
            "{:#?}",
            loaded.diagnostics
        );
        let model = Model::new(loaded.cluster, Config::default());
        let endpoints = model.cluster().endpoints.len();
        let pairs = (0..2_000)
            .map(|k| {
                (
                    QueryEndpoint::Endpoint((k * 7_919) % endpoints),
                    QueryEndpoint::Endpoint((k * 104_729 + 13) % endpoints),
                )
            })
            .collect();
        let compiler = Compiler::new(&model).expect("compilable");
        let (ruleset, _) = compiler.compile(NODE);
        // For timing `nft -f` by hand: NETPOL_WRITE_RULESET=/tmp/admin.nft.
        if let Ok(path) = std::env::var("NETPOL_WRITE_RULESET") {
            std::fs::write(&path, policy_nft::text::render(&ruleset)).expect("write the ruleset");
        }
        eprintln!(
            "[10k + {ADMIN_POLICIES} ANPs + BANP] {} classes; {NODE}: {} peer group chains, {} set/map elements, {} bytes of nft text",
            model.classes().len(),
            ruleset.group_count(),
            ruleset.element_count(),
            policy_nft::text::render(&ruleset).len(),
        );
        Fixture { text, model, pairs }
    })
}

#[divan::bench(sample_count = 10, max_time = 60)]
fn load_yaml(bencher: Bencher) {
    let fixture = fixture();
    bencher.bench(|| {
        let mut loader = Loader::new();
        loader.load_str("synth.yaml", &fixture.text);
        loader.finish()
    });
}

#[divan::bench(sample_count = 20, max_time = 60)]
fn model_and_matrix(bencher: Bencher) {
    let fixture = fixture();
    let cluster = fixture.model.cluster().clone();
    bencher
        .with_inputs(|| cluster.clone())
        .bench_values(|cluster| {
            let model = Model::new(cluster, Config::default());
            let matrix = model.port_matrix(Protocol::Tcp, &PortQuery::Number(80));
            divan::black_box(matrix.class_matrix().count());
            model
        });
}

#[divan::bench(sample_count = 100, sample_size = 64, max_time = 20)]
fn query(bencher: Bencher) {
    let fixture = fixture();
    let mut next = 0;
    bencher.bench_local(|| {
        let (from, to) = fixture.pairs[next % fixture.pairs.len()];
        next += 1;
        fixture
            .model
            .query(from, to, &PortQuery::Number(80), Protocol::Tcp)
            .unwrap()
            .allowed()
    });
}

#[divan::bench(sample_count = 20, max_time = 60)]
fn compile_node(bencher: Bencher) {
    let fixture = fixture();
    let compiler = Compiler::new(&fixture.model).expect("compilable");
    bencher.bench_local(|| compiler.compile(NODE));
}
