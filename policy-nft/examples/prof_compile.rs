use policy_core::{Config, Model};
use policy_nft::Compiler;
use std::time::Instant;

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .collect::<Vec<_>>()
        .join(" ")
}
fn main() {
    let params = netpol_synth::Params::preset("100k-realistic").unwrap();
    let t = Instant::now();
    let cluster = netpol_synth::load_cluster(&params);
    eprintln!("load {:?} {}", t.elapsed(), rss());
    if std::env::var("TRIM").is_ok() {
        unsafe {
            libc_trim();
        }
        eprintln!("trimmed {}", rss());
    }
    let t = Instant::now();
    let model = Model::new(cluster, Config::default());
    eprintln!("model {:?} {}", t.elapsed(), rss());
    if std::env::var("TRIM").is_ok() {
        unsafe {
            libc_trim();
        }
        eprintln!("trimmed {}", rss());
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut last = None;
    let t = Instant::now();
    let mut known = policy_nft::ClassAddresses::default();
    for _ in 0..n {
        let c = Instant::now();
        let compiler = Compiler::with_class_addresses(&model, known, Some(false)).unwrap();
        let new = c.elapsed();
        let (rs, _) = compiler.compile("node-0000");
        eprintln!("new {:?} total {:?}", new, c.elapsed());
        known = compiler.into_class_addresses();
        last = Some(rs);
    }
    eprintln!("compile avg {:?}", t.elapsed() / n as u32);
    let a = last.unwrap();
    let mut b = a.clone();
    let t = Instant::now();
    for _ in 0..n {
        policy_nft::diff::stabilize_names(&a, &mut b);
    }
    eprintln!("stabilize avg {:?}", t.elapsed() / n as u32);
    let t = Instant::now();
    let mut fa = None;
    for _ in 0..n {
        fa = Some(policy_nft::diff::flatten(&a));
    }
    eprintln!("flatten avg {:?}", t.elapsed() / n as u32);
    let fa = fa.unwrap();
    let fb = policy_nft::diff::flatten(&b);
    let t = Instant::now();
    for _ in 0..n {
        let _ = policy_nft::diff::diff_flat(&fa, &fb);
    }
    eprintln!("diff avg {:?}", t.elapsed() / n as u32);
}

unsafe extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}
unsafe fn libc_trim() {
    unsafe {
        malloc_trim(0);
    }
}
