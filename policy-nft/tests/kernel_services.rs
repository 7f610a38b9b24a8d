//! The kernel proof for Services, node traffic and entry points: the
//! Services conformance set (testdata/services) probed with real packets.
//!
//! Each node of the testbed gets the compiled `netpol` ruleset and a
//! kube-proxy stand-in: an nftables NAT table that DNATs ClusterIPs and node
//! ports to one pinned backend, marks traffic for masquerade as kube-proxy
//! does (node ports with `externalTrafficPolicy: Cluster`, and a pod reaching
//! itself through its Service), and masquerades marked traffic in
//! postrouting. Pinning every backend in turn makes each verdict
//! deterministic; the kernel's verdict for each must equal the model's
//! (`Model::query_service`, `exposure`, `Model::query`).
//!
//! Needs root, `ip` and `nft`. With NETPOL_REQUIRE_E2E=1 (as .ci/run sets),
//! a missing capability fails the test instead of skipping it.

mod testbed;

#[path = "../../policy-core/tests/support/services_case.rs"]
mod services_case;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use policy_core::exposure::{EntryKind, IngressControllers, exposure};
use policy_core::model::BackendTarget;
use policy_core::model::Target;
use policy_core::{Model, PortQuery, Protocol, QueryEndpoint, ServiceProfile};
use policy_nft::Compiler;
use services_case::Expectation;
use testbed::{ExternalSpec, PodSpec, Probe, Proto, Testbed, TestbedSpec, e2e_available};

const NODES: [&str; 2] = ["node-1", "node-2"];
const OUTSIDE: &str = "outside";
const OUTSIDE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The outside host behind the selector-less Service's EndpointSlice.
const DB_HOST: &str = "db-host";
const DB_HOST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// kube-proxy's masquerade mark.
const MASQUERADE_MARK: u32 = 0x4000;

/// Where a probe's packets are sent and what kube-proxy does with them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Translation {
    /// To `vip:port`, DNATed on every node to the backend.
    Virtual {
        vip: IpAddr,
        port: u16,
        backend: IpAddr,
        backend_port: u16,
    },
    /// To a node port, DNATed on every node to the backend; with
    /// `masquerade` (traffic policy Cluster) marked for masquerade. With
    /// `local_only`, only the backend's node translates.
    NodePort {
        port: u16,
        backend: IpAddr,
        backend_port: u16,
        backend_node: String,
        masquerade: bool,
    },
    /// No translation.
    Direct,
}

struct PlannedProbe {
    probe: Probe,
    translation: Translation,
    expected: bool,
    what: String,
}

#[allow(dead_code)]
fn proto(protocol: Protocol) -> Proto {
    match protocol {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Sctp => unreachable!("no SCTP sockets in this kernel"),
    }
}

fn keyword(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn probe(from: &str, to: &str, protocol: Protocol, port: u16) -> Probe {
    match protocol {
        Protocol::Udp => Probe::udp(from, to, port),
        _ => Probe::tcp(from, to, port),
    }
}

fn name_of(model: &Model, endpoint: QueryEndpoint) -> Option<String> {
    match endpoint {
        QueryEndpoint::Endpoint(id) => Some(model.cluster().endpoint_name(id).to_string()),
        QueryEndpoint::Address(address) if address == IpAddr::V4(OUTSIDE_V4) => {
            Some(OUTSIDE.into())
        }
        QueryEndpoint::Address(address) if address == IpAddr::V4(DB_HOST_V4) => {
            Some(DB_HOST.into())
        }
        // A node's address: the testbed probes from the node itself.
        QueryEndpoint::Address(address) => model.node_of_address(address).map(str::to_string),
    }
}

fn backend_address(model: &Model, target: BackendTarget) -> IpAddr {
    match target {
        BackendTarget::Endpoint(id) => model.cluster().endpoints[id].ips[0],
        BackendTarget::Address(address) => address,
    }
}

/// The probes of one Service query, one per (source, backend), each with
/// its backend pinned.
fn service_probes(model: &Model, e: &Expectation, service: usize, out: &mut Vec<PlannedProbe>) {
    let definition = &model.cluster().services[service];
    if definition.external_name.is_some() {
        return; // Nothing is proxied; nothing to probe.
    }
    for verdict in services_case::service_verdicts(model, e, service) {
        let Some(from) = name_of(model, verdict.from) else {
            continue;
        };
        let port = &definition.ports[verdict.port];
        for backend in &verdict.backends {
            let address = backend_address(model, backend.backend.target);
            let (to, translation) = match definition.cluster_ips.first() {
                Some(&vip) if !definition.headless => (
                    vip.to_string(),
                    Translation::Virtual {
                        vip,
                        port: port.port,
                        backend: address,
                        backend_port: backend.backend.port,
                    },
                ),
                // Headless: the client connects to the pod itself.
                _ => (address.to_string(), Translation::Direct),
            };
            let probe_port = match translation {
                Translation::Direct => backend.backend.port,
                _ => port.port,
            };
            out.push(PlannedProbe {
                probe: probe(&from, &to, port.protocol, probe_port),
                translation,
                expected: backend.verdict.allowed(),
                what: format!(
                    "{from} -> service {} {} via backend {} port {}",
                    definition.reference(),
                    port.label(),
                    services_case::backend_name(model, backend.backend.target),
                    backend.backend.port
                ),
            });
        }
    }
}

fn plan(model: &Model, e: &Expectation, out: &mut Vec<PlannedProbe>) {
    if let Some(kind) = &e.exposure {
        plan_exposure(model, e, kind, out);
        return;
    }
    match services_case::target(model, e.to.as_deref().expect("to")) {
        Target::Service {
            id: service,
            by_name,
        } => {
            service_probes(model, e, service, out);
            if by_name && e.dns.is_some() {
                let dns = model
                    .find_service("kube-system", "kube-dns")
                    .expect("kube-dns");
                for protocol in ["UDP", "TCP"] {
                    let dns_expectation = Expectation {
                        to: Some("service/kube-system/kube-dns".into()),
                        port: Some("53".into()),
                        protocol: Some(protocol.into()),
                        ..e.clone()
                    };
                    service_probes(model, &dns_expectation, dns, out);
                }
            }
        }
        Target::Endpoint(to) => {
            let from = model
                .resolve_endpoint(e.from.as_deref().expect("from"))
                .expect("from");
            let Some(from_name) = name_of(model, from) else {
                return;
            };
            let PortQuery::Number(port) = services_case::port(e) else {
                panic!("kernel probes need port numbers")
            };
            let protocol = services_case::protocol(e).unwrap_or(Protocol::Tcp);
            let to_text = match to {
                QueryEndpoint::Endpoint(_) => name_of(model, to).expect("pod"),
                QueryEndpoint::Address(address) => address.to_string(),
            };
            let verdict = model
                .query(from, to, &PortQuery::Number(port), protocol)
                .expect("query");
            out.push(PlannedProbe {
                probe: probe(&from_name, &to_text, protocol, port),
                translation: Translation::Direct,
                expected: verdict.allowed(),
                what: format!("{from_name} -> {to_text} {protocol} {port}"),
            });
        }
    }
}

fn plan_exposure(model: &Model, e: &Expectation, kind: &str, out: &mut Vec<PlannedProbe>) {
    let entries = exposure(model, &IngressControllers::default());
    let source: IpAddr = e.source.as_deref().expect("source").parse().expect("ip");
    match kind {
        // The outside host is the only probe source outside the cluster.
        "NodePort" if source == IpAddr::V4(OUTSIDE_V4) => {
            let address: IpAddr = e.address.as_deref().expect("address").parse().expect("ip");
            let port: u16 = e.port.as_deref().expect("port").parse().expect("port");
            let entry = entries
                .iter()
                .find(|x| {
                    x.via == EntryKind::NodePort
                        && x.address == Some(address)
                        && x.port == Some(port)
                })
                .expect("entry");
            let service = entry.service.expect("service");
            let definition = &model.cluster().services[service];
            let port_index = definition
                .ports
                .iter()
                .position(|p| p.node_port == Some(port))
                .expect("port");
            let masquerade =
                definition.external_traffic_policy == policy_core::cluster::TrafficPolicy::Cluster;
            // Every backend pinned in turn: a target of the entry answers
            // as the entry says; a backend the entry does not lead to
            // (Local, another node) gets nothing.
            for backend in model.service_backends(service, port_index).backends {
                let BackendTarget::Endpoint(pod) = backend.target else {
                    continue;
                };
                let expected = entry
                    .targets
                    .iter()
                    .find(|t| t.pod == pod)
                    .is_some_and(|t| t.sources.contains(source));
                out.push(PlannedProbe {
                    probe: probe(OUTSIDE, &address.to_string(), entry.protocol, port),
                    translation: Translation::NodePort {
                        port,
                        backend: backend_address(model, backend.target),
                        backend_port: backend.port,
                        backend_node: backend.node.clone().expect("placed"),
                        masquerade,
                    },
                    expected,
                    what: format!(
                        "{OUTSIDE} -> {address}:{port} ({}) via backend {}",
                        definition.reference(),
                        model.cluster().endpoint_name(pod)
                    ),
                });
            }
        }
        // The controller's hop to each backend, pod to pod.
        "Ingress" => {
            let entry = entries
                .iter()
                .find(|x| {
                    x.via == EntryKind::Ingress
                        && x.ingress.as_ref().is_some_and(|(name, _, path)| {
                            Some(name) == e.ingress.as_ref() && path == &e.path
                        })
                })
                .expect("entry");
            let controller = model
                .resolve_endpoint("ingress-nginx/controller-1")
                .expect("controller");
            for target in &entry.targets {
                let to = model.cluster().endpoint_name(target.pod).to_string();
                out.push(PlannedProbe {
                    probe: probe(
                        "ingress-nginx/controller-1",
                        &to,
                        entry.protocol,
                        target.port,
                    ),
                    translation: Translation::Direct,
                    expected: target
                        .via_controllers
                        .iter()
                        .any(|&c| QueryEndpoint::Endpoint(c) == controller),
                    what: format!("ingress controller -> {to} port {}", target.port),
                });
            }
        }
        _ => {}
    }
}

/// The kube-proxy stand-in of one node for a set of pinned translations.
fn kube_proxy(node: &str, translations: &[&Translation]) -> String {
    let mut rules = String::new();
    for translation in translations {
        match translation {
            Translation::Virtual {
                vip,
                port,
                backend,
                backend_port,
            } => {
                // kube-proxy masquerades a pod reaching itself through its
                // Service ("hairpin"), so the reply comes back through the node.
                for protocol in [Protocol::Tcp, Protocol::Udp] {
                    let p = keyword(protocol);
                    let _ = writeln!(
                        rules,
                        "\t\tip daddr {vip} {p} dport {port} ip saddr {backend} meta mark set {MASQUERADE_MARK:#x}"
                    );
                    let _ = writeln!(
                        rules,
                        "\t\tip daddr {vip} {p} dport {port} dnat to {backend}:{backend_port}"
                    );
                }
            }
            Translation::NodePort {
                port,
                backend,
                backend_port,
                backend_node,
                masquerade,
            } => {
                if !masquerade && backend_node != node {
                    // Local: a node without a local backend does not translate.
                    continue;
                }
                let mark = if *masquerade {
                    format!("meta mark set {MASQUERADE_MARK:#x} ")
                } else {
                    String::new()
                };
                let _ = writeln!(
                    rules,
                    "\t\tfib daddr type local tcp dport {port} {mark}dnat to {backend}:{backend_port}"
                );
            }
            Translation::Direct => {}
        }
    }
    format!(
        "table ip netpol_kube_proxy\ndelete table ip netpol_kube_proxy\ntable ip netpol_kube_proxy {{\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n{rules}\t}}\n\
         \tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tmeta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade\n\t}}\n}}\n"
    )
}

/// The key under which a translation must be unique within one round.
fn translation_key(t: &Translation) -> Option<String> {
    match t {
        Translation::Virtual { vip, port, .. } => Some(format!("{vip}:{port}")),
        Translation::NodePort { port, .. } => Some(format!("node:{port}")),
        Translation::Direct => None,
    }
}

#[test]
fn the_kernel_enforces_the_services_cases() {
    if !e2e_available() {
        return;
    }
    let base = services_case::model(&services_case::Case {
        description: String::new(),
        profile: None,
        policies: String::new(),
        expect: Vec::new(),
    });
    let pods: Vec<PodSpec> = base
        .cluster()
        .endpoints
        .iter()
        .enumerate()
        .map(|(id, endpoint)| PodSpec {
            name: base.cluster().endpoint_name(id).to_string(),
            node: endpoint.node.clone().expect("placed"),
            ipv4: match endpoint.ips[0] {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => panic!("the services cluster is IPv4"),
            },
            ipv6: None,
        })
        .collect();
    let spec = TestbedSpec {
        nodes: NODES.iter().map(|n| n.to_string()).collect(),
        pods,
        externals: vec![
            ExternalSpec {
                name: OUTSIDE.into(),
                ipv4: OUTSIDE_V4,
                ipv6: None,
                node: NODES[0].into(),
            },
            ExternalSpec {
                name: DB_HOST.into(),
                ipv4: DB_HOST_V4,
                ipv6: None,
                node: NODES[1].into(),
            },
        ],
        tcp_ports: vec![53, 80, 81, 8080],
        udp_ports: vec![53],
    };
    let testbed = Testbed::new(&spec).unwrap_or_else(|e| panic!("cannot build the testbed: {e}"));

    let mut failures = Vec::new();
    let mut probed = 0;
    let mut cases_probed = 0;
    for (name, case) in services_case::cases() {
        // The kernel runs the netpol profile only.
        if services_case::profile(&case) != ServiceProfile::Netpol {
            continue;
        }
        let model = services_case::model(&case);
        let mut planned = Vec::new();
        for expectation in &case.expect {
            plan(&model, expectation, &mut planned);
        }
        if planned.is_empty() {
            continue;
        }
        cases_probed += 1;
        let compiler = Compiler::new(&model).expect("compiles");
        for node in NODES {
            let (ruleset, _) = compiler.compile(node);
            testbed
                .load(node, &policy_nft::text::render(&ruleset))
                .unwrap_or_else(|e| panic!("{name}: loading {node}: {e}"));
        }
        // Rounds in which each virtual address and node port is pinned to
        // one backend.
        let mut rounds: Vec<Vec<&PlannedProbe>> = Vec::new();
        for p in &planned {
            let key = translation_key(&p.translation);
            let round = rounds.iter_mut().find(|round| {
                key.is_none()
                    || round.iter().all(|q| {
                        translation_key(&q.translation) != key || q.translation == p.translation
                    })
            });
            match round {
                Some(round) => round.push(p),
                None => rounds.push(vec![p]),
            }
        }
        for round in rounds {
            let mut translations: Vec<&Translation> =
                round.iter().map(|p| &p.translation).collect();
            translations.sort();
            translations.dedup();
            for node in NODES {
                testbed
                    .nft(node, &["-f", "-"], &kube_proxy(node, &translations))
                    .unwrap_or_else(|e| panic!("{name}: kube-proxy stand-in on {node}: {e}"));
            }
            let probes: Vec<Probe> = round.iter().map(|p| p.probe.clone()).collect();
            let got = testbed.probe_all(&probes);
            for (p, got) in round.iter().zip(got) {
                probed += 1;
                if got != p.expected {
                    failures.push(format!(
                        "{name}: {}: the model says {}, the kernel {}",
                        p.what,
                        if p.expected { "allowed" } else { "denied" },
                        if got { "allowed it" } else { "denied it" }
                    ));
                }
            }
        }
    }
    let summary: BTreeMap<&str, usize> = [("cases", cases_probed), ("probes", probed)]
        .into_iter()
        .collect();
    eprintln!("probed {summary:?}");
    assert!(cases_probed >= 20, "only {cases_probed} cases were probed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
