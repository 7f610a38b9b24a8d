//! `netpol diff`: what a change to the manifests opens or closes.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use policy_core::diff::{
    ConnectivityDiff, ExposureChange, ExposureChangeKind, GroupedChange, diff,
};
use policy_core::explain::{ports_words, sources_words};
use policy_core::ipset::IpSet;
use serde_json::{Value, json};

use crate::ExitCode;
use crate::input::{self, ClusterArgs, ModelArgs};
use crate::progress::Progress;

/// Arguments of `netpol diff`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol diff old/ new/
  git show main:deploy/policies.yaml | netpol diff - deploy/policies.yaml
  netpol diff old/ new/ --output markdown > comment.md    # for a pull request
  netpol diff old/ new/ --exit-code                       # 1 when anything changed
  netpol diff --cluster new/                              # what would applying new/ do to the live cluster?

Connections are compared pair by pair, including addresses outside the cluster
(ipBlocks). Reordered, reformatted or renamed policies that allow the same
traffic are no change.

Entry points from outside (as `netpol exposure` lists them) are compared by
entry (kind, address, port, Service or Ingress route) and target (workload and
port): newly exposed when someone gets through who did not before, no longer
exposed when nobody does any more, and widened or narrowed when the outside
addresses that get through changed.

With --cluster, OLD is the live cluster and NEW is the live cluster with the
given manifests applied on top, as `kubectl apply` would: objects of the same
kind, namespace and name are replaced, others are added, nothing is deleted.
Running pods of a workload given in NEW take its new pod template, as after
the rollout.")]
pub struct DiffArgs {
    /// OLD and NEW: each a file, a directory, or `-` for standard input. With
    /// --cluster, only NEW: the manifests to apply on top of the live cluster.
    #[arg(value_name = "OLD NEW", num_args = 1..=2, required = true)]
    paths: Vec<String>,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    model: ModelArgs,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffOutput::Text)]
    output: DiffOutput,

    /// Exit with status 1 when anything changed, 0 when nothing did.
    #[arg(long)]
    exit_code: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DiffOutput {
    Text,
    Json,
    Markdown,
}

/// One side of the comparison, loaded.
struct Side {
    label: String,
    input: input::Input,
}

pub fn run(args: DiffArgs) -> ExitCode {
    let live =
        args.cluster.requested() || (args.paths.len() == 1 && crate::invoked_as_kubectl_plugin());
    let progress = Progress::new(args.quiet);
    let sides = if live {
        live_sides(&args, &progress)
    } else {
        manifest_sides(&args, &progress)
    };
    let (old, new) = match sides {
        Ok(sides) => sides,
        Err(message) => return crate::fail(&message),
    };
    let (old_label, new_label) = (old.label.clone(), new.label.clone());
    let (old, old_errors) = input::build_model(old.input, &args.model);
    let (new, new_errors) = input::build_model(new.input, &args.model);
    let changes = diff(&old, &new);
    let output = match args.output {
        DiffOutput::Text => render_text(&changes),
        DiffOutput::Json => format!("{:#}\n", render_json(&changes)),
        DiffOutput::Markdown => render_markdown(&changes, &old_label, &new_label),
    };
    progress.finish();
    print!("{output}");
    if old_errors || new_errors {
        eprintln!(
            "error: the input has errors (see above); the comparison covers only what could be read"
        );
        ExitCode::Error
    } else if args.exit_code && !changes.is_empty() {
        ExitCode::Failure
    } else {
        ExitCode::Success
    }
}

/// OLD and NEW from manifests.
fn manifest_sides(args: &DiffArgs, progress: &Progress) -> Result<(Side, Side), String> {
    let [old, new] = args.paths.as_slice() else {
        return Err("give OLD and NEW (or --cluster and NEW)".into());
    };
    if old == "-" && new == "-" {
        return Err("only one of OLD and NEW can be `-` (standard input)".into());
    }
    let load = |path: &String| {
        input::load_inputs(std::slice::from_ref(path), None, progress.clone())
            .map(|input| Side {
                label: path.clone(),
                input,
            })
            .map_err(|e| e.0)
    };
    Ok((load(old)?, load(new)?))
}

/// OLD is the live cluster; NEW is the live cluster with the manifests applied.
fn live_sides(args: &DiffArgs, progress: &Progress) -> Result<(Side, Side), String> {
    let [new] = args.paths.as_slice() else {
        return Err(
            "with --cluster, give only NEW: the manifests to apply on top of the live cluster"
                .into(),
        );
    };
    let cluster = input::read_cluster(&args.cluster, progress).map_err(|e| e.0)?;
    let label = format!("the cluster ({})", cluster.description);
    let old = input::load_inputs(&[], Some(&cluster), progress.clone()).map_err(|e| e.0)?;
    let applied = input::load_inputs(std::slice::from_ref(new), Some(&cluster), progress.clone())
        .map_err(|e| e.0)?;
    Ok((
        Side {
            label: label.clone(),
            input: old,
        },
        Side {
            label: format!("{label} with {new} applied"),
            input: applied,
        },
    ))
}

fn pair_count(group: &GroupedChange) -> String {
    match group.pairs.len() {
        1 => String::new(),
        n => format!(" ({n} pairs)"),
    }
}

fn render_text(changes: &ConnectivityDiff) -> String {
    if changes.is_empty() {
        return "No change: both sides allow exactly the same connections.\n".to_string();
    }
    let mut out = String::new();
    if !changes.appeared.is_empty() {
        let _ = writeln!(
            out,
            "Endpoints that appeared ({}): {}",
            changes.appeared.len(),
            changes.appeared.join(", ")
        );
    }
    if !changes.disappeared.is_empty() {
        let _ = writeln!(
            out,
            "Endpoints that disappeared ({}): {}",
            changes.disappeared.len(),
            changes.disappeared.join(", ")
        );
    }
    for (title, sign, list) in [
        ("Added", '+', &changes.added),
        ("Removed", '-', &changes.removed),
    ] {
        let groups = changes.grouped(list);
        if groups.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{title} connections ({}):", list.len());
        for group in groups {
            let _ = writeln!(
                out,
                "  {sign} {} -> {}: {}{}",
                group.from,
                group.to,
                ports_words(&group.ports),
                pair_count(&group)
            );
        }
    }
    render_exposure_text(changes, &mut out);
    out
}

fn hidden_mark(change: &ExposureChange) -> &'static str {
    if change.client_hidden {
        " [client hidden by SNAT or proxy]"
    } else {
        ""
    }
}

/// What changed in the sources of a widened, narrowed or changed entry.
fn source_change_words(change: &ExposureChange) -> String {
    let (gained, lost) = (change.gained(), change.lost());
    let mut parts = Vec::new();
    if !gained.is_empty() {
        parts.push(format!("gained {}", sources_words(&gained)));
    }
    if !lost.is_empty() {
        parts.push(format!("lost {}", sources_words(&lost)));
    }
    format!(
        "{}; now from {}",
        parts.join(", "),
        sources_words(&change.after)
    )
}

fn render_exposure_text(changes: &ConnectivityDiff, out: &mut String) {
    let sections: [(&str, char, Vec<&ExposureChange>); 3] = [
        (
            "Newly exposed entry points",
            '+',
            changes.exposure_of(ExposureChangeKind::NewlyExposed),
        ),
        (
            "No longer exposed entry points",
            '-',
            changes.exposure_of(ExposureChangeKind::NoLongerExposed),
        ),
        (
            "Entry points whose outside sources changed",
            '~',
            changes
                .exposure
                .iter()
                .filter(|c| {
                    !matches!(
                        c.kind(),
                        ExposureChangeKind::NewlyExposed | ExposureChangeKind::NoLongerExposed
                    )
                })
                .collect(),
        ),
    ];
    for (title, sign, list) in sections {
        if list.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{title} ({}):", list.len());
        for change in list {
            let what = match change.kind() {
                ExposureChangeKind::NewlyExposed => {
                    format!("from {}", sources_words(&change.after))
                }
                ExposureChangeKind::NoLongerExposed => {
                    format!("was from {}", sources_words(&change.before))
                }
                kind => format!("{}: {}", kind.as_str(), source_change_words(change)),
            };
            let _ = writeln!(
                out,
                "  {sign} {}: {what}{}",
                change.title(),
                hidden_mark(change)
            );
        }
    }
}

fn groups_json(changes: &ConnectivityDiff, list: &[policy_core::diff::Change]) -> Vec<Value> {
    changes
        .grouped(list)
        .iter()
        .map(|group| {
            json!({
                "from": group.from,
                "to": group.to,
                "ports": group.ports.to_string(),
                "pairs": group.pairs.iter().map(|(from, to)| json!({"from": from.to_string(), "to": to.to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// CIDR strings.
fn cidrs(set: &IpSet) -> Vec<String> {
    set.to_cidrs().iter().map(ToString::to_string).collect()
}

fn exposure_json(changes: &ConnectivityDiff) -> Vec<Value> {
    changes
        .exposure
        .iter()
        .map(|change| {
            let key = &change.key;
            json!({
                "change": change.kind().as_str(),
                "via": key.via.as_str(),
                "address": key.address,
                "node": change.node,
                "entry_port": key.port,
                "protocol": key.protocol.as_str(),
                "service": key.service,
                "ingress": key.ingress.as_ref().map(|(name, host, path)| json!({"name": name, "host": host, "path": path})),
                "workload": key.workload,
                "port": key.target_port,
                "sources_before": cidrs(&change.before),
                "sources_after": cidrs(&change.after),
                "gained": cidrs(&change.gained()),
                "lost": cidrs(&change.lost()),
                "client_hidden": change.client_hidden,
            })
        })
        .collect()
}

fn render_json(changes: &ConnectivityDiff) -> Value {
    json!({
        "changed": !changes.is_empty(),
        "appeared": changes.appeared,
        "disappeared": changes.disappeared,
        "added": groups_json(changes, &changes.added),
        "removed": groups_json(changes, &changes.removed),
        "exposure": exposure_json(changes),
    })
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn render_markdown(changes: &ConnectivityDiff, old: &str, new: &str) -> String {
    let mut out = String::from("### netpol: connectivity changes\n\n");
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "No change: `{old}` and `{new}` allow exactly the same connections."
        );
        return out;
    }
    let added = changes.grouped(&changes.added);
    let removed = changes.grouped(&changes.removed);
    let _ = writeln!(
        out,
        "**{} connection{} added, {} removed**; {} endpoint{} appeared, {} disappeared.\n",
        changes.added.len(),
        if changes.added.len() == 1 { "" } else { "s" },
        changes.removed.len(),
        changes.appeared.len(),
        if changes.appeared.len() == 1 { "" } else { "s" },
        changes.disappeared.len()
    );
    if !changes.exposure.is_empty() {
        let count = |kind| changes.exposure_of(kind).len();
        let _ = writeln!(
            out,
            "**Entry points from outside: {} newly exposed, {} no longer exposed**, {} with other sources.\n",
            count(ExposureChangeKind::NewlyExposed),
            count(ExposureChangeKind::NoLongerExposed),
            changes.exposure.len()
                - count(ExposureChangeKind::NewlyExposed)
                - count(ExposureChangeKind::NoLongerExposed)
        );
    }
    if !added.is_empty() || !removed.is_empty() {
        out.push_str("| Change | From | To | Ports | Pairs |\n|---|---|---|---|---|\n");
        for (what, groups) in [("added", &added), ("removed", &removed)] {
            for group in groups {
                let _ = writeln!(
                    out,
                    "| {what} | `{}` | `{}` | {} | {} |",
                    markdown_cell(&group.from),
                    markdown_cell(&group.to),
                    markdown_cell(&ports_words(&group.ports)),
                    group.pairs.len()
                );
            }
        }
        out.push('\n');
    }
    if !changes.exposure.is_empty() {
        out.push_str(
            "| Entry point | Change | Sources before | Sources after |\n|---|---|---|---|\n",
        );
        for change in &changes.exposure {
            let what = match change.kind() {
                ExposureChangeKind::NewlyExposed => "newly exposed",
                ExposureChangeKind::NoLongerExposed => "no longer exposed",
                ExposureChangeKind::Widened => "widened",
                ExposureChangeKind::Narrowed => "narrowed",
                ExposureChangeKind::Changed => "changed",
            };
            let _ = writeln!(
                out,
                "| {}{} | {what} | {} | {} |",
                markdown_cell(&change.title()),
                if change.client_hidden {
                    " (client hidden)"
                } else {
                    ""
                },
                markdown_cell(&sources_words(&change.before)),
                markdown_cell(&sources_words(&change.after))
            );
        }
        out.push('\n');
    }
    if !changes.appeared.is_empty() || !changes.disappeared.is_empty() {
        out.push_str("<details><summary>Endpoints</summary>\n\n");
        for name in &changes.appeared {
            let _ = writeln!(out, "- appeared: `{name}`");
        }
        for name in &changes.disappeared {
            let _ = writeln!(out, "- disappeared: `{name}`");
        }
        out.push_str("\n</details>\n");
    }
    out
}
