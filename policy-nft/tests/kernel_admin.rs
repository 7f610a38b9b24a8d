//! The kernel proof for the admin tiers: every step of every test of the
//! SIG's admin network policy conformance suite (testdata/admin-conformance,
//! v1alpha1 AdminNetworkPolicy / BaselineAdminNetworkPolicy and v1alpha2
//! ClusterNetworkPolicy) is compiled, loaded into real nftables on a
//! two-node network-namespace cluster, and probed: the kernel must allow
//! exactly what `Model::query` says.
//!
//! Needs root, `ip` and `nft`. With NETPOL_REQUIRE_E2E=1 (as .ci/run sets),
//! a missing capability fails the test instead of skipping it.
//!
//! The suite's regular pods run on two nodes (alternating, so traffic both
//! crosses nodes and stays on one); the Node objects carry the testbed's node
//! addresses, so `nodes` and `networks` peers and a pod's own node (the
//! NetworkPolicy exemption under the Admin tier) are probed through the
//! `input` hook. The host-networked `centaur` pods are left out: the testbed
//! has no host-networked pods, and the node addresses stand in for them.
//! Probes: every ordered pair of pods, each pod to both node addresses and
//! to an outside host, and the outside host to each pod, over TCP 80 and
//! 8080 and UDP 53 and 5353 (the suite's servers; SCTP cannot be probed here
//! and is checked by the model's conformance test and `nft -c`).

mod testbed;

#[path = "../../policy-core/tests/support/admin_conformance_case.rs"]
mod admin_conformance_case;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use admin_conformance_case::{
    Placement, V1ALPHA1, V1ALPHA2, apply, base_pods, load_case, load_manifests, model_of,
    node_object, pod_object,
};
use policy_core::{Model, PortQuery, Protocol, QueryEndpoint};
use policy_nft::Compiler;
use serde_json::Value as Json;
use testbed::{ExternalSpec, PodSpec, Probe, Proto, Testbed, TestbedSpec, e2e_available};

const NODES: [&str; 2] = ["node-1", "node-2"];
const TCP_PORTS: [u16; 2] = [80, 8080];
const UDP_PORTS: [u16; 2] = [53, 5353];
const OUTSIDE: &str = "outside";
const OUTSIDE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn node_objects(testbed: &Testbed) -> Vec<Json> {
    (NODES.iter())
        .map(|&name| node_object(name, testbed.node_ipv4(name).expect("testbed node")))
        .collect()
}

fn load(testbed: &Testbed, model: &Model, json: bool) -> Result<(), String> {
    let compiler = Compiler::new(model).map_err(|e| e.to_string())?;
    for node in NODES {
        let (ruleset, _) = compiler.compile(node);
        let (document, flags): (String, &[&str]) = if json {
            (
                policy_nft::json::render_string(&ruleset),
                &["-j", "-f", "-"],
            )
        } else {
            (policy_nft::text::render(&ruleset), &["-f", "-"])
        };
        testbed
            .nft(node, flags, &document)
            .map_err(|e| format!("loading {node}: {e}"))?;
    }
    Ok(())
}

/// Every probe of one step, with the model's verdict.
fn expectations(model: &Model, pods: &[String], node_addresses: &[Ipv4Addr]) -> Vec<(Probe, bool)> {
    let endpoint = |name: &str| -> QueryEndpoint {
        match name.parse::<IpAddr>() {
            Ok(address) => QueryEndpoint::Address(address),
            Err(_) if name == OUTSIDE => QueryEndpoint::Address(IpAddr::V4(OUTSIDE_V4)),
            Err(_) => model.resolve_endpoint(name).unwrap(),
        }
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for from in pods {
        for to in pods {
            if from != to {
                pairs.push((from.clone(), to.clone()));
            }
        }
        for address in node_addresses {
            pairs.push((from.clone(), address.to_string()));
        }
        pairs.push((from.clone(), OUTSIDE.to_string()));
        pairs.push((OUTSIDE.to_string(), from.clone()));
    }
    let mut found = Vec::new();
    for (from, to) in &pairs {
        let ports = (TCP_PORTS.iter().map(|&p| (Proto::Tcp, Protocol::Tcp, p)))
            .chain(UDP_PORTS.iter().map(|&p| (Proto::Udp, Protocol::Udp, p)));
        for (proto, protocol, port) in ports {
            let verdict = model
                .query(
                    endpoint(from),
                    endpoint(to),
                    &PortQuery::Number(port),
                    protocol,
                )
                .unwrap();
            let probe = match proto {
                Proto::Tcp => Probe::tcp(from, to, port),
                Proto::Udp => Probe::udp(from, to, port),
            };
            found.push((probe, verdict.allowed()));
        }
    }
    found
}

#[test]
fn every_admin_conformance_step_is_enforced_exactly_as_the_model_says() {
    if !e2e_available() {
        return;
    }
    let mut failures = Vec::new();
    let mut steps = 0;
    let mut probes = 0;
    let mut verdicts = [0usize; 2];
    for version in [&V1ALPHA1, &V1ALPHA2] {
        let files = version.case_files();
        // One testbed per version: the base pods are the same for all its cases.
        let first = load_case(&files[0]);
        let base_path = files[0].parent().unwrap().join(&first.base);
        let base = load_manifests(&base_path, &first.host_network_ports);
        let pods: BTreeMap<String, _> = (base_pods(&base).into_iter())
            .filter(|(_, pod)| !pod.host_network)
            .collect();
        let placements: BTreeMap<String, Placement> = (pods.keys().enumerate())
            .map(|(index, key)| {
                let placement = Placement {
                    node: NODES[index % 2].to_string(),
                    ip: Ipv4Addr::new(10, 0, 0, 1 + index as u8),
                };
                (key.clone(), placement)
            })
            .collect();
        let testbed = Testbed::new(&TestbedSpec {
            nodes: NODES.iter().map(|n| n.to_string()).collect(),
            pods: (placements.iter())
                .map(|(name, placement)| PodSpec {
                    name: name.clone(),
                    node: placement.node.clone(),
                    ipv4: placement.ip,
                    ipv6: None,
                })
                .collect(),
            externals: vec![ExternalSpec {
                name: OUTSIDE.into(),
                ipv4: OUTSIDE_V4,
                ipv6: None,
                node: NODES[0].into(),
            }],
            tcp_ports: TCP_PORTS.to_vec(),
            udp_ports: UDP_PORTS.to_vec(),
        })
        .unwrap_or_else(|e| panic!("cannot build the testbed: {e}"));
        let node_addresses: Vec<Ipv4Addr> = (NODES.iter())
            .map(|n| testbed.node_ipv4(n).unwrap())
            .collect();
        let names: Vec<String> = placements.keys().cloned().collect();
        for path in &files {
            let case = load_case(path);
            assert_eq!(
                case.base,
                first.base,
                "{}: one base per version",
                path.display()
            );
            for test in &case.tests {
                let mut objects: Vec<Json> = (base.iter())
                    .filter(|d| d["kind"] == "Namespace")
                    .cloned()
                    .collect();
                objects.extend(
                    (pods.iter()).map(|(key, pod)| pod_object(pod, &placements[key.as_str()])),
                );
                objects.extend(node_objects(&testbed));
                for policy in &test.policies {
                    let policy_path = path.parent().unwrap().join(policy);
                    objects.extend(load_manifests(&policy_path, &case.host_network_ports));
                }
                for step in &test.steps {
                    for mutation in &step.mutate {
                        apply(mutation, &mut objects, &placements);
                    }
                    let model = model_of(&objects);
                    steps += 1;
                    let label = format!(
                        "{} {} / {} step {:?}",
                        version.dir,
                        path.file_name().unwrap().to_string_lossy(),
                        test.short_name,
                        step.name
                    );
                    // Alternate the two formats: both must enforce the same thing.
                    if let Err(error) = load(&testbed, &model, steps % 2 == 0) {
                        failures.push(format!("{label}: {error}"));
                        continue;
                    }
                    let expected = expectations(&model, &names, &node_addresses);
                    let sent: Vec<Probe> = expected.iter().map(|(p, _)| p.clone()).collect();
                    let observed = testbed.probe_all(&sent);
                    probes += sent.len();
                    for ((probe, allowed), kernel) in expected.iter().zip(observed) {
                        verdicts[usize::from(*allowed)] += 1;
                        if *allowed != kernel {
                            failures.push(format!(
                                "{label}: {probe}: model says {}, kernel {}",
                                if *allowed { "allowed" } else { "denied" },
                                if kernel { "allowed" } else { "denied" }
                            ));
                        }
                    }
                }
            }
        }
        for node in NODES {
            testbed.clear(node).unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "the kernel disagrees with the model in {} probes:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every step ran, and the probes saw both answers.
    assert!(steps >= 60, "{steps} steps");
    assert!(
        verdicts[0] > 0 && verdicts[1] > 0,
        "{verdicts:?} of {probes}"
    );
    eprintln!("{steps} steps, {probes} probes, {} denied", verdicts[0]);
}
