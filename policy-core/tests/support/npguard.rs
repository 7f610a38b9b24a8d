//! What the np-guard corpus tests share: reading a corpus directory with
//! the analyser's conventions, and printing in its notation. Included with
//! `#[path]` by npguard_corpus.rs, npguard_ingress.rs and npguard_anp_load.rs.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use policy_core::cluster::EndpointKind;
use policy_core::{Config, HostNetworkMode, IpBlockMode, Model, PortSet, Protocol};

/// Every `.yaml`, `.yml` and `.json` file under `dir`, recursively, in path
/// order (the analyser reads all three).
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The analyser's documented conventions, expressed with our options: it
/// never matches ipBlocks against pod IPs, and it treats hostNetwork pods
/// like any other pod.
pub fn their_config() -> Config {
    Config {
        ip_block: IpBlockMode::Ignore,
        host_network: HostNetworkMode::Pod,
        ..Config::default()
    }
}

pub fn read(root: &Path, relative: &str) -> String {
    let path = root.join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A peer name the way the analyser prints it: `namespace/name[Kind]`, where
/// a Pod object is named after its controlling owner (`[ReplicaSet]` with
/// the generated hash, `[DaemonSet]`, `[Job]`, ...), unless it has no owner
/// or is a static pod (owned by its Node), and a workload manifest that
/// stands in for its pods is named after itself.
pub fn workload_name(model: &Model, endpoint: usize) -> String {
    let e = &model.cluster().endpoints[endpoint];
    let (name, kind) = match (e.kind, &e.owner) {
        (EndpointKind::Pod, Some(owner)) if owner.kind != "Node" => {
            (owner.name.as_str(), owner.kind.as_str())
        }
        (kind, _) => (e.name.as_str(), kind.as_str()),
    };
    format!("{}/{}[{}]", e.namespace, name, kind)
}

/// A connection set in their notation: `All Connections`, or protocols in
/// name order (SCTP, TCP, UDP), each with its merged port ranges, all joined
/// by commas: `SCTP 9003,TCP 1-79,81-65535,UDP 53`. `None` when empty.
///
/// The corpus never shows a protocol open on every port while another is
/// not; we print it as `TCP 1-65535`, their range notation.
pub fn render_connections(ports: &PortSet) -> Option<String> {
    if ports.is_empty() {
        return None;
    }
    if ports.is_all() {
        return Some("All Connections".to_string());
    }
    let mut parts = Vec::new();
    for protocol in [Protocol::Sctp, Protocol::Tcp, Protocol::Udp] {
        let ranges = ports.ranges(protocol);
        if ranges.is_empty() {
            continue;
        }
        let ranges: Vec<String> = ranges
            .iter()
            .map(|&(first, last)| {
                if first == last {
                    first.to_string()
                } else {
                    format!("{first}-{last}")
                }
            })
            .collect();
        parts.push(format!("{} {}", protocol.as_str(), ranges.join(",")));
    }
    Some(parts.join(","))
}
