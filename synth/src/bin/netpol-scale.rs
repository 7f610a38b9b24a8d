//! `netpol-scale`: phase timings and peak memory of netpol on a synthetic cluster.
//!
//! ```text
//! netpol-scale generate (--pods N --policies N [--shape realistic|worst-case] | --preset NAME) [--nodes N] [--format yaml|kubectl-json|kubectl-yaml] [--seed S] --out FILE
//! netpol-scale run FILE [--port 80] [--count] [--breakdown] [--repeat N]
//! netpol-scale all --pods N --policies N [--seed S] [--port 80] [--count] [--breakdown] [--repeat N]
//! ```
//!
//! `run` does what `netpol matrix` will do: read the file, load it, build the
//! model, compute the truth table for one TCP port. It prints, per phase, the
//! wall time, the peak of live heap bytes during the phase (a counting
//! allocator) and the process's resident memory (`VmRSS`) and peak resident
//! memory so far (`VmHWM`, from /proc/self/status). `--count` adds the
//! endpoint-level count of allowed pairs (n² lookups); `--breakdown` first
//! times the parse alone (the first step of `load`); `--repeat N` builds
//! the model and matrix N times (later rounds are warm). `all` generates in
//! process first, so its peak includes the generator's text.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use netpol_synth::{Format, Params, generate_in};
use policy_core::{Config, Loader, Model, PortQuery, Protocol};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(pointer, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs one phase and prints its line.
fn phase<T>(name: &str, work: impl FnOnce() -> T) -> T {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let result = work();
    let elapsed = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed);
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "{name:<10} {:>10.1} ms   heap live {:>8.1} MiB (phase peak {:>8.1} MiB, +{:.1})   VmRSS {:>8.1} MiB   VmHWM {:>8.1} MiB",
        elapsed.as_secs_f64() * 1e3,
        after as f64 / MIB,
        peak as f64 / MIB,
        (peak.saturating_sub(before)) as f64 / MIB,
        status_kib("VmRSS").unwrap_or(0) as f64 / 1024.0,
        status_kib("VmHWM").unwrap_or(0) as f64 / 1024.0,
    );
    result
}

struct Options {
    pods: usize,
    policies: usize,
    seed: Option<u64>,
    out: Option<String>,
    input: Option<String>,
    port: u16,
    count: bool,
    breakdown: bool,
    repeat: usize,
    worst_case: bool,
    preset: Option<String>,
    nodes: Option<usize>,
    format: Format,
}

fn usage() -> ! {
    eprintln!(
        "usage:\n  netpol-scale generate (--pods N --policies N [--shape realistic|worst-case] | --preset NAME) [--nodes N] [--format yaml|kubectl-json|kubectl-yaml] [--seed S] --out FILE\n  netpol-scale run FILE [--port 80] [--count] [--breakdown] [--repeat N]\n  netpol-scale all --pods N --policies N [--seed S] [--port 80] [--count] [--breakdown] [--repeat N]"
    );
    std::process::exit(2);
}

fn parse(args: &[String]) -> Options {
    let mut options = Options {
        pods: 10_000,
        policies: 10_000,
        seed: None,
        out: None,
        input: None,
        port: 80,
        count: false,
        breakdown: false,
        repeat: 1,
        worst_case: false,
        preset: None,
        nodes: None,
        format: Format::Yaml,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().cloned().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--pods" => options.pods = value().parse().unwrap_or_else(|_| usage()),
            "--policies" => options.policies = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => options.seed = Some(value().parse().unwrap_or_else(|_| usage())),
            "--out" => options.out = Some(value()),
            "--port" => options.port = value().parse().unwrap_or_else(|_| usage()),
            "--count" => options.count = true,
            "--shape" => {
                options.worst_case = match value().as_str() {
                    "worst-case" => true,
                    "realistic" => false,
                    _ => usage(),
                }
            }
            "--preset" => options.preset = Some(value()),
            "--nodes" => options.nodes = Some(value().parse().unwrap_or_else(|_| usage())),
            "--format" => options.format = Format::from_name(&value()).unwrap_or_else(|| usage()),
            "--breakdown" => options.breakdown = true,
            "--repeat" => options.repeat = value().parse().unwrap_or_else(|_| usage()),
            other if !other.starts_with('-') && options.input.is_none() => {
                options.input = Some(other.to_string())
            }
            _ => usage(),
        }
    }
    options
}

fn params(options: &Options) -> Params {
    let params = if let Some(name) = &options.preset {
        Params::preset(name).unwrap_or_else(|| {
            eprintln!(
                "unknown preset `{name}`: expected one of {}",
                netpol_synth::PRESETS.join(", ")
            );
            std::process::exit(2)
        })
    } else if options.worst_case {
        Params::worst_case(options.pods, options.policies)
    } else {
        Params::scale(options.pods, options.policies)
    };
    let params = match options.nodes {
        Some(nodes) => Params { nodes, ..params },
        None => params,
    };
    match options.seed {
        Some(seed) => params.with_seed(seed),
        None => params,
    }
}

fn describe(params: &Params) {
    let counts = params.expected();
    println!(
        "params: {} app namespaces x {} workloads x {} replicas (+{} extra), {} nodes, seed {:#x}",
        params.namespaces,
        params.workloads_per_namespace,
        params.replicas,
        params.extra_replicas,
        params.nodes,
        params.seed
    );
    println!(
        "objects: {} namespaces, {} pods, {} deployments, {} statefulsets, {} services, {} policies",
        counts.namespaces,
        counts.pods,
        counts.deployments,
        counts.statefulsets,
        counts.services,
        counts.policies
    );
}

fn analyse(text: String, options: &Options) {
    if options.breakdown {
        // The parse alone (text to spanned trees), which `load` also does.
        let documents = phase("parse-only", || policy_core::yaml::parse_documents(&text));
        println!("parsed: {} documents", documents.len());
        phase("drop-trees", || drop(documents));
    }
    let loaded = phase("load", || {
        let mut loader = Loader::new();
        loader.load_str("input.yaml", &text);
        loader.finish()
    });
    println!(
        "loaded: {} endpoints, {} policies, {} diagnostics",
        loaded.cluster.endpoints.len(),
        loaded.cluster.policies.len(),
        loaded.diagnostics.len()
    );
    phase("drop-text", || drop(text));
    let query = PortQuery::Number(options.port);
    // Later rounds rebuild from a copy of the cluster, to compare a fresh
    // process's first build with warm ones (as in the divan benchmarks).
    let spare = (options.repeat > 1).then(|| loaded.cluster.clone());
    let mut cluster = Some(loaded.cluster);
    for round in 0..options.repeat {
        let input = match cluster.take() {
            Some(first) => first,
            None => spare.clone().expect("a spare cluster for repeats"),
        };
        let model = phase("model", || Model::new(input, Config::default()));
        let matrix = phase("matrix", || model.port_matrix(Protocol::Tcp, &query));
        if round == 0 {
            println!("model: {} classes", model.classes().len());
            let classes = model.classes().len();
            let m = matrix.class_matrix();
            let class_allowed: usize = (0..classes)
                .map(|s| (0..classes).filter(|&d| m.get(s, d)).count())
                .sum();
            println!(
                "matrix: TCP/{}, {class_allowed} of {} class pairs allowed",
                options.port,
                classes.pow(2)
            );
            if options.count {
                let allowed = phase("count", || matrix.count_allowed());
                let endpoints = model.cluster().endpoints.len();
                println!(
                    "count: {allowed} of {} ordered endpoint pairs allowed",
                    endpoints * (endpoints - 1)
                );
            }
        }
        drop(matrix);
        phase("drop-model", || drop(model));
    }
    println!(
        "peak: VmHWM {:.1} MiB (whole process)",
        status_kib("VmHWM").unwrap_or(0) as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        usage()
    };
    let options = parse(rest);
    println!(
        "start: VmRSS {:.1} MiB",
        status_kib("VmRSS").unwrap_or(0) as f64 / 1024.0
    );
    match command.as_str() {
        "generate" => {
            let params = params(&options);
            describe(&params);
            let Some(out) = &options.out else { usage() };
            let (text, summary) = phase("generate", || generate_in(&params, options.format));
            println!("policy mix: {:?}", summary.policies_by_kind);
            std::fs::write(out, &text).unwrap_or_else(|error| {
                eprintln!("cannot write {out}: {error}");
                std::process::exit(1)
            });
            println!("wrote {out}: {:.1} MiB", summary.bytes as f64 / MIB);
        }
        "run" => {
            let Some(input) = &options.input else { usage() };
            let text = phase("read", || {
                std::fs::read_to_string(input).unwrap_or_else(|error| {
                    eprintln!("cannot read {input}: {error}");
                    std::process::exit(1)
                })
            });
            println!("input: {input}, {:.1} MiB", text.len() as f64 / MIB);
            analyse(text, &options);
        }
        "all" => {
            let params = params(&options);
            describe(&params);
            let (text, summary) = phase("generate", || generate_in(&params, options.format));
            println!("policy mix: {:?}", summary.policies_by_kind);
            println!("text: {:.1} MiB", summary.bytes as f64 / MIB);
            analyse(text, &options);
        }
        _ => usage(),
    }
}
