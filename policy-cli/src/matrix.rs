//! `netpol matrix`: the connectivity of every pair of endpoints.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::{Args, ValueEnum};
use policy_core::model::PortMatrix;
use policy_core::{Model, PortQuery, PortSet, Protocol, SelfTraffic};
use serde_json::{Value, json};

use crate::ExitCode;
use crate::input::{self, InputArgs};

/// Arguments of `netpol matrix`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol matrix examples/demo/                       # every pair's allowed ports
  netpol matrix examples/demo/ --port 80             # the TCP/80 truth table
  netpol matrix examples/demo/ --port 53 --protocol UDP --output json
  netpol matrix examples/demo/ --output dot | dot -Tsvg > reachability.svg

With --port, text output is a grid like the upstream e2e truth tables: rows
are sources, columns destinations, X allowed, . denied. Without --port, each
ordered pair gets its allowed connection set (`TCP 80,443; UDP 53`, `all` or
`none`). A named --port is resolved on each destination; destinations
without that port show as denied.")]
pub struct MatrixArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Only this destination port: a number, or a container port name.
    #[arg(long, value_name = "PORT")]
    port: Option<PortQuery>,

    /// The protocol (with --port).
    #[arg(
        long,
        value_name = "PROTOCOL",
        default_value = "TCP",
        requires = "port"
    )]
    protocol: Protocol,

    /// Output format.
    #[arg(long, value_enum, default_value_t = MatrixOutput::Text)]
    output: MatrixOutput,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum MatrixOutput {
    Text,
    Json,
    Csv,
    Dot,
}

pub fn run(args: MatrixArgs) -> ExitCode {
    let (model, input_has_errors) = match input::load_model(&args.input) {
        Ok(loaded) => loaded,
        Err(error) => return crate::fail(&error.0),
    };
    let names: Vec<String> = (0..model.cluster().endpoints.len())
        .map(|id| model.cluster().endpoint_name(id).to_string())
        .collect();
    let output = match &args.port {
        Some(port) => {
            let matrix = model.port_matrix(args.protocol, port);
            match args.output {
                MatrixOutput::Text => port_text(&matrix, &names),
                MatrixOutput::Json => format!("{}\n", port_json(&matrix, &names)),
                MatrixOutput::Csv => port_csv(&matrix, &names),
                MatrixOutput::Dot => port_dot(&model, &matrix, &names),
            }
        }
        None => {
            let pairs = connection_pairs(&model);
            match args.output {
                MatrixOutput::Text => connections_text(&pairs, &names),
                MatrixOutput::Json => format!("{:#}\n", connections_json(&pairs, &names)),
                MatrixOutput::Csv => connections_csv(&pairs, &names),
                MatrixOutput::Dot => connections_dot(&model, &pairs, &names),
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(output.as_bytes())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        // A closed pipe (`| head`) is not an error worth reporting.
        return ExitCode::Success;
    }
    if input_has_errors {
        eprintln!(
            "error: the input has errors (see above); the matrix covers only what could be read"
        );
        ExitCode::Error
    } else {
        ExitCode::Success
    }
}

fn port_title(matrix: &PortMatrix<'_>) -> String {
    format!("{}/{}", matrix.protocol(), matrix.port())
}

fn port_text(matrix: &PortMatrix<'_>, names: &[String]) -> String {
    let title = port_title(matrix);
    let width = names
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(title.len());
    let mut out = String::new();
    let _ = write!(out, "{title:<width$}");
    for name in names {
        let _ = write!(out, " {name}");
    }
    out.push('\n');
    for (source, source_name) in names.iter().enumerate() {
        let _ = write!(out, "{source_name:<width$}");
        for (destination, destination_name) in names.iter().enumerate() {
            let cell = if matrix.allowed(source, destination) {
                'X'
            } else {
                '.'
            };
            // Centre the mark under its column header.
            let column = destination_name.len();
            let left = column / 2;
            let _ = write!(
                out,
                " {:>left$}{cell}{:right$}",
                "",
                "",
                right = column - left - 1
            );
        }
        out.truncate(out.trim_end_matches(' ').len());
        out.push('\n');
    }
    out
}

fn port_json(matrix: &PortMatrix<'_>, names: &[String]) -> Value {
    let mut allowed = Vec::new();
    for (source, source_name) in names.iter().enumerate() {
        for (destination, destination_name) in names.iter().enumerate() {
            if matrix.allowed(source, destination) {
                allowed.push(json!({"from": source_name, "to": destination_name}));
            }
        }
    }
    let port = match matrix.port() {
        PortQuery::Number(number) => json!(number),
        PortQuery::Name(name) => json!(name),
    };
    json!({
        "port": port,
        "protocol": matrix.protocol().as_str(),
        "pods": names,
        "allowed": allowed,
    })
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn port_csv(matrix: &PortMatrix<'_>, names: &[String]) -> String {
    let mut out = String::from("from,to,protocol,port,allowed\n");
    for (source, source_name) in names.iter().enumerate() {
        for (destination, destination_name) in names.iter().enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                csv_field(source_name),
                csv_field(destination_name),
                matrix.protocol(),
                csv_field(&matrix.port().to_string()),
                matrix.allowed(source, destination)
            );
        }
    }
    out
}

fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Nodes grouped into one cluster per namespace.
fn dot_nodes(model: &Model, names: &[String], out: &mut String) {
    let mut namespaces: Vec<&str> = model
        .cluster()
        .endpoints
        .iter()
        .map(|e| e.namespace.as_str())
        .collect();
    namespaces.dedup();
    for (index, namespace) in namespaces.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{index} {{");
        let _ = writeln!(out, "    label={};", dot_id(namespace));
        for (id, endpoint) in model.cluster().endpoints.iter().enumerate() {
            if endpoint.namespace == *namespace {
                let _ = writeln!(
                    out,
                    "    {} [label={}];",
                    dot_id(&names[id]),
                    dot_id(&endpoint.name)
                );
            }
        }
        let _ = writeln!(out, "  }}");
    }
}

fn port_dot(model: &Model, matrix: &PortMatrix<'_>, names: &[String]) -> String {
    let mut out = format!(
        "digraph netpol {{\n  label={};\n  node [shape=box];\n",
        dot_id(&port_title(matrix))
    );
    dot_nodes(model, names, &mut out);
    for (source, source_name) in names.iter().enumerate() {
        for (destination, destination_name) in names.iter().enumerate() {
            if source != destination && matrix.allowed(source, destination) {
                let _ = writeln!(
                    out,
                    "  {} -> {};",
                    dot_id(source_name),
                    dot_id(destination_name)
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Every ordered pair with its connection set. Self pairs are listed only
/// when they are evaluated like other pairs.
fn connection_pairs(model: &Model) -> Vec<(usize, usize, PortSet)> {
    let endpoints = model.cluster().endpoints.len();
    let include_self = model.config().self_traffic == SelfTraffic::Evaluate;
    let mut matrix = model.connection_matrix();
    let mut pairs = Vec::new();
    for source in 0..endpoints {
        for destination in 0..endpoints {
            if source != destination || include_self {
                pairs.push((source, destination, matrix.get(source, destination)));
            }
        }
    }
    pairs
}

fn connections_text(pairs: &[(usize, usize, PortSet)], names: &[String]) -> String {
    let mut out = String::new();
    for (source, destination, ports) in pairs {
        let _ = writeln!(
            out,
            "{} -> {}: {ports}",
            names[*source], names[*destination]
        );
    }
    out
}

fn ports_json(ports: &PortSet) -> Value {
    let mut by_protocol = serde_json::Map::new();
    for protocol in Protocol::ALL {
        let ranges: Vec<Value> = ports
            .ranges(protocol)
            .iter()
            .map(|&(first, last)| json!([first, last]))
            .collect();
        if !ranges.is_empty() {
            by_protocol.insert(protocol.as_str().to_string(), Value::Array(ranges));
        }
    }
    Value::Object(by_protocol)
}

fn connections_json(pairs: &[(usize, usize, PortSet)], names: &[String]) -> Value {
    let connections: Vec<Value> = pairs
        .iter()
        .filter(|(_, _, ports)| !ports.is_empty())
        .map(|(source, destination, ports)| {
            json!({
                "from": names[*source],
                "to": names[*destination],
                "all": ports.is_all(),
                "ports": ports_json(ports),
                "summary": ports.to_string(),
            })
        })
        .collect();
    json!({ "pods": names, "connections": connections })
}

fn connections_csv(pairs: &[(usize, usize, PortSet)], names: &[String]) -> String {
    let mut out = String::from("from,to,connections\n");
    for (source, destination, ports) in pairs {
        let _ = writeln!(
            out,
            "{},{},{}",
            csv_field(&names[*source]),
            csv_field(&names[*destination]),
            csv_field(&ports.to_string())
        );
    }
    out
}

fn connections_dot(model: &Model, pairs: &[(usize, usize, PortSet)], names: &[String]) -> String {
    let mut out = String::from("digraph netpol {\n  node [shape=box];\n");
    dot_nodes(model, names, &mut out);
    for (source, destination, ports) in pairs {
        if !ports.is_empty() && source != destination {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                dot_id(&names[*source]),
                dot_id(&names[*destination]),
                dot_id(&ports.to_string())
            );
        }
    }
    out.push_str("}\n");
    out
}
