//! `netpol lint` and `netpol rules`: findings for CI, in four formats.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use clap::{Args, ValueEnum};
use policy_core::lint::{self, Finding, LintOptions, RULES, RuleInfo};
use policy_core::{Config, Model, Severity};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ExitCode;
use crate::input::{self, Input, InputArgs, Source};

/// Arguments of `netpol lint`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol lint manifests/
  helm template shop ./chart | netpol lint -
  netpol lint manifests/ --output sarif > netpol.sarif     # GitHub code scanning
  netpol lint manifests/ --output github                  # annotations in a workflow
  netpol lint manifests/ --fail-on error --allow NP011 --config .netpol.yaml

Exit status: 0 when no finding is at or above --fail-on, 1 when one is,
2 on a usage error or unreadable input. `netpol rules` lists the rules.

Turn a rule off for one object with an annotation:
  metadata:
    annotations:
      netpol.dev/allow: NP004, NP009

Config file (YAML):
  allow: [NP011]            # rules not to run
  severity: {NP009: error}  # per-rule severity
  fail-on: warning")]
pub struct LintArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = LintOutput::Text)]
    output: LintOutput,

    /// Exit with status 1 when a finding is at least this severe [default: warning].
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<Level>,

    /// Do not run this rule (code such as NP011, or its name). Repeatable.
    #[arg(long, value_name = "RULE")]
    allow: Vec<String>,

    /// A YAML file with `allow`, `severity` and `fail-on`.
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LintOutput {
    Text,
    Json,
    Sarif,
    Github,
}

/// A severity as written on the command line and in the config file.
#[derive(ValueEnum, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Error,
    Warning,
    Info,
}

impl From<Level> for Severity {
    fn from(level: Level) -> Severity {
        match level {
            Level::Error => Severity::Error,
            Level::Warning => Severity::Warning,
            Level::Info => Severity::Info,
        }
    }
}

/// The config file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LintConfig {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    severity: BTreeMap<String, Level>,
    fail_on: Option<Level>,
}

fn read_config(path: &str) -> Result<LintConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {path}: {e}"))?;
    if text.trim().is_empty() {
        return Ok(LintConfig::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| format!("--config {path}: {}", e.without_snippet()))
}

/// A rule code or name, checked against the registry.
fn known_rule(text: &str, origin: &str) -> Result<&'static RuleInfo, String> {
    lint::rule_info(text.trim())
        .ok_or_else(|| format!("{origin}: unknown rule {text:?}; `netpol rules` lists the rules"))
}

pub fn run(args: LintArgs) -> ExitCode {
    let config = match args.config.as_deref().map(read_config).transpose() {
        Ok(config) => config.unwrap_or_default(),
        Err(message) => return crate::fail(&message),
    };
    let mut options = LintOptions::default();
    for (code, origin) in config
        .allow
        .iter()
        .map(|c| (c, "config allow"))
        .chain(args.allow.iter().map(|c| (c, "--allow")))
    {
        match known_rule(code, origin) {
            Ok(rule) => {
                options.allow.insert(rule.code.to_string());
            }
            Err(message) => return crate::fail(&message),
        }
    }
    for (code, level) in &config.severity {
        match known_rule(code, "config severity") {
            Ok(rule) => {
                options
                    .severity
                    .insert(rule.code.to_string(), (*level).into());
            }
            Err(message) => return crate::fail(&message),
        }
    }
    let fail_on: Severity = args
        .fail_on
        .or(config.fail_on)
        .unwrap_or(Level::Warning)
        .into();

    let input = match input::read_and_load(&args.input) {
        Ok(input) => input,
        Err(error) => return crate::fail(&error.0),
    };
    if args.input.model.verbose {
        input.progress.suspend(|| input::print_summary(&input));
    }
    let progress = input.progress.clone();
    let Linted {
        findings,
        sources,
        unreadable,
        ..
    } = lint_input(input, args.input.model.config(), &options);
    progress.finish();

    let output = match args.output {
        LintOutput::Text => render_text(
            &findings,
            &sources,
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        ),
        LintOutput::Json => format!("{:#}\n", render_json(&findings)),
        LintOutput::Sarif => format!("{:#}\n", render_sarif(&findings)),
        LintOutput::Github => render_github(&findings),
    };
    print!("{output}");
    if unreadable > 0 {
        ExitCode::Error
    } else if findings.iter().any(|f| f.severity >= fail_on) {
        ExitCode::Failure
    } else {
        ExitCode::Success
    }
}

/// What linting an input found, and the model it was found on.
pub struct Linted {
    /// The model the rules ran on.
    pub model: Model,
    /// The findings, in source order.
    pub findings: Vec<Finding>,
    /// The source texts, for snippets.
    pub sources: Vec<Source>,
    /// Files that could not be read at all (exit status 2).
    pub unreadable: usize,
}

/// Builds the model of `input` and runs the lint rules on it. This is what
/// `netpol lint` reports, and `netpol report` shows the same findings, so
/// both go through here. The progress bar keeps running: the caller
/// finishes it before printing.
pub fn lint_input(input: Input, config: Config, options: &LintOptions) -> Linted {
    let Input {
        loaded,
        sources,
        unreadable,
        progress,
        ..
    } = input;
    progress.step("building model");
    let model = Model::new(loaded.cluster, config);
    progress.step("linting");
    let findings = lint::lint(&loaded.diagnostics, &loaded.allowances, &model, options);
    Linted {
        model,
        findings,
        sources,
        unreadable,
    }
}

/// `file`, `line`, `column` of a finding, when it has a location.
pub(crate) fn position(finding: &Finding) -> Option<(&str, u32, u32)> {
    finding
        .source
        .as_ref()
        .map(|s| (&*s.file, s.location.line, s.location.column))
}

/// The object and field a finding is about: `NetworkPolicy shop/web, spec.egress[0]`.
pub(crate) fn context_label(finding: &Finding) -> String {
    let mut parts = Vec::new();
    if let Some(object) = &finding.object {
        parts.push(object.to_string());
    }
    if !finding.field.is_empty() {
        parts.push(finding.field.to_string());
    }
    parts.join(", ")
}

/// rustc/ruff-style diagnostics with a source snippet.
fn render_text(findings: &[Finding], sources: &[Source], color: bool) -> String {
    // Each file's lines, split once: scanning a large file from the top for
    // every finding made text output quadratic.
    let texts: BTreeMap<&str, Vec<&str>> = sources
        .iter()
        .map(|s| (s.name.as_str(), s.text.lines().collect()))
        .collect();
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    for finding in findings {
        let (severity_color, marker) = match finding.severity {
            Severity::Error => ("1;31", "error"),
            Severity::Warning => ("1;33", "warning"),
            Severity::Info => ("1;36", "info"),
        };
        let rule = finding.rule();
        let _ = writeln!(
            out,
            "{}{} {}",
            paint(severity_color, &format!("{marker}[{}]", finding.code)),
            paint("1", ":"),
            paint("1", &finding.message)
        );
        let label = context_label(finding);
        match position(finding) {
            Some((file, line, column)) if line > 0 => {
                let gutter = line.to_string().len();
                let _ = writeln!(
                    out,
                    "{:gutter$}{} {file}:{line}:{column}",
                    "",
                    paint("1;34", "-->")
                );
                let source_line = texts
                    .get(file)
                    .and_then(|lines| lines.get(line as usize - 1).copied());
                if let Some(source_line) = source_line {
                    let bar = paint("1;34", "|");
                    let _ = writeln!(out, "{:gutter$} {bar}", "");
                    let _ = writeln!(
                        out,
                        "{} {bar} {}",
                        paint("1;34", &line.to_string()),
                        source_line.trim_end()
                    );
                    let start = (column as usize).saturating_sub(1).min(source_line.len());
                    let width = token_width(&source_line[start..]);
                    let prefix: String = source_line[..start]
                        .chars()
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    let _ = writeln!(
                        out,
                        "{:gutter$} {bar} {prefix}{} {}",
                        "",
                        paint(severity_color, &"^".repeat(width)),
                        paint(severity_color, &label)
                    );
                    let _ = writeln!(out, "{:gutter$} {bar}", "");
                } else if !label.is_empty() {
                    let _ = writeln!(out, "{:gutter$} = {label}", "");
                }
                if let Some(help) = &finding.help {
                    let _ = writeln!(out, "{:gutter$} = {}: {help}", "", paint("1", "help"));
                }
                let _ = writeln!(
                    out,
                    "{:gutter$} = {}: {} (netpol rules {})",
                    "",
                    paint("1", "rule"),
                    rule.name,
                    rule.code
                );
            }
            location => {
                if let Some((file, _, _)) = location {
                    let _ = writeln!(out, " {} {file}", paint("1;34", "-->"));
                }
                if !label.is_empty() {
                    let _ = writeln!(out, "  = {label}");
                }
                if let Some(help) = &finding.help {
                    let _ = writeln!(out, "  = {}: {help}", paint("1", "help"));
                }
                let _ = writeln!(
                    out,
                    "  = {}: {} (netpol rules {})",
                    paint("1", "rule"),
                    rule.name,
                    rule.code
                );
            }
        }
        out.push('\n');
    }
    out.push_str(&summary(findings));
    out
}

/// The width of the token that starts a line slice: a key, a word, a value.
pub(crate) fn token_width(text: &str) -> usize {
    let width = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '$' | '@'))
        .count();
    width.max(1)
}

fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "No findings.\n".to_string();
    }
    let count = |severity: Severity| findings.iter().filter(|f| f.severity == severity).count();
    let mut parts = Vec::new();
    for (severity, one, many) in [
        (Severity::Error, "error", "errors"),
        (Severity::Warning, "warning", "warnings"),
        (Severity::Info, "info", "infos"),
    ] {
        match count(severity) {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        }
    }
    format!("Found {}.\n", parts.join(", "))
}

fn finding_json(finding: &Finding) -> Value {
    let rule = finding.rule();
    let (file, line, column) = match position(finding) {
        Some((file, line, column)) => (
            Some(file),
            (line > 0).then_some(line),
            (column > 0).then_some(column),
        ),
        None => (None, None, None),
    };
    json!({
        "code": finding.code,
        "rule": rule.name,
        "severity": finding.severity.as_str(),
        "message": finding.message,
        "help": finding.help,
        "file": file,
        "line": line,
        "column": column,
        "object": finding.object.as_ref().map(|o| json!({"kind": o.kind, "namespace": o.namespace, "name": o.name})),
        "field": (!finding.field.is_empty()).then(|| finding.field.to_string()),
    })
}

/// One JSON object per finding, in an array.
fn render_json(findings: &[Finding]) -> Value {
    Value::Array(findings.iter().map(finding_json).collect())
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A file name as a SARIF artifact URI: relative paths without `./`, `/` separators.
fn artifact_uri(file: &str) -> String {
    let path = Path::new(file);
    let relative = path.strip_prefix("./").unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// SARIF 2.1.0, as GitHub code scanning accepts it.
fn render_sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            let info = rule.info();
            json!({
                "id": info.code,
                "name": info.name,
                "shortDescription": {"text": info.summary},
                "fullDescription": {"text": info.summary},
                "help": {"text": info.documentation(), "markdown": info.documentation()},
                "defaultConfiguration": {"level": sarif_level(info.severity)},
                "properties": {"tags": ["kubernetes", "networkpolicy"]},
            })
        })
        .collect();
    let rule_index: BTreeMap<&str, usize> = RULES
        .iter()
        .enumerate()
        .map(|(i, r)| (r.info().code, i))
        .collect();
    let mut artifacts = BTreeSet::new();
    let results: Vec<Value> = findings
        .iter()
        .map(|finding| {
            let mut message = finding.message.clone();
            if let Some(help) = &finding.help {
                message.push_str("\nhelp: ");
                message.push_str(help);
            }
            let mut result = json!({
                "ruleId": finding.code,
                "ruleIndex": rule_index[finding.code],
                "level": sarif_level(finding.severity),
                "message": {"text": message},
            });
            if let Some((file, line, column)) = position(finding)
                && file != "-"
            {
                let uri = artifact_uri(file);
                artifacts.insert(uri.clone());
                let mut region = serde_json::Map::new();
                region.insert("startLine".into(), json!(line.max(1)));
                if column > 0 {
                    region.insert("startColumn".into(), json!(column));
                }
                let mut location = json!({
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri},
                        "region": Value::Object(region),
                    }
                });
                if let Some(object) = &finding.object {
                    let name = if finding.field.is_empty() { object.to_string() } else { format!("{object} {}", finding.field) };
                    location["logicalLocations"] = json!([{"fullyQualifiedName": name}]);
                }
                result["locations"] = json!([location]);
                result["partialFingerprints"] = json!({
                    "netpolFinding/v1": fingerprint(&[finding.code, &uri, &context_label(finding), &finding.message]),
                });
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "netpol",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules,
            }},
            "artifacts": artifacts.iter().map(|uri| json!({"location": {"uri": uri}})).collect::<Vec<_>>(),
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// A stable fingerprint (FNV-1a, 64 bits) of what identifies a finding, so
/// that code scanning tracks it across line moves.
fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// GitHub Actions workflow commands (`::error file=…,line=…::message`).
fn render_github(findings: &[Finding]) -> String {
    fn escape_data(text: &str) -> String {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn escape_property(text: &str) -> String {
        escape_data(text).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for finding in findings {
        let command = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = Vec::new();
        if let Some((file, line, column)) = position(finding)
            && file != "-"
        {
            properties.push(format!("file={}", escape_property(file)));
            if line > 0 {
                properties.push(format!("line={line}"));
            }
            if column > 0 {
                properties.push(format!("col={column}"));
            }
        }
        properties.push(format!(
            "title={}",
            escape_property(&format!("{} {}", finding.code, finding.rule().name))
        ));
        let mut message = finding.message.clone();
        let label = context_label(finding);
        if !label.is_empty() {
            message.push_str(&format!(" ({label})"));
        }
        if let Some(help) = &finding.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            escape_data(&message)
        );
    }
    out
}

/// Arguments of `netpol rules`.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  netpol rules            # every rule: code, name, severity, summary
  netpol rules NP004      # one rule's documentation
  netpol rules dead-peer")]
pub struct RulesArgs {
    /// A rule code (NP004) or name (dead-policy).
    rule: Option<String>,
}

pub fn rules(args: RulesArgs) -> ExitCode {
    match args.rule {
        None => {
            let mut out = String::new();
            for rule in RULES {
                let info = rule.info();
                let _ = writeln!(
                    out,
                    "{}  {:<24} {:<8} {}",
                    info.code,
                    info.name,
                    info.severity.as_str(),
                    info.summary
                );
            }
            print!("{out}");
            ExitCode::Success
        }
        Some(code) => match known_rule(&code, "netpol rules") {
            Ok(info) => {
                println!(
                    "{} {} ({}): {}\n\n{}",
                    info.code,
                    info.name,
                    info.severity,
                    info.summary,
                    info.documentation()
                );
                ExitCode::Success
            }
            Err(message) => crate::fail(&message),
        },
    }
}
