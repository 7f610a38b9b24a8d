//! `netpol query`: can A reach B on a port, and why.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use policy_core::model::{QueryError, RuleRef};
use policy_core::{Model, PortQuery, Protocol, SideVerdict, Verdict};
use serde_json::{Value, json};

use crate::input::{self, InputArgs};
use crate::{ExitCode, policy_json, policy_label};

/// Arguments of `netpol query`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol query manifests/ --from shop/web --to shop/db --port 5432
  netpol query manifests/ --from shop/web --to shop/db --port postgres
  netpol query manifests/ --from 203.0.113.7 --to shop/web --port 443 --output json
  helm template shop ./chart | netpol query - --from shop/web-0 --to kube-system/coredns-1 --port 53 --protocol UDP

Exit status: 0 when allowed, 1 when denied, 2 on an error (bad arguments,
unreadable input, or input with errors).")]
pub struct QueryArgs {
    #[command(flatten)]
    input: InputArgs,

    /// The source: NAMESPACE/NAME of a pod or workload, or an IP address.
    #[arg(long, value_name = "NS/POD|IP")]
    from: String,

    /// The destination: NAMESPACE/NAME of a pod or workload, or an IP address.
    #[arg(long, value_name = "NS/POD|IP")]
    to: String,

    /// The destination port: a number, or the name of a container port of
    /// the destination.
    #[arg(long, value_name = "PORT")]
    port: PortQuery,

    /// The protocol.
    #[arg(long, value_name = "PROTOCOL", default_value = "TCP")]
    protocol: Protocol,

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
    let from = match model.resolve_endpoint(&args.from) {
        Ok(endpoint) => endpoint,
        Err(message) => return crate::fail(&format!("--from: {message}")),
    };
    let to = match model.resolve_endpoint(&args.to) {
        Ok(endpoint) => endpoint,
        Err(message) => return crate::fail(&format!("--to: {message}")),
    };
    let verdict = match model.query(from, to, &args.port, args.protocol) {
        Ok(verdict) => verdict,
        Err(QueryError::NamedPortToAddress(name)) => {
            return crate::fail(&format!(
                "--port {name}: a named port is resolved on the destination pod, but {} is an address outside the cluster",
                args.to
            ));
        }
        Err(QueryError::NoSuchNamedPort {
            endpoint,
            name,
            protocol,
        }) => {
            return crate::fail(&format!(
                "--port {name}: {} has no {protocol} container port named {name:?}",
                model.cluster().endpoint_name(endpoint)
            ));
        }
    };
    let text = match args.output {
        QueryOutput::Text => render_text(&model, &verdict),
        QueryOutput::Json => format!("{:#}\n", render_json(&model, &verdict)),
    };
    print!("{text}");
    if input_has_errors {
        eprintln!(
            "error: the input has errors (see above); the answer covers only what could be read"
        );
        ExitCode::Error
    } else if verdict.allowed() {
        ExitCode::Success
    } else {
        ExitCode::Failure
    }
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
    }
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
        SideVerdict::HostNetwork => "host-network",
        SideVerdict::FromLocalNode => "from-local-node",
        SideVerdict::ToLocalNode => "to-local-node",
        SideVerdict::SelfTraffic => "self-traffic",
        SideVerdict::AllowedBy(_) => "allowed-by-rule",
        SideVerdict::Denied(_) => "no-rule-matched",
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
