//! The kernel proof: compiled rulesets, loaded into real nftables in a
//! network-namespace cluster, allow exactly the connections the model allows.
//!
//! Needs root, `ip` and `nft`. With NETPOL_REQUIRE_E2E=1 (as .ci/run sets),
//! a missing capability fails the tests instead of skipping them.
//!
//! Every ordered pair of distinct pods, and every pod with an outside host in
//! both directions, is probed over TCP and UDP on ports 80 and 81, and the
//! kernel's verdicts are compared with the model's. SCTP cannot be probed
//! (no SCTP sockets in this kernel): SCTP rulesets are checked by `nft -c`
//! and by loading, and the model's SCTP verdicts by the conformance suite.

mod testbed;

#[path = "../../policy-core/tests/support/admin_generators.rs"]
mod admin_generators;
#[path = "../../policy-core/tests/common/mod.rs"]
mod common;
#[path = "../../policy-core/tests/support/conformance_case.rs"]
mod conformance_case;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use policy_core::{AddressFamily, Config, Loader, Model, PortQuery, Protocol, QueryEndpoint};
use policy_nft::Compiler;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use testbed::{ExternalSpec, PodSpec, Probe, Proto, Testbed, TestbedSpec, e2e_available};

const PORTS: [u16; 2] = [80, 81];
const NODES: [&str; 2] = ["node-1", "node-2"];

/// An outside host, behind node-1: addresses no pod has.
const OUTSIDE: &str = "outside";
const OUTSIDE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const OUTSIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x10);

/// A pod of the testbed, as the model names it, with its addresses.
#[derive(Clone)]
struct TestPod {
    name: String,
    node: &'static str,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
}

fn testbed_for(pods: &[TestPod]) -> Testbed {
    let spec = TestbedSpec {
        nodes: NODES.iter().map(|n| n.to_string()).collect(),
        pods: pods
            .iter()
            .map(|p| PodSpec {
                name: p.name.clone(),
                node: p.node.to_string(),
                ipv4: p.ipv4,
                ipv6: p.ipv6,
            })
            .collect(),
        externals: vec![ExternalSpec {
            name: OUTSIDE.into(),
            ipv4: OUTSIDE_V4,
            ipv6: Some(OUTSIDE_V6),
            node: NODES[0].into(),
        }],
        tcp_ports: PORTS.to_vec(),
        udp_ports: PORTS.to_vec(),
    };
    Testbed::new(&spec).unwrap_or_else(|e| panic!("cannot build the testbed: {e}"))
}

/// Compiles every node's ruleset from `model` and loads it, as nft text or
/// JSON. Checks each with `nft -c` first, and that loading twice changes nothing.
fn load(testbed: &Testbed, model: &Model, json: bool) -> Result<(), String> {
    let compiler = Compiler::new(model).map_err(|e| e.to_string())?;
    for node in NODES {
        let (ruleset, _) = compiler.compile(node);
        let (document, flags): (String, &[&str]) = if json {
            (policy_nft::json::render_string(&ruleset), &["-j"])
        } else {
            (policy_nft::text::render(&ruleset), &[])
        };
        fn with<'a>(flags: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
            flags.iter().chain(extra).copied().collect()
        }
        testbed
            .nft(node, &with(flags, &["-c", "-f", "-"]), &document)
            .map_err(|e| format!("nft -c on {node}: {e}"))?;
        testbed
            .nft(node, &with(flags, &["-f", "-"]), &document)
            .map_err(|e| format!("loading {node}: {e}"))?;
        let first = testbed.ruleset(node)?;
        testbed
            .nft(node, &with(flags, &["-f", "-"]), &document)
            .map_err(|e| format!("reloading {node}: {e}"))?;
        if testbed.ruleset(node)? != first {
            return Err(format!(
                "loading the ruleset of {node} twice changed the table"
            ));
        }
    }
    Ok(())
}

/// One probe and what the model says about it.
struct Expectation {
    probe: Probe,
    allowed: bool,
}

/// The probes of a whole matrix (pods and the outside host, v4 and, for
/// dual-stack pods, v6), with the verdicts of the per-family models.
fn expectations(pods: &[TestPod], model_v4: &Model, model_v6: &Model) -> Vec<Expectation> {
    let mut expectations = Vec::new();
    for (family_v6, model) in [(false, model_v4), (true, model_v6)] {
        if family_v6 && pods.iter().any(|p| p.ipv6.is_none()) {
            continue;
        }
        let endpoint = |name: &str| -> QueryEndpoint {
            if name == OUTSIDE {
                QueryEndpoint::Address(if family_v6 {
                    IpAddr::V6(OUTSIDE_V6)
                } else {
                    IpAddr::V4(OUTSIDE_V4)
                })
            } else {
                QueryEndpoint::Endpoint(model.cluster().find_endpoint(name).unwrap())
            }
        };
        let names: Vec<String> = pods
            .iter()
            .map(|p| p.name.clone())
            .chain([OUTSIDE.to_string()])
            .collect();
        for from in &names {
            for to in &names {
                if from == to || (from == OUTSIDE && to == OUTSIDE) {
                    continue;
                }
                for (proto, protocol) in [(Proto::Tcp, Protocol::Tcp), (Proto::Udp, Protocol::Udp)]
                {
                    for port in PORTS {
                        let verdict = model
                            .query(
                                endpoint(from),
                                endpoint(to),
                                &PortQuery::Number(port),
                                protocol,
                            )
                            .unwrap();
                        let mut probe = match proto {
                            Proto::Tcp => Probe::tcp(from, to, port),
                            Proto::Udp => Probe::udp(from, to, port),
                        };
                        if family_v6 {
                            probe = probe.v6();
                        }
                        expectations.push(Expectation {
                            probe,
                            allowed: verdict.allowed(),
                        });
                    }
                }
            }
        }
    }
    expectations
}

/// Probes everything and describes each disagreement with the model.
fn disagreements(testbed: &Testbed, expectations: &[Expectation]) -> Vec<String> {
    let probes: Vec<Probe> = expectations.iter().map(|e| e.probe.clone()).collect();
    let results = testbed.probe_all(&probes);
    expectations
        .iter()
        .zip(results)
        .filter(|(expected, observed)| expected.allowed != *observed)
        .map(|(expected, observed)| {
            format!(
                "{:?}: model says {}, kernel {}",
                expected.probe,
                if expected.allowed {
                    "allowed"
                } else {
                    "denied"
                },
                if observed { "allowed" } else { "denied" }
            )
        })
        .collect()
}

fn model_for(text: &str, family: AddressFamily) -> Model {
    let mut loader = Loader::new();
    loader.load_str("case.yaml", text);
    let loaded = loader.finish();
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    Model::new(
        loaded.cluster,
        Config {
            address_family: family,
            ..Config::default()
        },
    )
}

#[test]
fn every_conformance_case_is_enforced_exactly_as_the_model_says() {
    if !e2e_available() {
        return;
    }
    // The conformance cluster: x, y, z × a, b, c, IPv4 (see testdata/conformance/README.md).
    let base = model_for(
        &std::fs::read_to_string(conformance_case::conformance_dir().join("cluster.yaml")).unwrap(),
        AddressFamily::Any,
    );
    let pods: Vec<TestPod> = conformance_case::PODS
        .iter()
        .map(|name| {
            let endpoint = &base.cluster().endpoints[base.cluster().find_endpoint(name).unwrap()];
            TestPod {
                name: name.to_string(),
                node: if endpoint.node.as_deref() == Some(NODES[0]) {
                    NODES[0]
                } else {
                    NODES[1]
                },
                ipv4: match endpoint.ips[0] {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => panic!("the conformance cluster is IPv4"),
                },
                ipv6: None,
            }
        })
        .collect();
    let testbed = testbed_for(&pods);
    let mut failures = Vec::new();
    let files = conformance_case::case_files();
    for (index, file) in files.iter().enumerate() {
        let case: conformance_case::Case =
            serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let manifests = conformance_case::manifests_for(&case);
        let model = model_for(&manifests, AddressFamily::Any);
        // Alternate the two formats: both must load and enforce the same thing.
        if let Err(error) = load(&testbed, &model, index % 2 == 1) {
            failures.push(format!("{}: {error}", file.display()));
            continue;
        }
        let found = disagreements(&testbed, &expectations(&pods, &model, &model));
        if !found.is_empty() {
            failures.push(format!(
                "{} ({}):\n  {}",
                file.display(),
                case.upstream.test,
                found.join("\n  ")
            ));
        }
    }
    for node in NODES {
        testbed.clear(node).unwrap();
    }
    assert!(
        failures.is_empty(),
        "the kernel disagrees with the model:\n{}",
        failures.join("\n")
    );
    assert!(files.len() >= 45);
}

/// Nine dual-stack pods on two nodes, named and addressed as the random
/// worlds of policy-core's property tests name and address them.
fn random_world_pods() -> Vec<TestPod> {
    (0..9)
        .map(|i| TestPod {
            name: format!("{}/pod-{i}", common::NAMESPACES[i % 3]),
            node: NODES[i % 2],
            ipv4: Ipv4Addr::new(10, 0, 0, 10 + 17 * i as u8),
            ipv6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 10 + 17 * i as u16)),
        })
        .collect()
}

/// A random world on the fixed pods: random labels, named ports and policies.
fn random_world() -> impl Strategy<Value = common::World> {
    let pods = random_world_pods();
    let labels = proptest::collection::btree_map(
        proptest::sample::select(&["app", "tier", "role"][..]).prop_map(String::from),
        proptest::sample::select(&["web", "db", "api"][..]).prop_map(String::from),
        0..3,
    );
    let ports = proptest::collection::vec(
        (
            proptest::option::of(
                proptest::sample::select(&common::PORT_NAMES[..]).prop_map(String::from),
            ),
            proptest::sample::select(&PORTS[..]),
            proptest::sample::select(&["TCP", "UDP"][..]).prop_map(String::from),
        ),
        0..3,
    );
    let namespace_labels = proptest::collection::btree_map(
        proptest::sample::select(&["team", "env"][..]).prop_map(String::from),
        proptest::sample::select(&["web", "db", "prod"][..]).prop_map(String::from),
        0..2,
    );
    let endpoints = proptest::collection::vec((labels, ports), 9);
    let policies =
        (0usize..5).prop_flat_map(|count| (0..count).map(common::policy).collect::<Vec<_>>());
    (
        proptest::collection::vec(namespace_labels, 3),
        endpoints,
        policies,
        any::<bool>(),
    )
        .prop_map(
            move |(namespace_labels, endpoints, policies, ignore)| common::World {
                namespaces: common::NAMESPACES
                    .iter()
                    .map(|n| n.to_string())
                    .zip(namespace_labels)
                    .collect(),
                endpoints: pods
                    .iter()
                    .zip(endpoints)
                    .map(|(pod, (labels, mut ports))| {
                        // Port names are unique within a pod.
                        let mut seen = std::collections::HashSet::new();
                        for port in &mut ports {
                            if let Some(name) = &port.0
                                && !seen.insert(name.clone())
                            {
                                port.0 = None;
                            }
                        }
                        let (namespace, name) = pod.name.split_once('/').unwrap();
                        common::NaiveEndpoint {
                            namespace: namespace.into(),
                            name: name.into(),
                            labels,
                            node: Some(pod.node.into()),
                            host_network: false,
                            ip: Some(pod.ipv4),
                            ipv6: pod.ipv6,
                            ports,
                        }
                    })
                    .collect(),
                policies,
                config: Config {
                    ip_block: if ignore {
                        policy_core::IpBlockMode::Ignore
                    } else {
                        policy_core::IpBlockMode::Match
                    },
                    ..Config::default()
                },
            },
        )
}

#[test]
fn random_clusters_are_enforced_exactly_as_the_model_says() {
    if !e2e_available() {
        return;
    }
    let pods = random_world_pods();
    let testbed = testbed_for(&pods);
    let cases: u32 = std::env::var("NETPOL_KERNEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&random_world(), |mut world| {
        let model = common::build_model(&world);
        world.config.address_family = AddressFamily::Ipv4;
        let model_v4 = common::build_model(&world);
        world.config.address_family = AddressFamily::Ipv6;
        let model_v6 = common::build_model(&world);
        load(&testbed, &model, false).map_err(TestCaseError::fail)?;
        let found = disagreements(&testbed, &expectations(&pods, &model_v4, &model_v6));
        prop_assert!(
            found.is_empty(),
            "the kernel disagrees with the model:\n  {}",
            found.join("\n  ")
        );
        Ok(())
    });
    for node in NODES {
        testbed.clear(node).unwrap();
    }
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// The same random clusters with random admin-tier policies on top
/// (AdminNetworkPolicies, a BaselineAdminNetworkPolicy, ClusterNetworkPolicies
/// of both tiers, with `networks` peers holding pods and the outside host):
/// the kernel must still allow exactly what the model says.
#[test]
fn random_admin_tiers_are_enforced_exactly_as_the_model_says() {
    if !e2e_available() {
        return;
    }
    let pods = random_world_pods();
    let testbed = testbed_for(&pods);
    let cases: u32 = std::env::var("NETPOL_KERNEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (random_world(), admin_generators::admin_policies());
    let result = runner.run(&strategy, |(mut world, policies)| {
        let manifests = admin_generators::manifests(&policies);
        let build = |world: &common::World| {
            let cluster = common::build_cluster_with(world, &manifests);
            assert_eq!(cluster.admin_policies.len(), policies.len());
            Model::new(cluster, world.config)
        };
        let model = build(&world);
        world.config.address_family = AddressFamily::Ipv4;
        let model_v4 = build(&world);
        world.config.address_family = AddressFamily::Ipv6;
        let model_v6 = build(&world);
        load(&testbed, &model, true).map_err(TestCaseError::fail)?;
        let found = disagreements(&testbed, &expectations(&pods, &model_v4, &model_v6));
        prop_assert!(
            found.is_empty(),
            "the kernel disagrees with the model:\n  {}\n{}",
            found.join("\n  "),
            manifests
        );
        Ok(())
    });
    for node in NODES {
        testbed.clear(node).unwrap();
    }
    if let Err(error) = result {
        panic!("{error}");
    }
}
