//! The generated clusters load through policy-core cleanly, with the counts
//! the parameters promise, and the policies mean what their names say.

use std::collections::HashSet;

use netpol_synth::{Params, generate, generate_with_summary};
use policy_core::cluster::EndpointKind;
use policy_core::model::{PortQuery, QueryEndpoint};
use policy_core::policy::{Peer, PortSpec};
use policy_core::selector::Operator;
use policy_core::{Config, Loaded, Loader, Model, Protocol};

fn load(text: &str) -> Loaded {
    let mut loader = Loader::new();
    loader.load_str("synth.yaml", text);
    loader.finish()
}

fn check_counts(params: &Params) -> Loaded {
    let (text, summary) = generate_with_summary(params);
    let expected = params.expected();
    assert_eq!(summary.counts, expected);
    let loaded = load(&text);
    assert!(
        loaded.diagnostics.is_empty(),
        "diagnostics: {:#?}",
        &loaded.diagnostics[..loaded.diagnostics.len().min(5)]
    );
    assert!(loaded.skipped.is_empty(), "skipped: {:?}", loaded.skipped);
    let cluster = &loaded.cluster;
    assert_eq!(cluster.namespaces.len(), expected.namespaces);
    assert!(cluster.namespaces.iter().all(|n| n.declared));
    // Every workload is represented by its pods, so endpoints are exactly the pods.
    assert_eq!(cluster.endpoints.len(), expected.pods);
    assert!(
        cluster
            .endpoints
            .iter()
            .all(|e| e.kind == EndpointKind::Pod)
    );
    assert_eq!(cluster.services.len(), expected.services);
    assert_eq!(cluster.policies.len(), expected.policies);
    assert_eq!(
        text.matches("\nkind: Deployment\n").count(),
        expected.deployments
    );
    assert_eq!(
        text.matches("\nkind: StatefulSet\n").count(),
        expected.statefulsets
    );

    let ips: HashSet<_> = cluster
        .endpoints
        .iter()
        .flat_map(|e| e.ips.clone())
        .collect();
    assert_eq!(ips.len(), expected.pods, "pod IPs are unique, one per pod");
    assert!(
        ips.iter()
            .all(|ip| matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[0] == 10))
    );
    let nodes: HashSet<_> = cluster
        .endpoints
        .iter()
        .filter_map(|e| e.node.clone())
        .collect();
    assert_eq!(nodes.len(), expected.nodes.min(expected.pods));
    assert!(cluster.endpoints.iter().all(|e| e.owner.is_some()));
    loaded
}

#[test]
fn small_cluster_loads_without_diagnostics() {
    check_counts(&Params::small());
}

#[test]
fn odd_shapes_load_without_diagnostics() {
    for (namespaces, workloads, replicas, policies) in [
        (1, 1, 1, 5),
        (2, 3, 2, 0),
        (3, 4, 1, 200),
        (2, 30, 2, 90),
        (2, 0, 1, 10),
    ] {
        let params = Params {
            namespaces,
            workloads_per_namespace: workloads,
            replicas,
            extra_replicas: 3,
            nodes: 2,
            policies,
            ..Params::small()
        };
        check_counts(&params);
    }
}

#[test]
fn medium_cluster_loads_with_every_kind_of_policy() {
    let params = Params::medium();
    let (_, summary) = generate_with_summary(&params);
    for kind in [
        "default-deny-ingress",
        "default-deny-egress",
        "dns-egress",
        "chain-ingress",
        "chain-egress",
        "metrics-scrape",
        "from-ingress-controller",
        "health-checks-ipblock",
        "telemetry-egress",
        "shared-apis-egress",
        "external-https-ipblock-except",
        "cross-namespace-consumers",
        "partner-endport-ranges",
        "same-app-notin",
        "replication-both-types",
        "backup-exists",
    ] {
        assert!(
            summary.policies_by_kind.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} policy in {:?}",
            summary.policies_by_kind
        );
    }
    let loaded = check_counts(&params);
    assert_eq!(loaded.cluster.endpoints.len(), 1_000);

    // The features the brief asks for are really in the normalised policies.
    let (mut named, mut ranges, mut excepts, mut cross_namespace) = (0, 0, 0, 0);
    let mut operators = HashSet::new();
    for policy in &loaded.cluster.policies {
        for rule in policy.ingress.iter().chain(&policy.egress).flatten() {
            for port in rule.ports.iter().flatten() {
                match port {
                    PortSpec::Named { .. } => named += 1,
                    PortSpec::Range { first, last, .. } if first < last => ranges += 1,
                    _ => {}
                }
            }
            for peer in rule.peers.iter().flatten() {
                match peer {
                    Peer::IpBlock { except, .. } if !except.is_empty() => excepts += 1,
                    Peer::Pods { namespaces, pods } => {
                        if matches!(namespaces, policy_core::policy::NamespaceScope::Selected(_)) {
                            cross_namespace += 1;
                        }
                        if let policy_core::policy::NamespaceScope::Selected(selector) = namespaces
                        {
                            for requirement in selector.requirements() {
                                operators.insert(operator_name(&requirement.operator));
                            }
                        }
                        for requirement in pods.requirements() {
                            operators.insert(operator_name(&requirement.operator));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(named > 0 && ranges > 0 && excepts > 0 && cross_namespace > 0);
    for operator in ["In", "NotIn", "Exists"] {
        assert!(operators.contains(operator), "{operators:?}");
    }
}

fn operator_name(operator: &Operator) -> &'static str {
    match operator {
        Operator::In(_) => "In",
        Operator::NotIn(_) => "NotIn",
        Operator::Exists => "Exists",
        Operator::DoesNotExist => "DoesNotExist",
    }
}

/// The policies mean what they say: spot checks through the model.
#[test]
fn the_policies_allow_the_chain_and_deny_the_rest() {
    let params = Params {
        policies: 400, // every per-workload policy of every namespace
        ..Params::small()
    };
    let text = generate(&params);
    let loaded = load(&text);
    assert!(loaded.diagnostics.is_empty());
    let model = Model::new(loaded.cluster, Config::default());
    let cluster = model.cluster();
    let find = |namespace: &str, component: &str| -> usize {
        cluster
            .endpoints
            .iter()
            .position(|e| {
                e.namespace == namespace
                    && e.labels
                        .get("app.kubernetes.io/component")
                        .is_some_and(|value| value == component)
            })
            .unwrap_or_else(|| panic!("no {component} in {namespace}"))
    };
    let ns = &cluster
        .namespaces
        .iter()
        .find(|n| {
            n.labels.contains_key("team") && n.name != "monitoring" && n.name != "ingress-nginx"
        })
        .unwrap()
        .name
        .clone();
    let web = find(ns, "web");
    let gateway = find(ns, "gateway");
    let api = find(ns, "api");
    let db = find(ns, "db");
    let dns = cluster
        .endpoints
        .iter()
        .position(|e| e.namespace == "kube-system")
        .unwrap();
    let nginx = cluster
        .endpoints
        .iter()
        .position(|e| e.namespace == "ingress-nginx")
        .unwrap();
    let prometheus = cluster
        .endpoints
        .iter()
        .position(|e| e.name.starts_with("prometheus-"))
        .unwrap();
    let ask = |from: usize, to: usize, port: PortQuery, protocol: Protocol| {
        model
            .query(
                QueryEndpoint::Endpoint(from),
                QueryEndpoint::Endpoint(to),
                &port,
                protocol,
            )
            .unwrap()
            .allowed()
    };
    let name = |n: &str| PortQuery::Name(n.to_string());
    assert!(ask(nginx, web, PortQuery::Number(80), Protocol::Tcp));
    assert!(ask(web, gateway, name("http"), Protocol::Tcp));
    assert!(ask(gateway, api, name("grpc"), Protocol::Tcp));
    assert!(
        !ask(web, db, name("postgres"), Protocol::Tcp),
        "no skipping tiers"
    );
    assert!(
        !ask(api, web, PortQuery::Number(80), Protocol::Tcp),
        "no upstream calls"
    );
    assert!(ask(web, dns, PortQuery::Number(53), Protocol::Udp));
    assert!(ask(db, dns, PortQuery::Number(53), Protocol::Tcp));
    assert!(!ask(db, dns, PortQuery::Number(9153), Protocol::Tcp));
    assert!(ask(prometheus, api, name("metrics"), Protocol::Tcp));
    assert!(!ask(prometheus, api, name("grpc"), Protocol::Tcp));
    let outside = QueryEndpoint::Address("93.184.216.34".parse().unwrap());
    let verdict = model
        .query(
            QueryEndpoint::Endpoint(gateway),
            outside,
            &PortQuery::Number(443),
            Protocol::Tcp,
        )
        .unwrap();
    assert!(verdict.allowed());
    let verdict = model
        .query(
            QueryEndpoint::Endpoint(web),
            outside,
            &PortQuery::Number(443),
            Protocol::Tcp,
        )
        .unwrap();
    assert!(!verdict.allowed());
}

/// The `kubectl get -o json` dump (full objects: managedFields, status,
/// environment, volumes) loads without a diagnostic into the same cluster
/// as the YAML manifests, and so does its `-o yaml` twin.
#[test]
fn kubectl_dumps_load_into_the_same_cluster() {
    use netpol_synth::{Format, generate_in};
    let params = Params::small();
    let (yaml, _) = generate_in(&params, Format::Yaml);
    let from_yaml = load(&yaml);
    let expected = params.expected();
    for format in [Format::KubectlJson, Format::KubectlYaml] {
        let (text, summary) = generate_in(&params, format);
        assert_eq!(summary.counts, expected);
        assert_eq!(summary.bytes, text.len());
        if format == Format::KubectlJson {
            assert!(text.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": ["));
            // Full objects: over 10 KB per pod (about 34 KB with its share of
            // the policies and Services).
            let per_pod = text.len() / expected.pods;
            assert!(
                (10_000..45_000).contains(&per_pod),
                "{per_pod} bytes per pod"
            );
        }
        for field in [
            "managedFields",
            "fieldsV1",
            "containerStatuses",
            "valueFrom",
            "projected",
            "tolerations",
            "readinessProbe",
        ] {
            assert!(text.contains(field), "{format:?} has no {field}");
        }
        let loaded = load(&text);
        assert!(
            loaded.diagnostics.is_empty(),
            "{format:?}: {:#?}",
            &loaded.diagnostics[..loaded.diagnostics.len().min(5)]
        );
        assert!(
            loaded.skipped.is_empty(),
            "{format:?}: {:?}",
            loaded.skipped
        );
        let (a, b) = (&from_yaml.cluster, &loaded.cluster);
        assert_eq!(b.namespaces.len(), expected.namespaces);
        assert_eq!(b.endpoints.len(), expected.pods);
        assert_eq!(b.policies.len(), expected.policies);
        assert_eq!(b.services.len(), expected.services);
        let summary = |c: &policy_core::Cluster| {
            c.endpoints
                .iter()
                .map(|e| {
                    (
                        e.namespace.clone(),
                        e.name.clone(),
                        e.labels.clone(),
                        e.ips.clone(),
                        e.node.clone(),
                        e.ports.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(a), summary(b), "{format:?}");
        // The same policies, apart from where they are written.
        let policies = |c: &policy_core::Cluster| {
            c.policies
                .iter()
                .map(|p| {
                    let rules = |rules: &Option<Vec<policy_core::policy::Rule>>| {
                        rules.as_ref().map(|rules| {
                            rules
                                .iter()
                                .map(|r| (r.peers.clone(), r.ports.clone()))
                                .collect::<Vec<_>>()
                        })
                    };
                    (
                        p.reference(),
                        p.pod_selector.clone(),
                        rules(&p.ingress),
                        rules(&p.egress),
                        p.policy_types_explicit,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(policies(a), policies(b), "{format:?}");
        let namespaces = |c: &policy_core::Cluster| {
            c.namespaces
                .iter()
                .map(|n| (n.name.clone(), n.labels.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(namespaces(a), namespaces(b));
    }
}

#[test]
fn presets_have_the_sizes_and_shapes_their_names_say() {
    for &name in netpol_synth::PRESETS {
        let params = Params::preset(name).unwrap_or_else(|| panic!("{name} is listed"));
        let expected = params.expected();
        let size = match name.split('-').next().unwrap() {
            "small" => 100,
            "1k" => 1_000,
            "10k" => 10_000,
            "50k" => 50_000,
            "100k" => 100_000,
            other => panic!("unexpected size {other}"),
        };
        assert_eq!(expected.pods, size, "{name}: pods");
        assert_eq!(expected.policies, size, "{name}: policies");
        if name.ends_with("-worst") || name.ends_with("-realistic") {
            assert_eq!(
                expected.nodes,
                size.div_ceil(110),
                "{name}: a node per 110 pods"
            );
        }
        assert_eq!(params.stateful_only, name.ends_with("-worst"), "{name}");
    }
    assert!(Params::preset("20k-worst").is_none());
    assert!(Params::preset("10k-best").is_none());

    // The shapes, at 10k: every pod its own class, or replicas sharing one.
    for (name, every_pod_its_own_class) in [("10k-worst", true), ("10k-realistic", false)] {
        let loaded = check_counts(&Params::preset(name).unwrap());
        let pods = loaded.cluster.endpoints.len();
        let model = Model::new(loaded.cluster, Config::default());
        let classes = model.classes().len();
        if every_pod_its_own_class {
            // The infrastructure Deployments' replicas still share classes.
            assert!(
                classes * 100 >= pods * 99,
                "{name}: {classes} classes, {pods} pods"
            );
        } else {
            assert!(
                classes * 3 <= pods * 2,
                "{name}: {classes} classes, {pods} pods"
            );
        }
    }
}
