//! The SIG's admin network policy conformance suite
//! (testdata/admin-conformance), run through `Model::query` and the class-level
//! answers (`Model::connections`, `Model::port_matrix`, `Model::egress_addresses`): every probe of
//! every step of every test, in both API versions, must get the verdict the
//! upstream suite expects.
//!
//! The cluster is the suite's base manifests with each StatefulSet replica
//! as a Pod: regular pods on `node-pods`, each host-networked `centaur`
//! replica on a node of its own whose address is its pod IP (what the
//! upstream probes reach). The clients and the centaurs never share a node,
//! so NetworkPolicy's local-node exemption plays no part, as on a cluster
//! where they are scheduled apart. Nodes carry `kubernetes.io/os: linux`,
//! as the node-peer tests assume.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use policy_core::{Model, PortQuery, Protocol, QueryEndpoint};
use serde_json::Value as Json;

#[path = "support/admin_conformance_case.rs"]
mod admin_conformance_case;

use admin_conformance_case::{
    BasePod, Placement, V1ALPHA1, V1ALPHA2, Version, apply, base_pods, load_case, load_manifests,
    model_of, node_object, pod_object,
};

fn place(pods: &BTreeMap<String, BasePod>) -> BTreeMap<String, Placement> {
    let mut placed = BTreeMap::new();
    let (mut regular, mut host) = (0u8, 0u8);
    for (key, pod) in pods {
        let placement = if pod.host_network {
            host += 1;
            Placement {
                node: format!("node-host-{host}"),
                ip: Ipv4Addr::new(192, 168, 0, host),
            }
        } else {
            regular += 1;
            Placement {
                node: "node-pods".into(),
                ip: Ipv4Addr::new(10, 0, 0, regular),
            }
        };
        placed.insert(key.clone(), placement);
    }
    placed
}

fn node_objects(placements: &BTreeMap<String, Placement>) -> Vec<Json> {
    let mut nodes: BTreeMap<&str, Ipv4Addr> = BTreeMap::new();
    for placement in placements.values() {
        let address = if placement.node == "node-pods" {
            Ipv4Addr::new(192, 168, 1, 1)
        } else {
            placement.ip
        };
        nodes.insert(&placement.node, address);
    }
    (nodes.into_iter())
        .map(|(name, address)| node_object(name, address))
        .collect()
}

fn endpoint(model: &Model, name: &str) -> QueryEndpoint {
    model
        .resolve_endpoint(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs every case of one version; returns the probes that disagree, and
/// how many probes ran.
fn run(version: &Version) -> (Vec<String>, usize) {
    let mut disagreements = Vec::new();
    let mut probes = 0;
    for path in version.case_files() {
        let case = load_case(&path);
        let base_path = path.parent().unwrap().join(&case.base);
        let base = load_manifests(&base_path, &case.host_network_ports);
        let pods = base_pods(&base);
        let placements = place(&pods);
        for test in &case.tests {
            let mut objects: Vec<Json> = (base.iter())
                .filter(|d| d["kind"] == "Namespace")
                .cloned()
                .collect();
            objects
                .extend((pods.iter()).map(|(key, pod)| pod_object(pod, &placements[key.as_str()])));
            objects.extend(node_objects(&placements));
            for policy in &test.policies {
                let policy_path = path.parent().unwrap().join(policy);
                objects.extend(load_manifests(&policy_path, &case.host_network_ports));
            }
            for step in &test.steps {
                for mutation in &step.mutate {
                    apply(mutation, &mut objects, &placements);
                }
                let model = model_of(&objects);
                for probe in &step.probes {
                    probes += 1;
                    let protocol: Protocol = probe.protocol.parse().unwrap();
                    let from = endpoint(&model, &probe.from);
                    let to = match probe.to_host_network {
                        // The probe dials the pod IP, which is its node's.
                        true => QueryEndpoint::Address(IpAddr::V4(placements[&probe.to].ip)),
                        false => endpoint(&model, &probe.to),
                    };
                    let verdict = model
                        .query(from, to, &PortQuery::Number(probe.port), protocol)
                        .unwrap();
                    // The class-level reading (matrix, diff, compile) must agree.
                    let class_level = match (from, to) {
                        (QueryEndpoint::Endpoint(f), QueryEndpoint::Endpoint(t)) => {
                            let matrix =
                                model.port_matrix(protocol, &PortQuery::Number(probe.port));
                            let connections =
                                model.connections(f, t).contains(protocol, probe.port);
                            assert_eq!(matrix.allowed(f, t), connections, "{probe:?}");
                            connections
                        }
                        (QueryEndpoint::Endpoint(f), QueryEndpoint::Address(address)) => model
                            .egress_addresses(model.class_of(f), protocol, probe.port)
                            .contains(address),
                        _ => unreachable!("probes start at pods"),
                    };
                    let got = if verdict.allowed() { "allow" } else { "deny" };
                    let got_by_class = if class_level { "allow" } else { "deny" };
                    if got_by_class != probe.expect {
                        disagreements.push(format!(
                            "class model: {} {} / {:?} step {:?}: {} -> {} {} {}: expected {}, got {got_by_class}",
                            version.dir,
                            path.file_name().unwrap().to_string_lossy(),
                            test.short_name,
                            step.name,
                            probe.from,
                            probe.to,
                            probe.protocol,
                            probe.port,
                            probe.expect,
                        ));
                    }
                    if got != probe.expect {
                        disagreements.push(format!(
                            "{} {} / {:?} step {:?}: {} -> {} {} {}: expected {}, got {got} ({:?} / {:?})",
                            version.dir,
                            path.file_name().unwrap().to_string_lossy(),
                            test.short_name,
                            step.name,
                            probe.from,
                            probe.to,
                            probe.protocol,
                            probe.port,
                            probe.expect,
                            verdict.egress,
                            verdict.ingress,
                        ));
                    }
                }
            }
        }
    }
    (disagreements, probes)
}

#[test]
fn v1alpha1_adminnetworkpolicy_and_baseline_conformance() {
    let (disagreements, probes) = run(&V1ALPHA1);
    // All 289 upstream probes ran (admin_conformance_data checks the count).
    assert_eq!(probes, 289);
    assert!(
        disagreements.is_empty(),
        "{} of {probes} probes disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

#[test]
fn v1alpha2_clusternetworkpolicy_conformance() {
    let (disagreements, probes) = run(&V1ALPHA2);
    assert_eq!(probes, 301);
    assert!(
        disagreements.is_empty(),
        "{} of {probes} probes disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
