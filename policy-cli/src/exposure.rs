//! `netpol exposure`: every way into the cluster from outside, and who gets
//! through once policies apply.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use policy_core::Model;
use policy_core::exposure::{Entry, IngressControllers, exposure};
use policy_core::ipset::IpSet;
use policy_core::selector::Labels;
use serde_json::{Value, json};

use crate::ExitCode;
use crate::input::{self, InputArgs};

/// Arguments of `netpol exposure`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol exposure manifests/
  netpol exposure --cluster --output markdown > exposure.md
  netpol exposure manifests/ --profile client-preserved --output json

Entry points: NodePorts on each node address, load-balancer addresses (with
loadBalancerSourceRanges), externalIPs, Ingress host/path routes through the
ingress controller's pods, hostPorts, and host-network pods. For each entry,
the pods and target ports it leads to and the outside addresses that get
through under --profile; `client hidden` marks paths where the service
proxy's source NAT shows the pod a node's address instead of the client's.

Exit status: 0 when read without errors, 2 on an error.")]
pub struct ExposureArgs {
    #[command(flatten)]
    input: InputArgs,

    /// The ingress controller's pods, overriding the IngressClasses:
    /// NAMESPACE/KEY=VALUE[,KEY=VALUE...] or KEY=VALUE[,...] (any namespace).
    /// Default: ingress-nginx's pod labels for IngressClasses of
    /// k8s.io/ingress-nginx.
    #[arg(long, value_name = "[NS/]SELECTOR", value_parser = parse_controller)]
    ingress_controller: Option<(Option<String>, Labels)>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ExposureOutput::Text)]
    output: ExposureOutput,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ExposureOutput {
    Text,
    Json,
    Markdown,
}

fn parse_controller(text: &str) -> Result<(Option<String>, Labels), String> {
    // `NS/SELECTOR` only when the part before the first slash is a namespace
    // name: a label key may itself hold a slash (app.kubernetes.io/name=x),
    // but its prefix has dots, which a namespace never has.
    let (namespace, selector) = match text.split_once('/') {
        Some((namespace, selector)) if policy_core::validate::dns1123_label(namespace).is_ok() => {
            (Some(namespace.to_string()), selector)
        }
        _ => (None, text),
    };
    let mut labels = Labels::new();
    for pair in selector.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: write KEY=VALUE"))?;
        labels.insert(key.trim().to_string(), value.trim().to_string());
    }
    if labels.is_empty() {
        return Err("the selector needs at least one KEY=VALUE".into());
    }
    Ok((namespace, labels))
}

pub fn run(args: ExposureArgs) -> ExitCode {
    let (model, input_has_errors) = match input::load_model(&args.input) {
        Ok(loaded) => loaded,
        Err(error) => return crate::fail(&error.0),
    };
    let controllers = IngressControllers {
        selector: args.ingress_controller.clone(),
    };
    let entries = exposure(&model, &controllers);
    let text = match args.output {
        ExposureOutput::Text => render_text(&model, &entries),
        ExposureOutput::Json => format!("{:#}\n", render_json(&model, &entries)),
        ExposureOutput::Markdown => render_markdown(&model, &entries),
    };
    print!("{text}");
    if input_has_errors {
        eprintln!(
            "error: the input has errors (see above); the answer covers only what could be read"
        );
        ExitCode::Error
    } else {
        ExitCode::Success
    }
}

/// CIDR strings; everything is `0.0.0.0/0` and `::/0`.
fn cidrs(set: &IpSet) -> Vec<String> {
    set.to_cidrs().iter().map(ToString::to_string).collect()
}

fn sources_text(set: &IpSet) -> String {
    if set.is_empty() {
        return "nobody".to_string();
    }
    let all = cidrs(set);
    if all.len() > 6 {
        format!("{} and {} more ranges", all[..6].join(", "), all.len() - 6)
    } else {
        all.join(", ")
    }
}

fn entry_title(model: &Model, entry: &Entry) -> String {
    let service = entry
        .service
        .map(|s| format!(" -> service {}", model.cluster().services[s].reference()))
        .unwrap_or_default();
    let port = entry
        .port
        .map_or("<allocated>".to_string(), |p| p.to_string());
    match &entry.ingress {
        Some((name, host, path)) => format!(
            "Ingress {name} {}{}{service}",
            host.as_deref().unwrap_or("*"),
            path.as_deref().unwrap_or(" (default backend)")
        ),
        None => {
            let address = match (&entry.address, &entry.hostname) {
                (Some(address), _) => address.to_string(),
                (None, Some(hostname)) => hostname.clone(),
                (None, None) => "<each node>".to_string(),
            };
            let node = entry
                .node
                .as_ref()
                .map(|n| format!(" (node {n})"))
                .unwrap_or_default();
            format!(
                "{} {address}{node} {} {port}{service}",
                entry.via.as_str(),
                entry.protocol
            )
        }
    }
}

fn render_text(model: &Model, entries: &[Entry]) -> String {
    let cluster = model.cluster();
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str(
            "No entry points: nothing in the input is reachable from outside the cluster.\n",
        );
        return out;
    }
    for entry in entries {
        let _ = writeln!(out, "{}", entry_title(model, entry));
        for target in &entry.targets {
            let hidden = if target.client_hidden {
                " [client hidden by SNAT or proxy]"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  -> {} port {}: from {}{hidden}",
                cluster.endpoint_name(target.pod),
                target.port,
                sources_text(&target.sources)
            );
        }
        if entry.targets.is_empty() {
            out.push_str("  -> no pod\n");
        }
        for note in &entry.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    let reached = entries
        .iter()
        .flat_map(|e| &e.targets)
        .filter(|t| !t.sources.is_empty())
        .count();
    let _ = writeln!(
        out,
        "{} entry points; {reached} entry-to-pod paths let someone in under profile {}",
        entries.len(),
        model.config().service_profile
    );
    out
}

fn render_json(model: &Model, entries: &[Entry]) -> Value {
    let cluster = model.cluster();
    let mut rows = Vec::new();
    for entry in entries {
        let base = json!({
            "via": entry.via.as_str(),
            "address": entry.address.map(|a| a.to_string()),
            "hostname": entry.hostname,
            "node": entry.node,
            "entry_port": entry.port,
            "service": entry.service.map(|s| cluster.services[s].reference()),
            "ingress": entry.ingress.as_ref().map(|(name, host, path)| json!({"name": name, "host": host, "path": path})),
            "protocol": entry.protocol.as_str(),
            "notes": entry.notes,
        });
        if entry.targets.is_empty() {
            let mut row = base.clone();
            row["pod"] = Value::Null;
            row["port"] = Value::Null;
            row["sources"] = json!([]);
            row["client_hidden"] = json!(false);
            rows.push(row);
        }
        for target in &entry.targets {
            let mut row = base.clone();
            row["pod"] = json!(cluster.endpoint_name(target.pod).to_string());
            row["port"] = json!(target.port);
            row["sources"] = json!(cidrs(&target.sources));
            row["client_hidden"] = json!(target.client_hidden);
            if !target.via_controllers.is_empty() {
                row["controllers"] = json!(
                    target
                        .via_controllers
                        .iter()
                        .map(|&c| cluster.endpoint_name(c).to_string())
                        .collect::<Vec<_>>()
                );
            }
            rows.push(row);
        }
    }
    json!({
        "profile": model.config().service_profile.as_str(),
        "entries": rows,
    })
}

fn render_markdown(model: &Model, entries: &[Entry]) -> String {
    let cluster = model.cluster();
    let mut out = String::from("## Exposure\n\n");
    let _ = writeln!(
        out,
        "Profile `{}`. {} entry points.\n",
        model.config().service_profile,
        entries.len()
    );
    out.push_str("| entry | pod | port | sources | client hidden |\n|---|---|---|---|---|\n");
    for entry in entries {
        let title = entry_title(model, entry).replace('|', "\\|");
        if entry.targets.is_empty() {
            let _ = writeln!(out, "| {title} | (none) | | | |");
        }
        for target in &entry.targets {
            let _ = writeln!(
                out,
                "| {title} | `{}` | {} | {} | {} |",
                cluster.endpoint_name(target.pod),
                target.port,
                sources_text(&target.sources),
                if target.client_hidden { "yes" } else { "no" }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_controller;

    #[test]
    fn a_namespace_prefix_is_told_from_a_label_key_prefix() {
        let (namespace, labels) =
            parse_controller("ingress-nginx/app.kubernetes.io/name=ingress-nginx").unwrap();
        assert_eq!(namespace.as_deref(), Some("ingress-nginx"));
        assert_eq!(labels["app.kubernetes.io/name"], "ingress-nginx");
        let (namespace, labels) =
            parse_controller("app.kubernetes.io/name=ingress-nginx,tier=edge").unwrap();
        assert_eq!(namespace, None);
        assert_eq!(labels.len(), 2);
        assert!(parse_controller("ingress-nginx/").is_err());
        assert!(parse_controller("app=").is_ok());
        assert!(parse_controller("novalue").is_err());
    }
}
