//! `netpol compile`: one node's nftables ruleset.

use clap::{Args, ValueEnum};
use policy_nft::Compiler;

use crate::ExitCode;
use crate::input::{self, InputArgs};

/// Arguments of `netpol compile`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol compile manifests/ --node node-1 | nft -f -
  netpol compile manifests/ --node node-1 --format json | nft -j -f -
  netpol compile manifests/ --node node-1 | nft -c -f -     # check only

The ruleset replaces table `inet netpol` in one transaction and touches
nothing else; loading it twice gives the same state. Pods are placed on
nodes by spec.nodeName, and identified by status.podIP/podIPs: pods without
an IP cannot be enforced and are listed on standard error.")]
pub struct CompileArgs {
    #[command(flatten)]
    input: InputArgs,

    /// The node to compile for (pods whose spec.nodeName is this).
    #[arg(long, value_name = "NODE")]
    node: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = RulesetFormat::Nft)]
    format: RulesetFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum RulesetFormat {
    /// nft syntax, for `nft -f -`.
    Nft,
    /// libnftables JSON, for `nft -j -f -`.
    Json,
}

pub fn run(args: CompileArgs) -> ExitCode {
    let (model, input_has_errors) = match input::load_model(&args.input) {
        Ok(loaded) => loaded,
        Err(error) => return crate::fail(&error.0),
    };
    let compiler = match Compiler::new(&model) {
        Ok(compiler) => compiler,
        Err(error) => return crate::fail(&error.to_string()),
    };
    let known_nodes = policy_nft::compile::nodes(&model);
    if !known_nodes.contains(&args.node) {
        eprintln!(
            "warning: no pod of the input runs on node {:?} (nodes: {}); the ruleset isolates nothing",
            args.node,
            if known_nodes.is_empty() {
                "none".to_string()
            } else {
                known_nodes.join(", ")
            }
        );
    }
    let (ruleset, unenforceable) = compiler.compile(&args.node);
    if !unenforceable.without_address.is_empty() {
        eprintln!(
            "warning: {} endpoint(s) on node {} have no IP address and cannot be enforced: {}",
            unenforceable.without_address.len(),
            args.node,
            unenforceable.without_address.join(", ")
        );
    }
    if !unenforceable.shared_addresses.is_empty() {
        let addresses: Vec<String> = (unenforceable.shared_addresses.iter())
            .map(ToString::to_string)
            .collect();
        eprintln!(
            "warning: {} peer address(es) are shared by pods with different permissions; the ruleset allows them only what all of those pods are allowed: {}",
            addresses.len(),
            addresses.join(", ")
        );
    }
    match args.format {
        RulesetFormat::Nft => print!("{}", policy_nft::text::render(&ruleset)),
        RulesetFormat::Json => println!("{}", policy_nft::json::render_string(&ruleset)),
    }
    if input_has_errors {
        eprintln!(
            "error: the input has errors (see above); the ruleset covers only what could be read"
        );
        ExitCode::Error
    } else {
        ExitCode::Success
    }
}
