//! `netpol agent`: the per-node enforcer (see the `policy-agent` crate).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use policy_agent::{AgentOptions, OnUnreadable, SourceChoice};
use policy_nft::runner::Nft;

use crate::ExitCode;
use crate::input::{ModelArgs, parse_duration};

/// Arguments of `netpol agent`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol agent --node node-1 --source examples/demo/ --dry-run     # try it: print the transactions
  sudo netpol agent --node node-1 --source manifests/              # enforce a directory of manifests
  netpol agent --node \"$NODE_NAME\"                                 # in a DaemonSet: in-cluster API

Waits for the source's initial sync, then applies this node's ruleset as one
nft transaction (table inet netpol), and after that only what changes:
element updates when pods or peers change, a full atomic replace when the
structure changes. Every --check-interval it restores the table if someone
deleted or changed it. Invalid input never opens traffic: unreadable objects
are enforced from their last good version (or fail-closed, see
--on-unreadable). On SIGTERM/SIGINT the rules stay in place unless
--cleanup-on-exit is given.")]
pub struct AgentArgs {
    /// The node to enforce: pods whose spec.nodeName is this.
    #[arg(long, value_name = "NODE", env = "NODE_NAME")]
    node: String,

    /// Read manifests from a directory (or one file), reloaded when it
    /// changes, instead of the Kubernetes API.
    #[arg(long, value_name = "DIR", conflicts_with = "kubeconfig")]
    source: Option<PathBuf>,

    /// A kubeconfig file. Without it and without --source: the in-cluster
    /// service account, or $KUBECONFIG / ~/.kube/config.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use instead of its current-context.
    #[arg(long, value_name = "NAME", conflicts_with = "source")]
    context: Option<String>,

    /// What to enforce for isolated pods whose NetworkPolicy became
    /// unreadable: its last good version, or isolation with nothing allowed.
    #[arg(long, value_name = "MODE", default_value_t = OnUnreadable::KeepLastGood)]
    on_unreadable: OnUnreadable,

    /// How often to compare the kernel's table with what was applied.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    check_interval: Duration,

    /// Quiet time before acting on a burst of changes. With the Kubernetes
    /// source, a change after such a quiet time is acted on at once, and a
    /// constant stream of changes about once a second.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    debounce: Duration,

    /// Remove table inet netpol on exit (by default the rules stay in place).
    #[arg(long)]
    cleanup_on_exit: bool,

    /// Print the transactions instead of applying them.
    #[arg(long)]
    dry_run: bool,

    /// Address for /metrics, /healthz and /readyz; `off` to disable.
    #[arg(long, value_name = "ADDRESS", default_value = "0.0.0.0:9640", value_parser = parse_listen)]
    listen: Listen,

    /// The nft binary.
    #[arg(long, value_name = "PATH", default_value = "nft")]
    nft: PathBuf,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    model: ModelArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, Debug)]
struct Listen(Option<SocketAddr>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{e}: expected ADDRESS:PORT or `off`"))
}

pub fn run(args: AgentArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or `kubectl logs` would show
    // the escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let source = match args.source {
        Some(path) => SourceChoice::Directory(path),
        None => SourceChoice::Kubernetes {
            kubeconfig: args.kubeconfig,
            context: args.context,
        },
    };
    let options = AgentOptions {
        node: args.node,
        source,
        config: args.model.config(),
        on_unreadable: args.on_unreadable,
        check_interval: args.check_interval,
        debounce: args.debounce,
        cleanup_on_exit: args.cleanup_on_exit,
        dry_run: args.dry_run,
        listen: args.listen.0,
        nft: Nft {
            binary: args.nft,
            prefix: Vec::new(),
        },
        release_memory: Some(crate::release_memory),
    };
    match policy_agent::run(options) {
        Ok(()) => ExitCode::Success,
        Err(error) => crate::fail(&error.to_string()),
    }
}
