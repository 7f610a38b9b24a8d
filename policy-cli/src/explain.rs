//! `netpol explain`: what each policy does, and what a pod may do, in English.

use clap::Args;
use policy_core::explain::{describe_admin_policy, describe_endpoint, describe_policy};
use policy_core::exposure::{IngressControllers, exposure};

use crate::ExitCode;
use crate::input::{self, InputArgs};

/// Arguments of `netpol explain`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol explain manifests/                           # every policy
  netpol explain manifests/ --policy shop/cart        # one policy
  netpol explain manifests/ --pod shop/db             # who may reach shop/db, and whom it may reach

For a pod, the Services that lead to it (with the port on the pod, or why a
Service that selects it leaves it out) and the entry points from outside
as `netpol exposure` lists them under --profile (ingress controllers found
through the IngressClasses), with the outside addresses that get through.")]
pub struct ExplainArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Explain this policy (NAMESPACE/NAME). Repeatable.
    #[arg(long, value_name = "NS/NAME")]
    policy: Vec<String>,

    /// Explain this pod or workload (NAMESPACE/NAME): which policies select
    /// it, what it may receive and send, the Services that lead to it and
    /// the entry points from outside that reach it. Repeatable.
    #[arg(long, value_name = "NS/NAME")]
    pod: Vec<String>,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    let (model, input_has_errors) = match input::load_model(&args.input) {
        Ok(loaded) => loaded,
        Err(error) => return crate::fail(&error.0),
    };
    let cluster = model.cluster();
    let mut policies = Vec::new();
    for reference in &args.policy {
        let (namespace, name) = reference.split_once('/').unwrap_or(("default", reference));
        match cluster
            .policies
            .iter()
            .position(|p| p.namespace == namespace && p.name == name)
        {
            Some(id) => policies.push(id),
            None => {
                return crate::fail(&format!(
                    "--policy: no valid NetworkPolicy {namespace}/{name} in the input"
                ));
            }
        }
    }
    let mut endpoints = Vec::new();
    for reference in &args.pod {
        match cluster.find_endpoint(reference) {
            Ok(id) => endpoints.push(id),
            Err(message) => return crate::fail(&format!("--pod: {message}")),
        }
    }
    let mut admin_policies = Vec::new();
    if policies.is_empty() && endpoints.is_empty() {
        policies = (0..cluster.policies.len()).collect();
        admin_policies = (0..cluster.admin_policies.len()).collect();
        if policies.is_empty() && admin_policies.is_empty() {
            println!(
                "No NetworkPolicy in the input: no pod is isolated, and all traffic is allowed."
            );
        }
    }
    let mut paragraphs = Vec::new();
    for policy in policies {
        let written = &cluster.policies[policy];
        let location = written
            .source
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        paragraphs.push(format!(
            "{}{location}\n  {}\n",
            written.reference(),
            describe_policy(&model, policy)
        ));
    }
    for index in admin_policies {
        let written = &cluster.admin_policies[index];
        let location = written
            .source
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        paragraphs.push(format!(
            "{}{location}\n  {}\n",
            written.reference(),
            describe_admin_policy(cluster, index)
        ));
    }
    let entries = if endpoints.is_empty() {
        Vec::new()
    } else {
        exposure(&model, &IngressControllers::default())
    };
    for endpoint in endpoints {
        paragraphs.push(describe_endpoint(&model, endpoint, &entries));
    }
    print!("{}", paragraphs.join("\n"));
    if input_has_errors {
        eprintln!(
            "error: the input has errors (see above); the explanation covers only what could be read"
        );
        ExitCode::Error
    } else {
        ExitCode::Success
    }
}
