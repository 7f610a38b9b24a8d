//! `netpol`: what do these Kubernetes NetworkPolicies allow?
//!
//! The binary is wiring: argument parsing, reading inputs, choosing a
//! renderer. The semantics live in `policy-core`.

mod agent;
mod compile;
mod diff;
mod explain;
mod exposure;
mod input;
mod lint;
mod manual;
mod matrix;
mod progress;
mod query;
mod report;

use std::sync::OnceLock;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

// mimalloc: building and dropping 10,000-pod models is allocation-bound;
// with glibc malloc, dropping one costs as much as building it. BENCHMARKS.md
// has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the memory mimalloc holds but no longer uses to the system: its
/// free pages otherwise stay resident until a later allocation finds their
/// purge delay over, which an idle agent may not make for hours.
pub(crate) fn release_memory() {
    // SAFETY: mi_collect only walks mimalloc's own heaps; any thread may call it.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
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
  netpol lint --cluster                     # the current kubeconfig context's cluster
  netpol diff --cluster new/                # what would applying new/ change?
  helm template shop ./chart | netpol lint -
  netpol report --cluster -o report.html    # a picture of the cluster's security

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
    /// Every way into the cluster from outside (NodePorts, load balancers,
    /// external IPs, Ingress, hostPorts), and who gets through.
    Exposure(exposure::ExposureArgs),
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
    /// One self-contained HTML page picturing the cluster's security.
    Report(report::ReportArgs),
    /// One node's nftables ruleset, enforcing exactly what the model allows.
    Compile(compile::CompileArgs),
    /// Enforce one node's ruleset and keep it in sync with the cluster.
    Agent(agent::AgentArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(manual::CompletionsArgs),
    /// Print the man page (roff), or write one page per command to a directory.
    Man(manual::ManArgs),
}

/// Set once in `main`: whether this process runs as `kubectl netpol`.
static KUBECTL_PLUGIN: OnceLock<bool> = OnceLock::new();

/// The executable name kubectl looks for on PATH to run `kubectl netpol`.
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl-netpol";

/// Whether this process was started as the kubectl plugin (`kubectl-netpol`),
/// where commands read the live cluster when no PATH is given, as kubectl's do.
pub fn invoked_as_kubectl_plugin() -> bool {
    KUBECTL_PLUGIN.get().copied().unwrap_or(false)
}

/// The clap command, named `netpol` or `kubectl netpol`.
pub fn cli_command(as_kubectl_plugin: bool) -> clap::Command {
    let command = Cli::command();
    if !as_kubectl_plugin {
        return command;
    }
    // Usage lines and examples say what the user types.
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let root_help = format!(
        "{}\n\nAs a kubectl plugin, a command given no PATH reads the cluster of the current\n\
         context, as kubectl's own commands do (--context, --kubeconfig, -n and -A work\n\
         as kubectl's).",
        as_plugin_text(&command_help(&command))
    );
    let mut command = command
        .bin_name("kubectl netpol")
        .display_name("kubectl netpol")
        .after_help(root_help);
    for name in names {
        command = command.mut_subcommand(name, |sub| {
            let text = as_plugin_text(&command_help(&sub));
            sub.after_help(text)
        });
    }
    command
}

fn command_help(command: &clap::Command) -> String {
    command
        .get_after_help()
        .map(|help| help.to_string())
        .unwrap_or_default()
}

/// Examples rewritten for the plugin: `netpol query` → `kubectl netpol query`.
fn as_plugin_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("netpol ") {
                let indent = &line[..line.len() - trimmed.len()];
                format!("{indent}kubectl {trimmed}")
            } else {
                line.replace("| netpol ", "| kubectl netpol ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let plugin = std::env::args_os()
        .next()
        .as_deref()
        .and_then(|arg0| std::path::Path::new(arg0).file_stem())
        .is_some_and(|name| name == KUBECTL_PLUGIN_NAME);
    let _ = KUBECTL_PLUGIN.set(plugin);
    let parsed = cli_command(plugin)
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
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
        Command::Exposure(args) => exposure::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Rules(args) => lint::rules(args),
        Command::Explain(args) => explain::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Report(args) => report::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Completions(args) => manual::completions(args),
        Command::Man(args) => manual::man(args, plugin),
    };
    std::process::ExitCode::from(code as u8)
}
