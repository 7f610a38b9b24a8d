//! `netpol report`: one self-contained HTML page that pictures the cluster's
//! security: a summary, the lint findings with their source, a namespace ×
//! namespace heat map of allowed connections, and an interactive graph of
//! workloads and the ports they may use.
//!
//! The page is data plus a viewer. [`ReportData`] is computed once: the
//! findings by [`crate::lint::lint_input`] (exactly what `netpol lint`
//! reports), the connections by [`policy_core::overview`]. It is embedded as
//! one JSON blob, and the viewer (`assets/report.{html,css,js}` and the
//! vendored cytoscape.js, all inlined) only draws it. A Content-Security-Policy
//! forbids every network request, so the file works offline and a report
//! opened from a ticket or a CI artifact cannot call home.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use clap::Args;
use policy_core::diagnostic::Severity;
use policy_core::explain::ports_words;
use policy_core::lint::{Finding, LintOptions};
use policy_core::model::RuleRef;
use policy_core::overview::{Overview, SideReasons};
use policy_core::{Direction, EndpointKind, Model};
use serde::Serialize;

use crate::ExitCode;
use crate::input::{self, InputArgs, Source};
use crate::lint::{self, Linted};

/// Arguments of `netpol report`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol report manifests/                          # writes netpol-report.html
  netpol report manifests/ -o cluster.html
  netpol report --cluster -o - > cluster.html       # the running cluster, to standard output
  helm template shop ./chart | netpol report - -o shop.html

The page is one HTML file that works offline and makes no network request:
open it from disk, attach it to a ticket, keep it as a CI artifact. It shows
a summary, the findings of `netpol lint` with their source, a namespace ×
namespace heat map of allowed connections, and a graph of workloads and the
ports they may use; click a workload for what it may receive and send, and
which policies and rules decide.

Exit status: 0, or 2 on a usage error or unreadable input.")]
pub struct ReportArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Where to write the HTML page; `-` for standard output.
    #[arg(short, long, value_name = "FILE", default_value = "netpol-report.html")]
    output: String,
}

/// Above this many workloads the page draws the graph only for a namespace
/// the reader picks: a layout of thousands of nodes takes minutes and shows
/// nothing legible.
const DRAW_ALL_WORKLOADS_UP_TO: usize = 2000;

/// Above this many drawn connections, connections between two workloads
/// that are both not isolated (every port, no rule involved) are left out
/// of the graph: a cluster without policies has one per pair, and the panel
/// says "not isolated" for them anyway.
const OPEN_CONNECTIONS_DRAWN_UP_TO: usize = 20_000;

/// Lines of source shown before and after a finding's line.
const SNIPPET_CONTEXT: usize = 2;

pub fn run(args: ReportArgs) -> ExitCode {
    let input = match input::read_and_load(&args.input) {
        Ok(input) => input,
        Err(error) => return crate::fail(&error.0),
    };
    if args.input.model.verbose {
        input.progress.suspend(|| input::print_summary(&input));
    }
    let progress = input.progress.clone();
    let mut read = args.input.paths.clone();
    if let Some(live) = &input.live {
        read.insert(0, live.description.clone());
    }
    let linted = lint::lint_input(input, args.input.model.config(), &LintOptions::default());
    progress.step("summing up connections");
    let data = ReportData::new(&linted, read.join(", "), &args.input.model.config());
    progress.finish();
    let page = render_html(&data);

    let written = if args.output == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(page.as_bytes())
            .and_then(|()| stdout.flush())
            .map(|()| "standard output".to_string())
    } else {
        std::fs::write(&args.output, &page).map(|()| args.output.clone())
    };
    match written {
        Ok(place) => eprintln!(
            "wrote the report to {place} ({} KiB)",
            page.len().div_ceil(1024)
        ),
        Err(error) => return crate::fail(&format!("cannot write {}: {error}", args.output)),
    }
    if linted.unreadable > 0 {
        eprintln!(
            "error: {} input file(s) could not be read (see the findings); the report covers only what could be read",
            linted.unreadable
        );
        ExitCode::Error
    } else {
        ExitCode::Success
    }
}

/// Everything the page shows, computed before anything is drawn.
#[derive(Serialize, Debug)]
pub struct ReportData {
    /// `netpol 0.1.0`.
    generator: String,
    /// What was read: paths, and the live cluster's description.
    source: String,
    /// The model options the connections were computed with.
    options: String,
    summary: Summary,
    findings: Vec<FindingView>,
    heatmap: HeatMap,
    graph: Graph,
}

#[derive(Serialize, Debug)]
struct Summary {
    namespaces: usize,
    workloads: usize,
    /// Pods and workload templates standing for their pods.
    endpoints: usize,
    pods: usize,
    pod_templates: usize,
    policies: usize,
    /// Endpoints some policy isolates for ingress.
    isolated_ingress: usize,
    /// Endpoints some policy isolates for egress.
    isolated_egress: usize,
    /// Endpoints some address outside the cluster may reach.
    reachable_from_outside: usize,
    findings: SeverityCounts,
}

#[derive(Serialize, Debug, Default)]
struct SeverityCounts {
    error: usize,
    warning: usize,
    info: usize,
}

/// A finding as `netpol lint` reports it, with the source lines around it.
#[derive(Serialize, Debug)]
struct FindingView {
    code: &'static str,
    rule: &'static str,
    severity: &'static str,
    message: String,
    help: Option<String>,
    /// `file:line:col`, or the file alone.
    location: Option<String>,
    /// The object and field path.
    about: String,
    snippet: Option<Snippet>,
}

#[derive(Serialize, Debug)]
struct Snippet {
    /// `(line number, text)` from a little before to a little after `line`.
    lines: Vec<(u32, String)>,
    /// The line the finding points at.
    line: u32,
    /// Its column (1-based, in characters).
    column: u32,
    /// How many characters to underline.
    width: usize,
}

/// Namespace × namespace reachability; rows are sources.
#[derive(Serialize, Debug)]
struct HeatMap {
    namespaces: Vec<String>,
    endpoints: Vec<usize>,
    /// `allowed[from][to]`: endpoint pairs that may connect on some port.
    allowed: Vec<Vec<usize>>,
    /// `pairs[from][to]`: every ordered pair of distinct endpoints.
    pairs: Vec<Vec<usize>>,
    from_outside: Vec<usize>,
    to_outside: Vec<usize>,
}

#[derive(Serialize, Debug)]
struct Graph {
    workloads: Vec<WorkloadView>,
    policies: Vec<PolicyView>,
    /// The rules edges refer to by index.
    rules: Vec<RuleView>,
    edges: Vec<EdgeView>,
    /// Connections between two non-isolated workloads left out (see
    /// [`OPEN_CONNECTIONS_DRAWN_UP_TO`]).
    omitted_open_edges: usize,
    /// Above this many workloads, draw only a chosen namespace.
    draw_all_up_to: usize,
}

/// The id of the node standing for every address outside the cluster.
const OUTSIDE: &str = "outside";

#[derive(Serialize, Debug)]
struct WorkloadView {
    /// The graph node id.
    id: String,
    /// `namespace/name`.
    name: String,
    namespace: String,
    /// `Deployment`, `Pod`, `ReplicaSet`, …
    kind: String,
    /// Pods (or pod templates) grouped under this workload.
    endpoints: usize,
    ingress: Isolation,
    egress: Isolation,
}

/// How a workload is isolated in one direction.
#[derive(Serialize, Debug)]
struct Isolation {
    /// Members some policy isolates (all, none, or some when members differ).
    isolated: usize,
    /// The policies that select some member, by index into `policies`.
    policies: Vec<usize>,
}

#[derive(Serialize, Debug)]
struct PolicyView {
    name: String,
    source: Option<String>,
}

#[derive(Serialize, Debug)]
struct RuleView {
    /// Index into `policies`.
    policy: usize,
    /// `ingress[0]`.
    rule: String,
    source: Option<String>,
}

#[derive(Serialize, Debug)]
struct EdgeView {
    /// Node ids: a workload's, or [`OUTSIDE`].
    from: String,
    to: String,
    /// The allowed ports in words (`every port`, `TCP 80; UDP 53`).
    ports: String,
    /// For connections with the outside: which addresses.
    addresses: Option<String>,
    /// For connections between workloads: endpoint pairs that may connect, of all pairs.
    pairs: Option<(usize, usize)>,
    /// Why the source's egress lets it through.
    egress: SideView,
    /// Why the destination's ingress lets it through.
    ingress: SideView,
}

#[derive(Serialize, Debug, Default, Clone)]
struct SideView {
    /// Why the side lets traffic through without a NetworkPolicy rule
    /// (including the admin-tier rules that accept it).
    unrestricted: Vec<String>,
    /// `(rule index, ports it allows of this connection)`.
    rules: Vec<(usize, String)>,
}

impl ReportData {
    /// Sums up a linted input. `source` says what was read.
    pub fn new(linted: &Linted, source: String, config: &policy_core::Config) -> ReportData {
        let model = &linted.model;
        let overview = Overview::new(model);
        let mut lines = SourceLines::new(&linted.sources);
        let findings: Vec<FindingView> = linted
            .findings
            .iter()
            .map(|finding| finding_view(finding, &mut lines))
            .collect();
        ReportData {
            generator: format!("netpol {}", env!("CARGO_PKG_VERSION")),
            source,
            options: format!(
                "--ip-block {} --host-network {} --self-traffic {} --family {}",
                config.ip_block, config.host_network, config.self_traffic, config.address_family
            ),
            summary: summary(model, &overview, &linted.findings),
            findings,
            heatmap: heat_map(&overview),
            graph: graph(model, &overview),
        }
    }
}

fn summary(model: &Model, overview: &Overview, findings: &[Finding]) -> Summary {
    let cluster = model.cluster();
    let endpoints = cluster.endpoints.len();
    let isolated = |direction: Direction| {
        (0..endpoints)
            .filter(|&e| !model.policies_selecting(e, direction).is_empty())
            .count()
    };
    let pods = cluster
        .endpoints
        .iter()
        .filter(|e| e.kind == EndpointKind::Pod)
        .count();
    let mut counts = SeverityCounts::default();
    for finding in findings {
        match finding.severity {
            Severity::Error => counts.error += 1,
            Severity::Warning => counts.warning += 1,
            Severity::Info => counts.info += 1,
        }
    }
    Summary {
        namespaces: cluster.namespaces.len(),
        workloads: overview.workloads.len(),
        endpoints,
        pods,
        pod_templates: endpoints - pods,
        policies: cluster.policies.len(),
        isolated_ingress: isolated(Direction::Ingress),
        isolated_egress: isolated(Direction::Egress),
        reachable_from_outside: overview.namespaces.from_outside.iter().sum(),
        findings: counts,
    }
}

fn finding_view(finding: &Finding, lines: &mut SourceLines<'_>) -> FindingView {
    let snippet = lint::position(finding)
        .and_then(|(file, line, column)| snippet(lines.of(file)?, line, column));
    FindingView {
        code: finding.code,
        rule: finding.rule().name,
        severity: finding.severity.as_str(),
        message: finding.message.clone(),
        help: finding.help.clone(),
        location: finding.source.as_ref().map(|s| s.to_string()),
        about: lint::context_label(finding),
        snippet,
    }
}

/// The lines of each source, split once: a large input has thousands of
/// findings, and scanning its text for each would cost findings × size.
struct SourceLines<'a> {
    sources: BTreeMap<&'a str, &'a str>,
    split: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> SourceLines<'a> {
    fn new(sources: &'a [Source]) -> Self {
        SourceLines {
            sources: sources
                .iter()
                .map(|s| (s.name.as_str(), s.text.as_str()))
                .collect(),
            split: BTreeMap::new(),
        }
    }

    fn of(&mut self, file: &str) -> Option<&[&'a str]> {
        let (&name, &text) = self.sources.get_key_value(file)?;
        Some(
            self.split
                .entry(name)
                .or_insert_with(|| text.lines().collect()),
        )
    }
}

/// The lines around `line` (1-based) of a source's `lines`, and what to
/// underline. None when the line is not in the text (a location past its end).
fn snippet(lines: &[&str], line: u32, column: u32) -> Option<Snippet> {
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let target = lines.get(index)?.trim_end();
    let first = index.saturating_sub(SNIPPET_CONTEXT);
    let last = (index + SNIPPET_CONTEXT).min(lines.len() - 1);
    let shown: Vec<(u32, String)> = (first..=last)
        .map(|number| (number as u32 + 1, lines[number].trim_end().to_string()))
        .collect();
    let from_column: String = target
        .chars()
        .skip((column as usize).saturating_sub(1))
        .collect();
    Some(Snippet {
        line,
        column: column.max(1),
        width: lint::token_width(&from_column),
        lines: shown,
    })
}

fn heat_map(overview: &Overview) -> HeatMap {
    let reach = &overview.namespaces;
    let count = reach.namespaces.len();
    HeatMap {
        namespaces: reach.namespaces.clone(),
        endpoints: reach.endpoints.clone(),
        allowed: reach.allowed_pairs.clone(),
        pairs: (0..count)
            .map(|from| (0..count).map(|to| reach.pairs(from, to)).collect())
            .collect(),
        from_outside: reach.from_outside.clone(),
        to_outside: reach.to_outside.clone(),
    }
}

/// The rules edges mention, each listed once.
#[derive(Default)]
struct RuleTable {
    index: BTreeMap<RuleRef, usize>,
    rules: Vec<RuleView>,
}

impl RuleTable {
    fn id(&mut self, model: &Model, rule: RuleRef) -> usize {
        *self.index.entry(rule).or_insert_with(|| {
            let source = model.cluster().policies[rule.policy]
                .rules(rule.direction)
                .and_then(|rules| rules.iter().find(|r| r.index == rule.index))
                .and_then(|r| r.source.as_ref())
                .map(|s| s.to_string());
            self.rules.push(RuleView {
                policy: rule.policy,
                rule: format!("{}[{}]", rule.direction.field(), rule.index),
                source,
            });
            self.rules.len() - 1
        })
    }

    fn side(&mut self, model: &Model, reasons: &SideReasons) -> SideView {
        let mut unrestricted = Vec::new();
        for (rule, ports) in &reasons.admin_rules {
            unrestricted.push(format!(
                "{}: {}",
                rule.label(model.cluster()),
                ports_words(ports)
            ));
        }
        if reasons.not_isolated {
            unrestricted.push("not isolated".to_string());
        }
        if reasons.host_network {
            unrestricted.push("host-network pod (node traffic)".to_string());
        }
        if reasons.local_node {
            unrestricted.push("same node as a host-network pod".to_string());
        }
        SideView {
            unrestricted,
            rules: reasons
                .rules
                .iter()
                .map(|(rule, ports)| (self.id(model, *rule), ports_words(ports)))
                .collect(),
        }
    }
}

/// What a workload's members are: their kind, or their owner's.
fn workload_kind(model: &Model, member: usize) -> String {
    let endpoint = &model.cluster().endpoints[member];
    match (&endpoint.kind, &endpoint.owner) {
        (EndpointKind::Pod, Some(owner)) => format!("{} pods", owner.kind),
        (kind, _) => kind.as_str().to_string(),
    }
}

fn isolation(model: &Model, members: &[usize], direction: Direction) -> Isolation {
    let mut policies: Vec<usize> = Vec::new();
    let mut isolated = 0;
    for &member in members {
        let selecting = model.policies_selecting(member, direction);
        if !selecting.is_empty() {
            isolated += 1;
        }
        policies.extend_from_slice(selecting);
    }
    policies.sort_unstable();
    policies.dedup();
    Isolation { isolated, policies }
}

fn graph(model: &Model, overview: &Overview) -> Graph {
    let cluster = model.cluster();
    let node_id = |workload: usize| format!("w{workload}");
    let workloads = overview
        .workloads
        .iter()
        .enumerate()
        .map(|(id, workload)| WorkloadView {
            id: node_id(id),
            name: workload.name.clone(),
            namespace: workload.namespace.clone(),
            kind: workload_kind(model, workload.members[0]),
            endpoints: workload.members.len(),
            ingress: isolation(model, &workload.members, Direction::Ingress),
            egress: isolation(model, &workload.members, Direction::Egress),
        })
        .collect();
    let policies = cluster
        .policies
        .iter()
        .map(|policy| PolicyView {
            name: policy.reference(),
            source: policy.source.as_ref().map(|s| s.to_string()),
        })
        .collect();

    let wide_open = |egress: &SideReasons, ingress: &SideReasons| {
        [egress, ingress]
            .iter()
            .all(|side| side.not_isolated && side.rules.is_empty())
    };
    let omit_open =
        overview.connections.len() + overview.outside.len() > OPEN_CONNECTIONS_DRAWN_UP_TO;
    let mut rules = RuleTable::default();
    let mut edges = Vec::new();
    let mut omitted_open_edges = 0;
    for connection in &overview.connections {
        if omit_open && wide_open(&connection.egress, &connection.ingress) {
            omitted_open_edges += 1;
            continue;
        }
        edges.push(EdgeView {
            from: node_id(connection.from),
            to: node_id(connection.to),
            ports: ports_words(&connection.ports),
            addresses: None,
            pairs: Some((connection.allowed_pairs, connection.pairs)),
            egress: rules.side(model, &connection.egress),
            ingress: rules.side(model, &connection.ingress),
        });
    }
    let outside_side = SideView {
        unrestricted: vec!["outside the cluster: no policy applies".to_string()],
        rules: Vec::new(),
    };
    for connection in &overview.outside {
        let workload = node_id(connection.workload);
        let side = rules.side(model, &connection.reasons);
        let (from, to, egress, ingress) = match connection.direction {
            Direction::Ingress => (OUTSIDE.to_string(), workload, outside_side.clone(), side),
            Direction::Egress => (workload, OUTSIDE.to_string(), side, outside_side.clone()),
        };
        edges.push(EdgeView {
            from,
            to,
            ports: ports_words(&connection.ports),
            addresses: Some(addresses_words(&connection.addresses)),
            pairs: None,
            egress,
            ingress,
        });
    }
    Graph {
        workloads,
        policies,
        rules: rules.rules,
        edges,
        omitted_open_edges,
        draw_all_up_to: DRAW_ALL_WORKLOADS_UP_TO,
    }
}

/// "any address", or the CIDRs.
fn addresses_words(addresses: &policy_core::ipset::IpSet) -> String {
    if *addresses == policy_core::ipset::IpSet::everything() {
        "any address".to_string()
    } else {
        addresses.to_string()
    }
}

const TEMPLATE: &str = include_str!("../assets/report.html");
const STYLE: &str = include_str!("../assets/report.css");
const SCRIPT: &str = include_str!("../assets/report.js");
const CYTOSCAPE: &str = include_str!("../assets/vendor/cytoscape.min.js");
const CYTOSCAPE_LICENSE: &str = include_str!("../assets/vendor/cytoscape.LICENSE");
/// The vendored library's package and version, as assets/vendor/README.md records them.
const CYTOSCAPE_PACKAGE: &str = "cytoscape@3.35.0 (npm)";

/// The page: the template with the style, data, library and viewer inlined.
pub fn render_html(data: &ReportData) -> String {
    let json = serde_json::to_string(data).expect("report data is plain JSON");
    let notice = format!(
        "{CYTOSCAPE_PACKAGE}, MIT licence:\n\n{}",
        CYTOSCAPE_LICENSE.trim()
    );
    fill_template(TEMPLATE, |name| match name {
        "generator" => Some(html_text(&data.generator)),
        "style" => Some(STYLE.to_string()),
        "data" => Some(script_json(&json)),
        "cytoscape-license" => Some(html_comment(&notice)),
        "cytoscape" => Some(CYTOSCAPE.to_string()),
        "script" => Some(SCRIPT.to_string()),
        _ => None,
    })
}

/// Replaces each `{{name}}` of `template` with `value(name)`, in one pass:
/// what is inserted is never scanned again (minified code may contain `{{`).
/// An unknown name is left as written.
fn fill_template(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + CYTOSCAPE.len() + 64 * 1024);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after
            .find("}}")
            .and_then(|end| Some((end, value(&after[..end])?)))
        {
            Some((end, replacement)) => {
                out.push_str(&replacement);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// JSON made safe inside `<script type="application/json">`: no `<` (so
/// no `</script>` or `<!--` can end or confuse the element), no `>` or `&`,
/// and no line separators. Escaped as `\u` sequences, so `JSON.parse`
/// reads the same value.
fn script_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Text for an HTML element or attribute.
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML comment holding `text` (`--` cannot appear inside one).
fn html_comment(text: &str) -> String {
    let mut body = text.replace("--", "- -");
    while body.contains("--") {
        body = body.replace("--", "- -");
    }
    let mut out = String::new();
    let _ = write!(out, "<!--\n{body}\n-->");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let json = serde_json::to_string(&["</script><!-- a & b \u{2028}"]).unwrap();
        let safe = script_json(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: Vec<String> = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, ["</script><!-- a & b \u{2028}"]);
    }

    #[test]
    fn the_inlined_scripts_cannot_close_their_element() {
        for (name, script) in [("cytoscape", CYTOSCAPE), ("report.js", SCRIPT)] {
            assert!(
                !script.to_ascii_lowercase().contains("</script"),
                "{name} contains </script"
            );
        }
    }

    #[test]
    fn the_template_is_filled_once_and_unknown_names_stay() {
        let filled = fill_template("a {{x}} b {{y}} c {{", |name| {
            (name == "x").then(|| "{{y}}".to_string())
        });
        assert_eq!(filled, "a {{y}} b {{y}} c {{");
        // Every placeholder of the real template is known.
        let page = fill_template(TEMPLATE, |name| {
            matches!(
                name,
                "generator" | "style" | "data" | "cytoscape-license" | "cytoscape" | "script"
            )
            .then(String::new)
        });
        assert!(!page.contains("{{"), "unknown placeholder in report.html");
    }

    #[test]
    fn html_comments_never_hold_a_double_dash() {
        let comment = html_comment("a -- b --- c");
        let inner = &comment[4..comment.len() - 3];
        assert!(!inner.contains("--"), "{comment}");
    }

    #[test]
    fn a_snippet_shows_the_lines_around_the_location() {
        let text: Vec<&str> = "one\ntwo\nthree: x\nfour\nfive\nsix\n".lines().collect();
        let text = text.as_slice();
        let shown = snippet(text, 3, 8).unwrap();
        let numbers: Vec<u32> = shown.lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
        assert_eq!((shown.line, shown.column, shown.width), (3, 8, 1));
        assert!(snippet(text, 99, 1).is_none());
        assert!(snippet(text, 0, 1).is_none());
    }
}
