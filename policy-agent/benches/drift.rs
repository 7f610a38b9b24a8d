//! What a drift check costs on a large table (needs root and `nft`):
//! node-0000's ruleset from the worst-case 10,000-pod, 10,000-policy
//! cluster (every pod its own class, 110 pods per node), loaded into a
//! network namespace of the benchmark's own.
//!
//! - **unchanged**: `Enforcer::check_drift` when nothing was committed
//!   since the last check: one netlink round trip for the generation id;
//! - **generation_read**: that round trip alone;
//! - **full_list_and_compare**: the check without a generation (as when
//!   netlink is unavailable, and as every check was before): `nft -j list
//!   table` and the comparison;
//! - **after_foreign_transaction**: the check after another program
//!   committed a transaction on another table (not timed): the generation
//!   moved, so it lists and compares, finds the table intact, and keeps the
//!   new generation.
//!
//! Run with `cargo bench -p policy-agent --bench drift` (as root).
//! BENCHMARKS.md records results.

use std::sync::{Mutex, OnceLock};

use divan::Bencher;
use netpol_synth::{Params, load_cluster};
use policy_agent::enforce::{DriftCheck, Enforcer};
use policy_agent::kernel::{Generation, Kernel, NftKernel, Transaction};
use policy_agent::nftgen::GenerationSocket;
use policy_core::{Config, Model};
use policy_nft::runner::Nft;
use policy_nft::{Compiler, NodeRuleset};

// As in the `netpol` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NODE: &str = "node-0000";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // SAFETY: no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || Nft::default().run(&["--version"], "").is_err() {
        eprintln!("drift benchmarks need root and nft");
        std::process::exit(1);
    }
    // A network namespace of our own, before any thread starts: every
    // thread, nft process and netlink socket of this process lives there,
    // and the table goes with the process.
    // SAFETY: plain system call on the only thread.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    divan::main();
}

/// The real kernel without its generation: every check lists.
struct ListingOnly(NftKernel);

impl Kernel for ListingOnly {
    fn apply(&mut self, transaction: &Transaction) -> Result<(), String> {
        self.0.apply(transaction)
    }
    fn list(&mut self) -> Result<Option<String>, String> {
        self.0.list()
    }
    fn remove(&mut self) -> Result<(), String> {
        self.0.remove()
    }
    fn generation(&mut self) -> Generation {
        Generation::Unavailable("benchmark: listing only".into())
    }
}

fn ruleset() -> &'static NodeRuleset {
    static RULESET: OnceLock<NodeRuleset> = OnceLock::new();
    RULESET.get_or_init(|| {
        let cluster = load_cluster(&Params::worst_case(10_000, 10_000));
        let model = Model::new(cluster, Config::default());
        let (ruleset, _) = Compiler::new(&model).expect("compilable").compile(NODE);
        eprintln!(
            "{NODE}: {} peer groups, {} elements",
            ruleset
                .sides
                .iter()
                .map(|side| side.groups.len())
                .sum::<usize>(),
            ruleset.element_count()
        );
        ruleset
    })
}

/// An enforcer that has applied the ruleset, and checked once (so the
/// next check starts from a known generation).
fn enforcer(kernel: Box<dyn Kernel>) -> Enforcer {
    let mut enforcer = Enforcer::new(kernel);
    enforcer.enforce(ruleset().clone()).expect("apply");
    enforcer.check_drift().expect("check");
    enforcer
}

fn with_generation() -> &'static Mutex<Enforcer> {
    static ENFORCER: OnceLock<Mutex<Enforcer>> = OnceLock::new();
    ENFORCER.get_or_init(|| {
        let enforcer = enforcer(Box::new(NftKernel::new(Nft::default())));
        let listing = NftKernel::new(Nft::default()).list().expect("list");
        eprintln!(
            "{NODE}: {} bytes of nft text, {} bytes of `nft -j list table`",
            policy_nft::text::render(ruleset()).len(),
            listing.map_or(0, |l| l.len())
        );
        Mutex::new(enforcer)
    })
}

fn listing_only() -> &'static Mutex<Enforcer> {
    static ENFORCER: OnceLock<Mutex<Enforcer>> = OnceLock::new();
    ENFORCER.get_or_init(|| {
        Mutex::new(enforcer(Box::new(ListingOnly(NftKernel::new(
            Nft::default(),
        )))))
    })
}

/// A drift check of the unchanged table: the generation has not moved.
#[divan::bench(sample_count = 200)]
fn unchanged(bencher: Bencher) {
    let mut enforcer = with_generation().lock().unwrap();
    // Another benchmark's enforcer may have replaced the table since.
    enforcer.check_drift().expect("check");
    bencher.bench_local(|| {
        let check = enforcer.check_drift().expect("check");
        assert_eq!(check, DriftCheck::Skipped);
    });
}

/// One `NFT_MSG_GETGEN` round trip.
#[divan::bench(sample_count = 200)]
fn generation_read(bencher: Bencher) {
    let mut socket = GenerationSocket::open().expect("netlink socket");
    bencher.bench_local(|| socket.read().expect("generation"));
}

/// The check without a generation: list the table and compare.
#[divan::bench(sample_count = 15, sample_size = 1)]
fn full_list_and_compare(bencher: Bencher) {
    let mut enforcer = listing_only().lock().unwrap();
    bencher.bench_local(|| {
        let check = enforcer.check_drift().expect("check");
        assert_eq!(check, DriftCheck::Clean);
    });
}

/// The check after another program's transaction on another table.
#[divan::bench(sample_count = 15, sample_size = 1)]
fn after_foreign_transaction(bencher: Bencher) {
    let mut enforcer = with_generation().lock().unwrap();
    enforcer.check_drift().expect("check");
    let nft = Nft::default();
    bencher
        .with_inputs(|| {
            nft.apply_text("add table inet other\ndelete table inet other\n")
                .expect("foreign transaction");
        })
        .bench_local_values(|()| {
            let check = enforcer.check_drift().expect("check");
            assert_eq!(check, DriftCheck::Clean);
        });
}
