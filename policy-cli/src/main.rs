//! `netpol`: what do these Kubernetes NetworkPolicies allow?
//!
//! The binary is wiring: argument parsing, reading inputs, choosing a
//! renderer. The semantics live in `policy-core`.

mod agent;
mod compile;
mod diff;
mod explain;
mod input;
mod lint;
mod matrix;
mod query;

use clap::{Parser, Subcommand};

// mimalloc: building and dropping 10,000-pod models is allocation-bound;
// with glibc malloc, dropping one costs as much as building it. BENCHMARKS.md
// has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use policy_core::Model;
use serde_json::{Value, json};

/// What each exit status means. Stable: CI scripts act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: success (for `query`: allowed).
    Success = 0,
    /// 1: a negative answer (for `query`: denied).
    Failure = 1,
    /// 2: bad arguments, unreadable input, or input with errors.
    Error = 2,
}

#[derive(Parser, Debug)]
#[command(
    name = "netpol",
    version,
    about = "Compile and verify Kubernetes NetworkPolicies: what does this YAML allow?",
    after_help = "\
Examples:
  netpol matrix examples/demo/ --port 80
  netpol query examples/demo/ --from shop/frontend --to shop/db --port 5432
  kubectl get pods,namespaces,networkpolicies -A -o yaml | netpol matrix -

Model options (on every command that reads manifests):
  --ip-block match|ignore     ipBlocks match pod IPs (upstream e2e, Calico) or not (Cilium)
  --host-network node|pod     hostNetwork pods are node traffic, or ordinary pods
  --self-traffic allow|evaluate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Can a pod (or an address) reach another on a port? Explains both sides.
    Query(query::QueryArgs),
    /// The connectivity of every pair: one port's truth table, or every
    /// pair's allowed ports.
    Matrix(matrix::MatrixArgs),
    /// Check manifests for errors, mistakes and risks (for CI).
    Lint(lint::LintArgs),
    /// List the lint rules, or print one rule's documentation.
    Rules(lint::RulesArgs),
    /// What each policy does, or what a pod may receive and send, in English.
    Explain(explain::ExplainArgs),
    /// The connections a change to the manifests adds and removes.
    Diff(diff::DiffArgs),
    /// One node's nftables ruleset, enforcing exactly what the model allows.
    Compile(compile::CompileArgs),
    /// Enforce one node's ruleset and keep it in sync with the cluster.
    Agent(agent::AgentArgs),
}

/// Prints an error and returns exit status 2.
pub fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::Error
}

/// `namespace/name (file:line)` of a policy.
pub fn policy_label(model: &Model, policy: usize) -> String {
    let policy = &model.cluster().policies[policy];
    match &policy.source {
        Some(source) => format!("{}/{} ({source})", policy.namespace, policy.name),
        None => format!("{}/{}", policy.namespace, policy.name),
    }
}

/// A policy as JSON: namespace, name and source location.
pub fn policy_json(model: &Model, policy: usize) -> Value {
    let policy = &model.cluster().policies[policy];
    json!({
        "namespace": policy.namespace,
        "name": policy.name,
        "source": policy.source.as_ref().map(|s| s.to_string()),
    })
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with status 0; usage errors are status 2.
            let _ = error.print();
            return std::process::ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let code = match cli.command {
        Command::Query(args) => query::run(args),
        Command::Matrix(args) => matrix::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Rules(args) => lint::rules(args),
        Command::Explain(args) => explain::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Agent(args) => agent::run(args),
    };
    std::process::ExitCode::from(code as u8)
}
