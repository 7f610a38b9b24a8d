//! Compiling the model to one node's nftables ruleset, on synthetic clusters
//! from `netpol-synth` with about 110 pods per node (the Kubernetes default
//! pod limit per node):
//! - `1k`: `scale(1_000, 1_000)` over 9 nodes;
//! - `10k`: `scale(10_000, 10_000)` over 91 nodes.
//!
//! Run with `cargo bench -p policy-nft --bench compile`. The fixture prints
//! the compiled node's size (pods, peer groups, set elements, bytes of text and
//! JSON) on stderr. BENCHMARKS.md at the repository root records results.

use std::sync::OnceLock;

use divan::Bencher;
use netpol_synth::{Params, load_cluster};
use policy_core::{Config, Model};
use policy_nft::{Compiler, NodeRuleset};

fn main() {
    divan::main();
}

const SIZES: &[&str] = &["1k", "10k"];

/// Pods per node in the fixtures.
const PODS_PER_NODE: usize = 110;

fn params(size: &str) -> Params {
    let (pods, policies): (usize, usize) = match size {
        "1k" => (1_000, 1_000),
        "10k" => (10_000, 10_000),
        other => panic!("unknown size {other}"),
    };
    Params {
        nodes: pods.div_ceil(PODS_PER_NODE),
        ..Params::scale(pods, policies)
    }
}

/// The node every per-node benchmark compiles.
const NODE: &str = "node-0000";

struct Fixture {
    model: Model,
    ruleset: NodeRuleset,
}

fn fixture(size: &str) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 2] = [OnceLock::new(), OnceLock::new()];
    let index = SIZES.iter().position(|s| *s == size).expect("known size");
    FIXTURES[index].get_or_init(|| {
        let model = Model::new(load_cluster(&params(size)), Config::default());
        let compiler = Compiler::new(&model).expect("compilable");
        let (ruleset, unenforceable) = compiler.compile(NODE);
        assert!(
            unenforceable.without_address.is_empty(),
            "synthetic pods all have addresses"
        );
        let local_pods = model
            .cluster()
            .endpoints
            .iter()
            .filter(|e| e.node.as_deref() == Some(NODE))
            .count();
        let text = policy_nft::text::render(&ruleset);
        let json = policy_nft::json::render_string(&ruleset);
        eprintln!(
            "[{size}] {} pods, {} policies, {} classes; {NODE}: {local_pods} pods, {} peer addresses, {} peer group chains, {} set/map elements, {} bytes of nft text, {} bytes of JSON",
            model.cluster().endpoints.len(),
            model.cluster().policies.len(),
            model.classes().len(),
            ruleset
                .sides
                .iter()
                .map(|side| side.peer_addresses.len())
                .sum::<usize>(),
            ruleset.group_count(),
            ruleset.element_count(),
            text.len(),
            json.len(),
        );
        drop(compiler);
        Fixture { model, ruleset }
    })
}

/// `Compiler::new`: the per-cluster work shared by all nodes.
#[divan::bench(args = SIZES, sample_count = 20, max_time = 30)]
fn compiler_new(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| Compiler::new(&fixture.model).expect("compilable"));
}

/// `Compiler::compile` for one node, the compiler already built.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 30)]
fn compile_node(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    let compiler = Compiler::new(&fixture.model).expect("compilable");
    bencher.bench(|| compiler.compile(NODE));
}

/// What `netpol compile --node` costs after the model is built: a compiler,
/// one node, rendered as nft text.
#[divan::bench(args = SIZES, sample_count = 20, max_time = 30)]
fn compile_node_from_model(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| {
        let compiler = Compiler::new(&fixture.model).expect("compilable");
        let (ruleset, _) = compiler.compile(NODE);
        policy_nft::text::render(&ruleset)
    });
}

/// Rendering the node's ruleset as nft text.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 20)]
fn render_text(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| policy_nft::text::render(&fixture.ruleset));
}

/// Rendering the node's ruleset as libnftables JSON (serialised).
#[divan::bench(args = SIZES, sample_count = 30, max_time = 20)]
fn render_json(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| policy_nft::json::render_string(&fixture.ruleset));
}

/// Every node of the cluster, one compiler: what an operator pays to
/// precompute all rulesets.
#[divan::bench(args = SIZES, sample_count = 10, max_time = 60)]
fn compile_all_nodes(bencher: Bencher, size: &str) {
    let fixture = fixture(size);
    bencher.bench(|| {
        let compiler = Compiler::new(&fixture.model).expect("compilable");
        policy_nft::compile::nodes(&fixture.model)
            .iter()
            .map(|node| compiler.compile(node).0.element_count())
            .sum::<usize>()
    });
}
