//! The Services conformance set (testdata/services): case files with
//! hand-written expected answers, and their evaluation against the model.
//! Shared by policy-core's services test and policy-nft's kernel test
//! (included with `#[path]`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use policy_core::exposure::{EntryKind, IngressControllers, exposure};
use policy_core::model::{BackendTarget, ServiceVerdict, Target};
use policy_core::{Config, Loader, Model, PortQuery, Protocol, QueryEndpoint, ServiceProfile};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub description: String,
    #[serde(default)]
    pub profile: Option<String>,
    pub policies: String,
    pub expect: Vec<Expectation>,
}

/// One expected answer: a query (pod, address or Service target) or an
/// exposure entry seen from one outside source.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub from: Option<String>,
    pub to: Option<String>,
    pub port: Option<String>,
    pub protocol: Option<String>,
    /// Pod and address queries: the verdict.
    pub allowed: Option<bool>,
    /// Service queries: allowed, intermittent, denied, no-backends or external-name.
    pub outcome: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    #[serde(default)]
    pub excluded: Vec<String>,
    pub dns: Option<bool>,
    /// Exposure: the entry kind (NodePort, LoadBalancer, Ingress, ...).
    pub exposure: Option<String>,
    pub address: Option<String>,
    pub ingress: Option<String>,
    pub path: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub reaches: Vec<String>,
    #[serde(default)]
    pub blocked: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
        .join("services")
}

pub fn cases() -> Vec<(String, Case)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("cases"))
        .expect("testdata/services/cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            let case: Case =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_stem().unwrap().to_string_lossy().into_owned(),
                case,
            )
        })
        .collect()
}

pub fn cluster_text() -> String {
    std::fs::read_to_string(root().join("cluster.yaml")).expect("cluster.yaml")
}

pub fn profile(case: &Case) -> ServiceProfile {
    case.profile
        .as_deref()
        .map(|p| p.parse().expect("profile"))
        .unwrap_or_default()
}

/// The model of a case: the base cluster plus its policies.
pub fn model(case: &Case) -> Model {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", &cluster_text());
    loader.load_str("policies.yaml", &case.policies);
    let loaded = loader.finish();
    assert!(
        !loaded.has_errors(),
        "the case does not load: {:?}",
        loaded.diagnostics
    );
    Model::new(
        loaded.cluster,
        Config {
            service_profile: profile(case),
            ..Config::default()
        },
    )
}

/// What `--to` names, as the CLI reads it.
pub fn target(model: &Model, text: &str) -> Target {
    model
        .resolve_target(text, "cluster.local")
        .unwrap_or_else(|e| panic!("--to {text}: {e}"))
}

pub fn sources(model: &Model, text: &str) -> Vec<QueryEndpoint> {
    model
        .resolve_sources(text)
        .unwrap_or_else(|e| panic!("--from {text}: {e}"))
}

pub fn protocol(e: &Expectation) -> Option<Protocol> {
    e.protocol.as_deref().map(|p| p.parse().expect("protocol"))
}

pub fn port(e: &Expectation) -> PortQuery {
    e.port.as_deref().expect("port").parse().expect("port")
}

pub fn backend_name(model: &Model, target: BackendTarget) -> String {
    match target {
        BackendTarget::Endpoint(id) => model.cluster().endpoint_name(id).to_string(),
        BackendTarget::Address(address) => address.to_string(),
    }
}

/// The Service verdicts of a Service query, one per source.
pub fn service_verdicts(model: &Model, e: &Expectation, service: usize) -> Vec<ServiceVerdict> {
    let sources = sources(model, e.from.as_deref().expect("from"));
    let Ok(port) = model.service_port(service, &port(e), protocol(e)) else {
        return Vec::new();
    };
    sources
        .into_iter()
        .map(|from| model.query_service(from, service, port).expect("query"))
        .collect()
}

/// Checks one expectation against the model; returns what differs.
pub fn check(model: &Model, e: &Expectation) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(kind) = &e.exposure {
        check_exposure(model, e, kind, &mut problems);
        return problems;
    }
    let to = e.to.as_deref().expect("to");
    match target(model, to) {
        Target::Endpoint(destination) => {
            let from = model
                .resolve_endpoint(e.from.as_deref().expect("from"))
                .expect("from");
            let verdict = model
                .query(
                    from,
                    destination,
                    &port(e),
                    protocol(e).unwrap_or(Protocol::Tcp),
                )
                .expect("query");
            if Some(verdict.allowed()) != e.allowed {
                problems.push(format!(
                    "allowed: expected {:?}, model says {}",
                    e.allowed,
                    verdict.allowed()
                ));
            }
        }
        Target::Service {
            id: service,
            by_name,
        } => {
            let external_name = model.cluster().services[service].external_name.is_some();
            let verdicts = if external_name {
                Vec::new()
            } else {
                service_verdicts(model, e, service)
            };
            let outcome = if external_name {
                "external-name"
            } else if verdicts.len() == 1 {
                verdicts[0].outcome.as_str()
            } else if verdicts.iter().all(|v| v.allowed()) {
                "allowed"
            } else if verdicts.iter().any(|v| v.allowed_count() > 0) {
                "intermittent"
            } else {
                "denied"
            };
            if e.outcome.as_deref() != Some(outcome) {
                problems.push(format!(
                    "outcome: expected {:?}, model says {outcome}",
                    e.outcome
                ));
            }
            if let [verdict] = verdicts.as_slice() {
                let mut allow = Vec::new();
                let mut deny = Vec::new();
                for b in &verdict.backends {
                    let name = backend_name(model, b.backend.target);
                    if let Some(&port) = e.ports.get(&name)
                        && port != b.backend.port
                    {
                        problems.push(format!(
                            "{name}: expected target port {port}, model says {}",
                            b.backend.port
                        ));
                    }
                    if b.verdict.allowed() {
                        allow.push(name);
                    } else {
                        deny.push(name);
                    }
                }
                for (expected, got, word) in [(&e.allow, &allow, "allow"), (&e.deny, &deny, "deny")]
                {
                    if !expected.is_empty() && expected != got {
                        problems.push(format!("{word}: expected {expected:?}, model says {got:?}"));
                    }
                }
                let excluded: Vec<String> = verdict
                    .excluded
                    .iter()
                    .map(|(id, _)| model.cluster().endpoint_name(*id).to_string())
                    .collect();
                if !e.excluded.is_empty() && e.excluded != excluded {
                    problems.push(format!(
                        "excluded: expected {:?}, model says {excluded:?}",
                        e.excluded
                    ));
                }
            }
            if let Some(expected) = e.dns {
                assert!(by_name, "a DNS expectation needs a DNS name target");
                let from = sources(model, e.from.as_deref().expect("from"))[0];
                let dns = model.dns_verdict(from, ("kube-system", "kube-dns"));
                if dns.allowed() != Some(expected) {
                    problems.push(format!(
                        "dns: expected {expected}, model says {:?}",
                        dns.allowed()
                    ));
                }
            }
        }
    }
    problems
}

fn check_exposure(model: &Model, e: &Expectation, kind: &str, problems: &mut Vec<String>) {
    let entries = exposure(model, &IngressControllers::default());
    let source: IpAddr = e
        .source
        .as_deref()
        .expect("source")
        .parse()
        .expect("source");
    let address: Option<IpAddr> = e.address.as_deref().map(|a| a.parse().expect("address"));
    let port: Option<u16> = e.port.as_deref().map(|p| p.parse().expect("port"));
    let matching: Vec<_> = entries
        .iter()
        .filter(|entry| entry.via.as_str() == kind)
        .filter(|entry| address.is_none() || entry.address == address)
        .filter(|entry| port.is_none() || entry.port == port)
        .filter(|entry| {
            e.ingress.is_none()
                || entry.ingress.as_ref().is_some_and(|(name, _, path)| {
                    Some(name) == e.ingress.as_ref() && path == &e.path
                })
        })
        .collect();
    let [entry] = matching.as_slice() else {
        problems.push(format!(
            "expected one {kind} entry, found {}",
            matching.len()
        ));
        return;
    };
    assert!(entry.via != EntryKind::HostNetwork);
    let name = |id| model.cluster().endpoint_name(id).to_string();
    for pod in &e.reaches {
        match entry.targets.iter().find(|t| &name(t.pod) == pod) {
            Some(t) if t.sources.contains(source) => {}
            Some(_) => problems.push(format!(
                "{pod}: expected {source} to reach it, model blocks it"
            )),
            None => problems.push(format!(
                "{pod}: expected a target, the entry does not lead there"
            )),
        }
    }
    for pod in &e.blocked {
        match entry.targets.iter().find(|t| &name(t.pod) == pod) {
            Some(t) if !t.sources.contains(source) => {}
            Some(_) => problems.push(format!(
                "{pod}: expected {source} blocked, model lets it through"
            )),
            None => problems.push(format!(
                "{pod}: expected a target, the entry does not lead there"
            )),
        }
    }
    for pod in &e.absent {
        if entry.targets.iter().any(|t| &name(t.pod) == pod) {
            problems.push(format!("{pod}: expected the entry not to lead there"));
        }
    }
}
