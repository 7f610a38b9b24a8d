//! `netpol matrix`: the connectivity of every pair of endpoints, or of
//! every client workload with every Service port (`--by service`).

use std::fmt::Write as _;
use std::io::{self, Write};

use clap::{Args, ValueEnum};
use policy_core::cluster::{ServicePort, ServiceType};
use policy_core::model::{
    BackendTarget, PodOutcomes, PortMatrix, ServiceCell, ServiceCellOutcome, ServiceMatrix,
    ServiceMatrixColumn,
};
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
  netpol matrix examples/demo/ --by service          # workloads x Service ports
  netpol matrix examples/demo/ --by service --port http --output json

With --port, text output is a grid like the upstream e2e truth tables: rows
are sources, columns destinations, X allowed, . denied. Without --port, each
ordered pair gets its allowed connection set (`TCP 80,443; UDP 53`, `all` or
`none`). A named --port is resolved on each destination; destinations
without that port show as denied. DOT output also draws each Service, with
dashed edges to its backends labelled with their target ports.

With --by service, rows are client workloads and columns Service ports
(NAMESPACE/NAME:PORT/PROTOCOL; with --port, only the Service ports with
that number or name; with --protocol, only that protocol). Each cell says
what a connection through the Service amounts to, after kube-proxy picks a
backend: allowed (by every backend), intermittent (k of n backends allow),
denied, no backends, or unknown (ExternalName). A workload whose pods get
different answers is partial.")]
pub struct MatrixArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Only this destination port: a number, or a container port name.
    #[arg(long, value_name = "PORT")]
    port: Option<PortQuery>,

    /// The protocol (with --port): TCP by default; with --by service, any
    /// unless given.
    #[arg(long, value_name = "PROTOCOL", requires = "port")]
    protocol: Option<Protocol>,

    /// Rows and columns: pods and pods, or client workloads and Service
    /// ports.
    #[arg(long, value_enum, default_value_t = MatrixBy::Pod)]
    by: MatrixBy,

    /// Output format (dot only with --by pod).
    #[arg(long, value_enum, default_value_t = MatrixOutput::Text)]
    output: MatrixOutput,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MatrixBy {
    /// Every endpoint to every endpoint.
    Pod,
    /// Every client workload to every Service port.
    Service,
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
    if args.by == MatrixBy::Service {
        return run_by_service(&args, &model, input_has_errors);
    }
    let names: Vec<String> = (0..model.cluster().endpoints.len())
        .map(|id| model.cluster().endpoint_name(id).to_string())
        .collect();
    let output = match &args.port {
        Some(port) => {
            let matrix = model.port_matrix(args.protocol.unwrap_or(Protocol::Tcp), port);
            match args.output {
                MatrixOutput::Text => port_text(&matrix, &names),
                MatrixOutput::Json => {
                    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
                    if write_port_json(&matrix, &names, &mut stdout)
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        // A closed pipe (`| head`) is not an error worth reporting.
                        return ExitCode::Success;
                    }
                    return input_status(input_has_errors);
                }
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
    finish(&output, input_has_errors)
}

/// Writes the output and says whether the input was whole.
fn finish(output: &str, input_has_errors: bool) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(output.as_bytes())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        // A closed pipe (`| head`) is not an error worth reporting.
        return ExitCode::Success;
    }
    input_status(input_has_errors)
}

fn input_status(input_has_errors: bool) -> ExitCode {
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

/// Writes the port matrix as one JSON object (`port`, `protocol`, `pods`,
/// `allowed`: `{"from", "to"}` pairs), one source at a time, so a cluster of
/// any size streams out without a pods × pods table in memory.
fn write_port_json(
    matrix: &PortMatrix<'_>,
    names: &[String],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let port = match matrix.port() {
        PortQuery::Number(number) => json!(number),
        PortQuery::Name(name) => json!(name),
    };
    write!(
        out,
        "{{\"port\":{port},\"protocol\":{},\"pods\":{},\"allowed\":[",
        json!(matrix.protocol().as_str()),
        json!(names)
    )?;
    let mut first = true;
    for (source, source_name) in names.iter().enumerate() {
        let from = json!(source_name).to_string();
        for destination in matrix.destinations(source) {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            write!(
                out,
                "{{\"from\":{from},\"to\":{}}}",
                json!(names[destination])
            )?;
        }
    }
    out.write_all(b"]}\n")
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

/// The DOT node id of a Service: endpoint names have no `:`, so these
/// never meet a pod's id.
fn service_dot_id(model: &Model, service: usize) -> String {
    dot_id(&format!(
        "svc:{}",
        model.cluster().services[service].reference()
    ))
}

/// A Service's node statement.
fn service_dot_node(model: &Model, service: usize) -> String {
    let svc = &model.cluster().services[service];
    let label = match (&svc.service_type, &svc.external_name) {
        (ServiceType::ExternalName, Some(name)) => {
            format!("svc {} (ExternalName {name})", svc.reference())
        }
        _ => format!("svc {}", svc.reference()),
    };
    format!(
        "{} [label={}, shape=box, style=rounded];",
        service_dot_id(model, service),
        dot_id(&label)
    )
}

/// Nodes grouped into one cluster per namespace, each with the namespace's
/// Services; then the Services of namespaces without endpoints.
fn dot_nodes(model: &Model, names: &[String], out: &mut String) {
    let mut namespaces: Vec<&str> = model
        .cluster()
        .endpoints
        .iter()
        .map(|e| e.namespace.as_str())
        .collect();
    namespaces.dedup();
    let services = &model.cluster().services;
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
        for (id, service) in services.iter().enumerate() {
            if service.namespace == *namespace {
                let _ = writeln!(out, "    {}", service_dot_node(model, id));
            }
        }
        let _ = writeln!(out, "  }}");
    }
    for (id, service) in services.iter().enumerate() {
        if !namespaces.contains(&service.namespace.as_str()) {
            let _ = writeln!(out, "  {}", service_dot_node(model, id));
        }
    }
}

/// Dashed edges from each Service to its backends, labelled with the target
/// ports. Backends outside the cluster (EndpointSlice addresses) get a node
/// of their own.
fn service_dot_edges(model: &Model, names: &[String], out: &mut String) {
    let mut addresses: Vec<String> = Vec::new();
    let mut edges = String::new();
    for service in 0..model.cluster().services.len() {
        for (target, ports) in model.service_backend_ports(service) {
            let to = match target {
                BackendTarget::Endpoint(id) => dot_id(&names[id]),
                BackendTarget::Address(address) => {
                    let id = dot_id(&address.to_string());
                    if !addresses.contains(&id) {
                        addresses.push(id.clone());
                    }
                    id
                }
            };
            let _ = writeln!(
                edges,
                "  {} -> {to} [style=dashed, label={}];",
                service_dot_id(model, service),
                dot_id(&ports.to_string())
            );
        }
    }
    for address in &addresses {
        let _ = writeln!(out, "  {address} [shape=ellipse];");
    }
    out.push_str(&edges);
}

fn port_dot(model: &Model, matrix: &PortMatrix<'_>, names: &[String]) -> String {
    let mut out = format!(
        "digraph netpol {{\n  label={};\n  node [shape=box];\n",
        dot_id(&port_title(matrix))
    );
    dot_nodes(model, names, &mut out);
    for (source, source_name) in names.iter().enumerate() {
        for destination in matrix.destinations(source) {
            if source != destination {
                let _ = writeln!(
                    out,
                    "  {} -> {};",
                    dot_id(source_name),
                    dot_id(&names[destination])
                );
            }
        }
    }
    service_dot_edges(model, names, &mut out);
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
    service_dot_edges(model, names, &mut out);
    out.push_str("}\n");
    out
}

/// `--by service`. The matrix can be large (workloads × Service ports
/// cells), so it is written to standard output as it is rendered.
fn run_by_service(args: &MatrixArgs, model: &Model, input_has_errors: bool) -> ExitCode {
    if let MatrixOutput::Dot = args.output {
        return crate::fail(
            "--output dot draws pods and Services: use it with --by pod (the default)",
        );
    }
    let matrix = model.service_matrix(args.port.as_ref(), args.protocol);
    if matrix.columns.is_empty()
        && let Some(port) = &args.port
    {
        return crate::fail(&format!(
            "--port {port}: no Service has a {}port with that number or name",
            args.protocol.map(|p| format!("{p} ")).unwrap_or_default()
        ));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.output {
        MatrixOutput::Text => service_text(model, &matrix, &mut out),
        MatrixOutput::Json => service_json(model, &matrix, &mut out),
        MatrixOutput::Csv => service_csv(model, &matrix, &mut out),
        MatrixOutput::Dot => unreachable!("refused above"),
    };
    if written.and_then(|()| out.flush()).is_err() {
        // A closed pipe (`| head`) is not an error worth reporting.
        return ExitCode::Success;
    }
    input_status(input_has_errors)
}

/// A column's header: `NAMESPACE/NAME:PORT/PROTOCOL`, the port by its name
/// when it has one; an ExternalName Service without ports is `NAMESPACE/NAME`.
fn column_label(model: &Model, column: ServiceMatrixColumn) -> String {
    let service = &model.cluster().services[column.service];
    match column.port {
        Some(index) => {
            let port = &service.ports[index];
            format!(
                "{}:{}/{}",
                service.reference(),
                port_name_or_number(port),
                port.protocol
            )
        }
        None => service.reference(),
    }
}

fn port_name_or_number(port: &ServicePort) -> String {
    match &port.name {
        Some(name) => name.clone(),
        None => port.port.to_string(),
    }
}

fn outcome_word(outcome: ServiceCellOutcome) -> &'static str {
    match outcome {
        ServiceCellOutcome::Allowed => "allowed",
        ServiceCellOutcome::Intermittent => "intermittent",
        ServiceCellOutcome::Denied => "denied",
        ServiceCellOutcome::NoBackends => "no-backends",
        ServiceCellOutcome::ExternalName => "external-name",
        ServiceCellOutcome::Partial => "partial",
    }
}

/// The per-pod outcomes that occur, most permissive first.
fn pod_outcome_counts(outcomes: &PodOutcomes) -> Vec<(&'static str, u32)> {
    [
        ("allowed", outcomes.allowed),
        ("intermittent", outcomes.intermittent),
        ("denied", outcomes.denied),
        ("no-backends", outcomes.no_backends),
        ("external-name", outcomes.external_name),
    ]
    .into_iter()
    .filter(|(_, count)| *count > 0)
    .collect()
}

fn cell_text(cell: &ServiceCell) -> String {
    match cell.outcome {
        ServiceCellOutcome::Allowed => "allowed".to_string(),
        ServiceCellOutcome::Intermittent => format!(
            "intermittent ({} of {})",
            cell.allowed_backends(),
            cell.backends.len()
        ),
        ServiceCellOutcome::Denied => "denied".to_string(),
        ServiceCellOutcome::NoBackends => "no backends".to_string(),
        ServiceCellOutcome::ExternalName => "unknown".to_string(),
        ServiceCellOutcome::Partial => {
            let counts: Vec<String> = pod_outcome_counts(&cell.pod_outcomes)
                .iter()
                .map(|(word, count)| format!("{count} {}", word.replace('-', " ")))
                .collect();
            format!("partial ({})", counts.join(", "))
        }
    }
}

/// A table: a row per workload, a column per Service port, each column as
/// wide as its widest cell.
fn service_text(model: &Model, matrix: &ServiceMatrix, out: &mut impl Write) -> io::Result<()> {
    const CORNER: &str = "workload";
    let headers: Vec<String> = matrix
        .columns
        .iter()
        .map(|&column| column_label(model, column))
        .collect();
    let first = matrix
        .rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(CORNER.len());
    let mut widths: Vec<usize> = headers.iter().map(String::len).collect();
    for row in 0..matrix.rows.len() {
        for (column, width) in widths.iter_mut().enumerate() {
            *width = (*width).max(cell_text(matrix.cell(row, column)).len());
        }
    }
    let mut line = String::new();
    let mut write_line = |first_cell: &str, rest: &mut dyn Iterator<Item = String>| {
        line.clear();
        let _ = write!(line, "{first_cell:<first$}");
        for (text, width) in rest.zip(&widths) {
            let _ = write!(line, "  {text:<width$}");
        }
        line.truncate(line.trim_end_matches(' ').len());
        line.push('\n');
        out.write_all(line.as_bytes())
    };
    write_line(CORNER, &mut headers.iter().cloned())?;
    for (r, row) in matrix.rows.iter().enumerate() {
        write_line(
            &row.name,
            &mut (0..matrix.columns.len()).map(|c| cell_text(matrix.cell(r, c))),
        )?;
    }
    Ok(())
}

fn service_column_json(
    model: &Model,
    column: ServiceMatrixColumn,
) -> serde_json::Map<String, Value> {
    let service = &model.cluster().services[column.service];
    let port = column.port.map(|index| &service.ports[index]);
    let mut object = serde_json::Map::new();
    object.insert("service".into(), json!(service.reference()));
    object.insert("port".into(), json!(port.map(|p| p.port)));
    object.insert(
        "port_name".into(),
        json!(port.and_then(|p| p.name.as_deref())),
    );
    object.insert("protocol".into(), json!(port.map(|p| p.protocol.as_str())));
    object
}

fn service_cell_json(model: &Model, matrix: &ServiceMatrix, row: usize, column: usize) -> Value {
    let cluster = model.cluster();
    let cell = matrix.cell(row, column);
    let service = &cluster.services[matrix.columns[column].service];
    let mut object = serde_json::Map::new();
    object.insert("from".into(), json!(matrix.rows[row].name));
    object.extend(service_column_json(model, matrix.columns[column]));
    object.insert("outcome".into(), json!(outcome_word(cell.outcome)));
    object.insert("allowed_backends".into(), json!(cell.allowed_backends()));
    object.insert("backends".into(), json!(cell.backends.len()));
    let external_name = match cell.outcome {
        ServiceCellOutcome::ExternalName => Some(service.external_name.as_deref().unwrap_or("")),
        _ => None,
    };
    object.insert("external_name".into(), json!(external_name));
    let pods: serde_json::Map<String, Value> = pod_outcome_counts(&cell.pod_outcomes)
        .into_iter()
        .map(|(word, count)| (word.to_string(), json!(count)))
        .collect();
    object.insert("pods".into(), Value::Object(pods));
    let backends = matrix.backends(column);
    let targets: Vec<Value> = cell
        .backends
        .iter()
        .map(|b| {
            let backend = &backends[b.backend];
            let (pod, address) = match backend.target {
                BackendTarget::Endpoint(id) => (Some(cluster.endpoint_name(id).to_string()), None),
                BackendTarget::Address(address) => (None, Some(address.to_string())),
            };
            json!({
                "pod": pod,
                "address": address,
                "port": backend.port,
                "allowed": b.allowed(),
            })
        })
        .collect();
    object.insert("targets".into(), Value::Array(targets));
    Value::Object(object)
}

/// Writes `value` pretty-printed as an element of a top-level array: the
/// same text as pretty-printing the whole document at once.
fn write_element(out: &mut impl Write, value: &Value, first: bool) -> io::Result<()> {
    out.write_all(if first { b"\n" } else { b",\n" })?;
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    for (index, line) in text.lines().enumerate() {
        if index > 0 {
            out.write_all(b"\n")?;
        }
        write!(out, "    {line}")?;
    }
    Ok(())
}

/// `{"workloads": [...], "service_ports": [...], "cells": [...]}`, one cell
/// per workload and Service port, written cell by cell.
fn service_json(model: &Model, matrix: &ServiceMatrix, out: &mut impl Write) -> io::Result<()> {
    let workloads: Vec<&str> = matrix.rows.iter().map(|r| r.name.as_str()).collect();
    let columns: Vec<Value> = matrix
        .columns
        .iter()
        .map(|&column| Value::Object(service_column_json(model, column)))
        .collect();
    let head = format!(
        "{:#}",
        json!({ "workloads": workloads, "service_ports": columns, "cells": [] })
    );
    // Everything but the empty `[]` of "cells" and the closing brace.
    let head = head
        .strip_suffix("[]\n}")
        .expect("\"cells\" is the last key");
    out.write_all(head.as_bytes())?;
    out.write_all(b"[")?;
    let mut first = true;
    for row in 0..matrix.rows.len() {
        for column in 0..matrix.columns.len() {
            write_element(out, &service_cell_json(model, matrix, row, column), first)?;
            first = false;
        }
    }
    out.write_all(if first { b"]\n}\n" } else { b"\n  ]\n}\n" })
}

fn service_csv(model: &Model, matrix: &ServiceMatrix, out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"from,service,port,protocol,outcome,allowed_backends,backends\n")?;
    let columns: Vec<(String, String, &str)> = matrix
        .columns
        .iter()
        .map(|column| {
            let service = &model.cluster().services[column.service];
            match column.port {
                Some(index) => {
                    let port = &service.ports[index];
                    (
                        csv_field(&service.reference()),
                        csv_field(&port_name_or_number(port)),
                        port.protocol.as_str(),
                    )
                }
                None => (csv_field(&service.reference()), String::new(), ""),
            }
        })
        .collect();
    for (r, row) in matrix.rows.iter().enumerate() {
        let from = csv_field(&row.name);
        for (c, (service, port, protocol)) in columns.iter().enumerate() {
            let cell = matrix.cell(r, c);
            writeln!(
                out,
                "{from},{service},{port},{protocol},{},{},{}",
                outcome_word(cell.outcome),
                cell.allowed_backends(),
                cell.backends.len()
            )?;
        }
    }
    Ok(())
}
