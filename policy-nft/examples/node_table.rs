//! The size and compile time of nodes' tables, for BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p policy-nft --example node_table -- FILE [NODE ...] [--write DIR] [--repeat N]
//! ```
//!
//! Loads FILE, builds the model, prepares the compiler, then compiles each
//! NODE (default: the node with the most pods) `--repeat` times (default 5)
//! and prints the median compile and render times, the sets, chains and
//! elements of the table, and the size of its nft text and JSON.
//! `--write DIR` writes each node's text to `DIR/NODE.nft` and JSON to
//! `DIR/NODE.json` (for timing `nft -f`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use policy_core::{Config, Loader, Model};
use policy_nft::Compiler;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut nodes = Vec::new();
    let mut write = None;
    let mut repeat = 5;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--write" => write = args.next(),
            "--repeat" => repeat = args.next().and_then(|n| n.parse().ok()).unwrap_or(5),
            _ if file.is_none() => file = Some(arg),
            _ => nodes.push(arg),
        }
    }
    let file = file.expect("usage: node_table FILE [NODE ...] [--write DIR] [--repeat N]");
    let started = Instant::now();
    let text = std::fs::read_to_string(&file).expect("readable input");
    let mut loader = Loader::new();
    loader.load_str(&file, &text);
    drop(text);
    let loaded = loader.finish();
    let load = started.elapsed();
    let started = Instant::now();
    let model = Model::new(loaded.cluster, Config::default());
    let build = started.elapsed();
    let started = Instant::now();
    let compiler = Compiler::new(&model).expect("compilable");
    let prepare = started.elapsed();
    println!(
        "{file}: {} pods, {} policies, {} classes; load {:.0} ms, model {:.0} ms, Compiler::new {:.0} ms",
        model.cluster().endpoints.len(),
        model.cluster().policies.len(),
        model.classes().len(),
        ms(load),
        ms(build),
        ms(prepare)
    );
    if nodes.is_empty() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for endpoint in &model.cluster().endpoints {
            if let Some(node) = endpoint.node.as_deref() {
                *counts.entry(node).or_default() += 1;
            }
        }
        let busiest = counts
            .iter()
            .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
            .map(|(name, _)| name.to_string());
        nodes.extend(busiest);
    }
    for node in &nodes {
        let local = model
            .cluster()
            .endpoints
            .iter()
            .filter(|e| e.node.as_deref() == Some(node.as_str()))
            .count();
        let mut compile_times = Vec::new();
        let mut ruleset = None;
        for _ in 0..repeat.max(1) {
            let started = Instant::now();
            let (compiled, _) = compiler.compile(node);
            compile_times.push(ms(started.elapsed()));
            ruleset = Some(compiled);
        }
        let ruleset = ruleset.expect("compiled");
        let started = Instant::now();
        let text = policy_nft::text::render(&ruleset);
        let render_text = started.elapsed();
        let started = Instant::now();
        let json = policy_nft::json::render_string(&ruleset);
        let render_json = started.elapsed();
        // For profiling the renderers: NETPOL_RENDER_REPEAT=N renders N more times.
        let more: usize = std::env::var("NETPOL_RENDER_REPEAT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for _ in 0..more {
            let started = Instant::now();
            std::hint::black_box(policy_nft::json::render_string(&ruleset));
            let json_again = started.elapsed();
            let started = Instant::now();
            std::hint::black_box(policy_nft::text::render(&ruleset));
            eprintln!(
                "again: JSON {:.1} ms, text {:.1} ms",
                ms(json_again),
                ms(started.elapsed())
            );
        }
        let flat = policy_nft::diff::flatten(&ruleset);
        let elements: usize = flat.elements.values().map(|set| set.len()).sum();
        println!(
            "{node}: {local} local pods; compile {:.1} ms (median of {}), text {:.0} ms, JSON {:.0} ms; \
             {} sets and maps, {} chains, {elements} elements; text {} bytes, JSON {} bytes; VmHWM {} MiB",
            median(compile_times),
            repeat.max(1),
            ms(render_text),
            ms(render_json),
            flat.skeleton.sets.len(),
            flat.skeleton.chains.len(),
            text.len(),
            json.len(),
            status_kib("VmHWM") / 1024
        );
        if let Some(dir) = &write {
            std::fs::create_dir_all(dir).expect("output directory");
            std::fs::write(format!("{dir}/{node}.nft"), &text).expect("written");
            std::fs::write(format!("{dir}/{node}.json"), &json).expect("written");
        }
    }
}
