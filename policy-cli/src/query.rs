//! `netpol query`: can A reach B on a port, and why.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use policy_core::admin::Action;
use policy_core::cluster::ServiceType;
use policy_core::model::Target;
use policy_core::model::{AdminRuleRef, TierMatch};
use policy_core::model::{
    BackendTarget, DnsVerdict, Exclusion, QueryError, RuleRef, ServiceId, ServiceOutcome,
    ServiceQueryError, ServiceVerdict,
};
use policy_core::{Model, PortQuery, Protocol, QueryEndpoint, SideVerdict, Verdict};
use serde_json::{Value, json};

use crate::input::{self, InputArgs};
use crate::{ExitCode, policy_json, policy_label};

/// Arguments of `netpol query`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol query manifests/ --from shop/web --to shop/db --port 5432
  netpol query manifests/ --from shop/web --to shop/db --port postgres
  netpol query manifests/ --from shop/web --to service/shop/cart --port http
  netpol query manifests/ --from shop/web --to cart.shop.svc.cluster.local --port 80 --output json
  netpol query manifests/ --from 203.0.113.7 --to shop/web --port 443 --output json
  helm template shop ./chart | netpol query - --from shop/web-0 --to kube-system/coredns-1 --port 53 --protocol UDP

A Service target (service/NS/NAME, svc/NS/NAME, a ClusterIP, or a DNS name
NAME.NS[.svc[.cluster.local]]) is asked of every backend kube-proxy may pick,
on its target port: the answer is allowed only when every backend allows.
A DNS name also gets a DNS verdict (UDP and TCP 53 to the kube-dns pods).

Exit status: 0 when allowed (by every backend), 1 when denied (by any
backend), 2 on an error (bad arguments, an unknown Service or port,
unreadable input, or input with errors).")]
pub struct QueryArgs {
    #[command(flatten)]
    input: InputArgs,

    /// The source: NAMESPACE/NAME of a pod or workload, an IP address, or
    /// service/NAMESPACE/NAME (each of its backends as a source).
    #[arg(long, value_name = "NS/POD|IP|service/NS/NAME")]
    from: String,

    /// The destination: NAMESPACE/NAME of a pod or workload, an IP address,
    /// or a Service (service/NS/NAME, svc/NS/NAME, a ClusterIP, or a DNS
    /// name NAME.NS[.svc[.CLUSTER-DOMAIN]]).
    #[arg(long, value_name = "NS/POD|IP|service/NS/NAME|NAME.NS")]
    to: String,

    /// The destination port: a number, or the name of a container port of
    /// the destination. For a Service, the Service port (number or name).
    #[arg(long, value_name = "PORT")]
    port: PortQuery,

    /// The protocol [default: TCP; for a Service, the port's protocol].
    #[arg(long, value_name = "PROTOCOL")]
    protocol: Option<Protocol>,

    /// The cluster DNS Service, for DNS verdicts.
    #[arg(long, value_name = "NS/NAME", default_value = "kube-system/kube-dns")]
    dns_service: String,

    /// The cluster's DNS domain.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryOutput::Text)]
    output: QueryOutput,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum QueryOutput {
    Text,
    Json,
}

pub fn run(args: QueryArgs) -> ExitCode {
    let (model, input_has_errors) = match input::load_model(&args.input) {
        Ok(loaded) => loaded,
        Err(error) => return crate::fail(&error.0),
    };
    let sources = match model.resolve_sources(&args.from) {
        Ok(sources) => sources,
        Err(message) => return crate::fail(&format!("--from: {message}")),
    };
    let target = match model.resolve_target(&args.to, &args.cluster_domain) {
        Ok(target) => target,
        Err(message) => return crate::fail(&format!("--to: {message}")),
    };
    let (allowed, text) = match target {
        Target::Endpoint(to) => {
            let protocol = args.protocol.unwrap_or(Protocol::Tcp);
            let mut verdicts = Vec::new();
            for &from in &sources {
                match endpoint_verdict(&model, from, to, &args, protocol) {
                    Ok(verdict) => verdicts.push(verdict),
                    Err(code) => return code,
                }
            }
            let allowed = verdicts.iter().all(Verdict::allowed);
            let text = match args.output {
                QueryOutput::Text => verdicts.iter().map(|v| render_text(&model, v)).collect(),
                QueryOutput::Json if verdicts.len() == 1 => {
                    format!("{:#}\n", render_json(&model, &verdicts[0]))
                }
                QueryOutput::Json => {
                    let all: Vec<Value> = verdicts.iter().map(|v| render_json(&model, v)).collect();
                    format!("{:#}\n", json!({"allowed": allowed, "verdicts": all}))
                }
            };
            (allowed, text)
        }
        Target::Service { id, .. }
            if model.cluster().services[id].service_type == ServiceType::ExternalName =>
        {
            let service = &model.cluster().services[id];
            let target = service.external_name.clone().unwrap_or_default();
            let text = match args.output {
                QueryOutput::Text => format!(
                    "{} -> service {}: UNKNOWN: ExternalName Service: a DNS alias for {target:?}; nothing is proxied, and where the name leads is outside the model (egress to it is decided by ipBlocks on the addresses it resolves to)\n",
                    args.from,
                    service.reference()
                ),
                QueryOutput::Json => format!(
                    "{:#}\n",
                    json!({
                        "allowed": false,
                        "outcome": "external-name",
                        "from": args.from,
                        "to": args.to,
                        "service": service.reference(),
                        "type": "ExternalName",
                        "external_name": target,
                        "backends": [],
                        "dns": null,
                    })
                ),
            };
            (false, text)
        }
        Target::Service { id, by_name } => {
            let port = match model.service_port(id, &args.port, args.protocol) {
                Ok(port) => port,
                Err(error) => return service_error(&model, id, error),
            };
            let mut verdicts = Vec::new();
            for &from in &sources {
                match model.query_service(from, id, port) {
                    Ok(verdict) => verdicts.push(verdict),
                    Err(error) => return service_error(&model, id, error),
                }
            }
            let dns_service = args
                .dns_service
                .split_once('/')
                .unwrap_or(("kube-system", args.dns_service.as_str()));
            let dns: Vec<Option<DnsVerdict>> = sources
                .iter()
                .map(|&from| by_name.then(|| model.dns_verdict(from, dns_service)))
                .collect();
            let allowed = verdicts.iter().all(ServiceVerdict::allowed);
            let text = match args.output {
                QueryOutput::Text => verdicts
                    .iter()
                    .zip(&dns)
                    .map(|(v, d)| render_service_text(&model, v, d.as_ref(), &args))
                    .collect(),
                QueryOutput::Json => format!(
                    "{:#}\n",
                    render_service_json(&model, &verdicts, &dns, &args)
                ),
            };
            (allowed, text)
        }
    };
    print!("{text}");
    if input_has_errors {
        eprintln!(
            "error: the input has errors (see above); the answer covers only what could be read"
        );
        ExitCode::Error
    } else if allowed {
        ExitCode::Success
    } else {
        ExitCode::Failure
    }
}

fn endpoint_verdict(
    model: &Model,
    from: QueryEndpoint,
    to: QueryEndpoint,
    args: &QueryArgs,
    protocol: Protocol,
) -> Result<Verdict, ExitCode> {
    match model.query(from, to, &args.port, protocol) {
        Ok(verdict) => Ok(verdict),
        Err(QueryError::NamedPortToAddress(name)) => Err(crate::fail(&format!(
            "--port {name}: a named port is resolved on the destination pod, but {} is an address outside the cluster",
            args.to
        ))),
        Err(QueryError::NoSuchNamedPort {
            endpoint,
            name,
            protocol,
        }) => Err(crate::fail(&format!(
            "--port {name}: {} has no {protocol} container port named {name:?}",
            model.cluster().endpoint_name(endpoint)
        ))),
    }
}

fn service_error(model: &Model, service: ServiceId, error: ServiceQueryError) -> ExitCode {
    let service = &model.cluster().services[service];
    match error {
        ServiceQueryError::NoSuchPort { port, available } => crate::fail(&format!(
            "--port {port}: Service {} has no such port (it has {})",
            service.reference(),
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        )),
        ServiceQueryError::Query(error) => crate::fail(&format!("{error:?}")),
    }
}

fn exclusion_text(exclusion: &Exclusion) -> String {
    match exclusion {
        Exclusion::NoSuchNamedPort(name) => {
            format!("has no container port named {name:?}, so it is no backend of this port")
        }
        Exclusion::NotReady => "is not Ready, so it gets no traffic".to_string(),
    }
}

fn render_service_text(
    model: &Model,
    verdict: &ServiceVerdict,
    dns: Option<&DnsVerdict>,
    args: &QueryArgs,
) -> String {
    let cluster = model.cluster();
    let service = &cluster.services[verdict.service];
    let port = &service.ports[verdict.port];
    let from = model.endpoint_label(verdict.from);
    let total = verdict.backends.len();
    let allowed = verdict.allowed_count();
    let mut out = String::new();
    let headline = match &verdict.outcome {
        ServiceOutcome::Allowed => format!("ALLOWED: {allowed} of {total} backends allow"),
        ServiceOutcome::Intermittent => {
            format!(
                "INTERMITTENT: {allowed} of {total} backends: intermittent (it depends on the backend kube-proxy picks)"
            )
        }
        ServiceOutcome::Denied => format!("DENIED: 0 of {total} backends allow"),
        ServiceOutcome::NoBackends => {
            "DENIED: the Service has no backend for this client; kube-proxy rejects the connection"
                .to_string()
        }
        ServiceOutcome::ExternalName(name) => format!(
            "UNKNOWN: ExternalName Service: a DNS alias for {name:?}; nothing is proxied, and where the name leads is outside the model (egress to it is decided by ipBlocks on the addresses it resolves to)"
        ),
    };
    let _ = writeln!(
        out,
        "{} -> service {} port {}: {headline}",
        from,
        service.reference(),
        port.label(),
    );
    for backend in &verdict.backends {
        let to = model.endpoint_label(backend.verdict.to);
        let ports = port_label(&backend.verdict);
        let _ = writeln!(
            out,
            "  backend {to} on {ports}: {}",
            if backend.verdict.allowed() {
                "allowed"
            } else {
                "DENIED"
            }
        );
        let _ = writeln!(
            out,
            "    egress of {from}: {}",
            side_text(model, &backend.verdict.egress, &from, &to, &ports, false)
        );
        let _ = writeln!(
            out,
            "    ingress of {to}: {}",
            side_text(model, &backend.verdict.ingress, &to, &from, &ports, true)
        );
    }
    for (endpoint, exclusion) in &verdict.excluded {
        let _ = writeln!(
            out,
            "  not a backend: {} {}",
            cluster.endpoint_name(*endpoint),
            exclusion_text(exclusion)
        );
    }
    if verdict.other_node_backends > 0 {
        let _ = writeln!(
            out,
            "  internalTrafficPolicy: Local leaves out {} backend(s) on other nodes",
            verdict.other_node_backends
        );
    }
    if let Some(dns) = dns {
        let _ = writeln!(out, "  {}", dns_text(model, dns, &args.dns_service));
    }
    out
}

fn dns_text(model: &Model, dns: &DnsVerdict, dns_service: &str) -> String {
    let side = |v: &Option<ServiceVerdict>| match v {
        None => "no such port".to_string(),
        Some(v) => format!("{} of {} backends", v.allowed_count(), v.backends.len()),
    };
    match dns.allowed() {
        None => format!(
            "DNS: unknown: the input has no Service {dns_service}, so whether the name resolves cannot be told"
        ),
        Some(allowed) => format!(
            "DNS ({}): {}: UDP 53 {}, TCP 53 {}",
            model.cluster().services[dns.service.expect("known")].reference(),
            if allowed {
                "allowed"
            } else {
                "DENIED (the name may not resolve)"
            },
            side(&dns.udp),
            side(&dns.tcp)
        ),
    }
}

fn service_verdict_json(model: &Model, verdict: &ServiceVerdict) -> Vec<Value> {
    let cluster = model.cluster();
    verdict
        .backends
        .iter()
        .map(|backend| {
            let (pod, address) = match backend.backend.target {
                BackendTarget::Endpoint(id) => (Some(cluster.endpoint_name(id).to_string()), None),
                BackendTarget::Address(address) => (None, Some(address.to_string())),
            };
            json!({
                "from": model.endpoint_label(verdict.from),
                "pod": pod,
                "address": address,
                "node": backend.backend.node,
                "port": backend.backend.port,
                "protocol": backend.backend.protocol.as_str(),
                "allowed": backend.verdict.allowed(),
                "egress": side_json(model, &backend.verdict.egress),
                "ingress": side_json(model, &backend.verdict.ingress),
            })
        })
        .collect()
}

fn render_service_json(
    model: &Model,
    verdicts: &[ServiceVerdict],
    dns: &[Option<DnsVerdict>],
    args: &QueryArgs,
) -> Value {
    let cluster = model.cluster();
    let first = &verdicts[0];
    let service = &cluster.services[first.service];
    let port = &service.ports[first.port];
    let allowed = verdicts.iter().all(ServiceVerdict::allowed);
    let outcome = if verdicts.len() == 1 {
        first.outcome.as_str()
    } else if allowed {
        "allowed"
    } else if verdicts.iter().any(|v| v.allowed_count() > 0) {
        "intermittent"
    } else {
        "denied"
    };
    let backends: Vec<Value> = verdicts
        .iter()
        .flat_map(|v| service_verdict_json(model, v))
        .collect();
    let excluded: Vec<Value> = first
        .excluded
        .iter()
        .map(|(id, exclusion)| {
            json!({
                "pod": cluster.endpoint_name(*id).to_string(),
                "reason": match exclusion {
                    Exclusion::NoSuchNamedPort(_) => "no-such-named-port",
                    Exclusion::NotReady => "not-ready",
                },
                "message": exclusion_text(exclusion),
            })
        })
        .collect();
    let dns_json = |d: &DnsVerdict| {
        json!({
            "allowed": d.allowed(),
            "service": d.service.map(|s| cluster.services[s].reference()).unwrap_or_else(|| args.dns_service.clone()),
            "udp": d.udp.as_ref().map(ServiceVerdict::allowed),
            "tcp": d.tcp.as_ref().map(ServiceVerdict::allowed),
        })
    };
    let dns_value = match dns {
        [None, ..] | [] => Value::Null,
        [Some(single)] => dns_json(single),
        several => {
            let all: Vec<Option<bool>> =
                several.iter().flatten().map(DnsVerdict::allowed).collect();
            let mut value = dns_json(several[0].as_ref().expect("by name"));
            value["allowed"] = json!(if all.contains(&None) {
                None
            } else {
                Some(all.iter().all(|a| *a == Some(true)))
            });
            value
        }
    };
    json!({
        "allowed": allowed,
        "outcome": outcome,
        "from": args.from,
        "to": args.to,
        "service": service.reference(),
        "type": service.service_type.as_str(),
        "service_port": {
            "name": port.name,
            "port": port.port,
            "protocol": port.protocol.as_str(),
            "target_port": port.target_port.to_string(),
        },
        "external_name": service.external_name,
        "protocol": port.protocol.as_str(),
        "backends": backends,
        "excluded": excluded,
        "dns": dns_value,
    })
}

fn port_label(verdict: &Verdict) -> String {
    match &verdict.port_name {
        Some(name) => format!("{} {} ({name})", verdict.protocol, verdict.port),
        None => format!("{} {}", verdict.protocol, verdict.port),
    }
}

fn rule_label(model: &Model, rule: &RuleRef) -> String {
    let policy = &model.cluster().policies[rule.policy];
    let rule_source = policy
        .rules(rule.direction)
        .and_then(|rules| rules.iter().find(|r| r.index == rule.index))
        .and_then(|r| r.source.as_ref())
        .map(|source| format!(" ({source})"))
        .unwrap_or_default();
    format!(
        "{}/{} {}[{}]{rule_source}",
        policy.namespace,
        policy.name,
        rule.direction.field(),
        rule.index
    )
}

fn side_text(
    model: &Model,
    side: &SideVerdict,
    subject: &str,
    peer: &str,
    ports: &str,
    ingress: bool,
) -> String {
    match side {
        SideVerdict::NotIsolated => format!(
            "allowed: not isolated (no NetworkPolicy selects {subject} for {})",
            if ingress { "ingress" } else { "egress" }
        ),
        SideVerdict::OutsideCluster => {
            format!("allowed: {subject} is outside the cluster; no NetworkPolicy applies to it")
        }
        SideVerdict::NodeTraffic => {
            format!("allowed: {subject} is a node's address; no NetworkPolicy applies to nodes")
        }
        SideVerdict::HostNetwork => {
            format!(
                "allowed: {subject} uses the host network; its traffic is node traffic, which no NetworkPolicy selects"
            )
        }
        SideVerdict::FromLocalNode => {
            format!(
                "allowed: {peer} is node traffic from {subject}'s own node, which is always allowed in"
            )
        }
        SideVerdict::ToLocalNode => format!(
            "allowed: {peer} is node traffic on {subject}'s own node, which is always allowed out"
        ),
        SideVerdict::SelfTraffic => "allowed: a pod reaching itself is always allowed".to_string(),
        SideVerdict::AllowedBy(rules) => {
            let rules: Vec<String> = rules.iter().map(|r| rule_label(model, r)).collect();
            format!("allowed by {}", rules.join(", "))
        }
        SideVerdict::Denied(policies) => {
            let policies: Vec<String> = policies.iter().map(|&p| policy_label(model, p)).collect();
            format!(
                "DENIED: isolated by {}; none of their rules allows traffic {} {peer} on {ports}",
                policies.join(", "),
                if ingress { "from" } else { "to" }
            )
        }
        SideVerdict::Admin(decision) => format!(
            "{} by {}, in the admin tier, before any NetworkPolicy{}",
            tier_action(decision),
            decision.rule.label(model.cluster()),
            ambiguity(model, decision)
        ),
        SideVerdict::Baseline(decision) => format!(
            "{} by {}, in the baseline tier, as no NetworkPolicy selects {subject} for {}{}",
            tier_action(decision),
            decision.rule.label(model.cluster()),
            if ingress { "ingress" } else { "egress" },
            ambiguity(model, decision)
        ),
    }
}

fn tier_action(decision: &TierMatch) -> &'static str {
    match decision.action {
        Action::Accept => "allowed: accepted",
        Action::Deny => "DENIED: denied",
        Action::Pass => "passed",
    }
}

/// Same-priority policies that disagree: the API lets an implementation
/// apply either, so say so rather than pick one silently.
fn ambiguity(model: &Model, decision: &TierMatch) -> String {
    if decision.ambiguous_with.is_empty() {
        return String::new();
    }
    let others: Vec<String> = (decision.ambiguous_with.iter())
        .map(|rule| rule.label(model.cluster()))
        .collect();
    format!(
        " (AMBIGUOUS: {} {} the same priority and {} with another action; an implementation may apply either)",
        others.join(", "),
        if others.len() == 1 { "has" } else { "have" },
        if others.len() == 1 {
            "matches"
        } else {
            "match"
        },
    )
}

fn tier_json(model: &Model, decision: &TierMatch) -> Value {
    let describe = |rule: &AdminRuleRef| {
        let policy = &model.cluster().admin_policies[rule.policy];
        json!({
            "kind": policy.kind.as_str(),
            "name": policy.name,
            "tier": policy.tier.as_str(),
            "priority": policy.priority,
            "direction": rule.direction.as_str(),
            "index": rule.index,
            "rule": rule.rule(model.cluster()).and_then(|r| r.name.clone()),
        })
    };
    json!({
        "action": decision.action.as_str(),
        "rule": describe(&decision.rule),
        "ambiguous_with": decision.ambiguous_with.iter().map(describe).collect::<Vec<_>>(),
    })
}

fn render_text(model: &Model, verdict: &Verdict) -> String {
    let from = model.endpoint_label(verdict.from);
    let to = model.endpoint_label(verdict.to);
    let ports = port_label(verdict);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {from} -> {to} on {ports}",
        if verdict.allowed() {
            "ALLOWED"
        } else {
            "DENIED"
        }
    );
    let _ = writeln!(
        out,
        "  egress of {from}: {}",
        side_text(model, &verdict.egress, &from, &to, &ports, false)
    );
    let _ = writeln!(
        out,
        "  ingress of {to}: {}",
        side_text(model, &verdict.ingress, &to, &from, &ports, true)
    );
    out
}

fn side_json(model: &Model, side: &SideVerdict) -> Value {
    let reason = match side {
        SideVerdict::NotIsolated => "not-isolated",
        SideVerdict::OutsideCluster => "outside-cluster",
        SideVerdict::NodeTraffic => "node",
        SideVerdict::HostNetwork => "host-network",
        SideVerdict::FromLocalNode => "from-local-node",
        SideVerdict::ToLocalNode => "to-local-node",
        SideVerdict::SelfTraffic => "self-traffic",
        SideVerdict::AllowedBy(_) => "allowed-by-rule",
        SideVerdict::Denied(_) => "no-rule-matched",
        SideVerdict::Admin(_) => "admin-tier",
        SideVerdict::Baseline(_) => "baseline-tier",
    };
    let tier = match side {
        SideVerdict::Admin(decision) | SideVerdict::Baseline(decision) => {
            tier_json(model, decision)
        }
        _ => Value::Null,
    };
    let rules: Vec<Value> = match side {
        SideVerdict::AllowedBy(rules) => rules
            .iter()
            .map(|rule| {
                let mut value = policy_json(model, rule.policy);
                value["rule"] = json!(format!("{}[{}]", rule.direction.field(), rule.index));
                value["direction"] = json!(rule.direction.as_str());
                value["index"] = json!(rule.index);
                value
            })
            .collect(),
        _ => Vec::new(),
    };
    let isolated_by: Vec<Value> = match side {
        SideVerdict::Denied(policies) => policies.iter().map(|&p| policy_json(model, p)).collect(),
        _ => Vec::new(),
    };
    json!({
        "allowed": side.allowed(),
        "reason": reason,
        "rules": rules,
        "isolated_by": isolated_by,
        "tier_rule": tier,
    })
}

fn render_json(model: &Model, verdict: &Verdict) -> Value {
    json!({
        "allowed": verdict.allowed(),
        "from": model.endpoint_label(verdict.from),
        "to": model.endpoint_label(verdict.to),
        "protocol": verdict.protocol.as_str(),
        "port": verdict.port,
        "port_name": verdict.port_name,
        "egress": side_json(model, &verdict.egress),
        "ingress": side_json(model, &verdict.ingress),
    })
}
