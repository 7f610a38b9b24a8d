//! `netpol lint` and `netpol rules`: formats, exit codes, configuration.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn netpol(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("netpol runs")
}

fn netpol_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netpol runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Findings of several kinds: errors (NP001, NP002), warnings (NP005, NP008), info (NP012).
const MIXED: &str = "testdata/lint/mixed.yaml";

#[test]
fn text_output_is_a_rustc_style_report() {
    let output = netpol(&["lint", MIXED]);
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn a_clean_input_exits_0() {
    let output = netpol(&["lint", "testdata/lint/NP013/clean.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "No findings.\n");
}

#[test]
fn fail_on_sets_the_threshold() {
    // NP012 is info only.
    let info_only = "testdata/lint/NP012/fires.yaml";
    assert_eq!(netpol(&["lint", info_only]).status.code(), Some(0));
    assert_eq!(
        netpol(&["lint", info_only, "--fail-on", "info"])
            .status
            .code(),
        Some(1)
    );
    // NP004 is a warning.
    let warnings = "testdata/lint/NP004/fires.yaml";
    assert_eq!(netpol(&["lint", warnings]).status.code(), Some(1));
    assert_eq!(
        netpol(&["lint", warnings, "--fail-on", "error"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn usage_errors_and_unreadable_input_exit_2() {
    assert_eq!(netpol(&["lint", "no/such/path"]).status.code(), Some(2));
    assert_eq!(
        netpol(&["lint", MIXED, "--allow", "NP999"]).status.code(),
        Some(2)
    );
    assert_eq!(
        netpol(&["lint", MIXED, "--config", "no/such/config.yaml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        netpol(&["lint", MIXED, "--output", "xml"]).status.code(),
        Some(2)
    );
    let bad_config = std::env::temp_dir().join("netpol-bad-config.yaml");
    std::fs::write(&bad_config, "allow: [NP004]\nfail_on: warning\n").unwrap();
    let output = netpol(&["lint", MIXED, "--config", bad_config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("fail_on"));
}

#[test]
fn json_has_one_object_per_finding() {
    let output = netpol(&["lint", MIXED, "--output", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let findings: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let findings = findings.as_array().unwrap();
    assert!(findings.len() >= 5);
    for finding in findings {
        let keys: Vec<&String> = finding.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "code", "rule", "severity", "message", "help", "file", "line", "column", "object",
                "field"
            ]
        );
    }
    let typo = findings.iter().find(|f| f["code"] == "NP002").unwrap();
    assert_eq!(typo["rule"], "unknown-field");
    assert_eq!(typo["severity"], "error");
    assert_eq!(typo["file"], MIXED);
    assert_eq!(typo["field"], "spec.ingres");
    assert_eq!(typo["object"]["kind"], "NetworkPolicy");
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let output = netpol(&[
        "lint",
        MIXED,
        "testdata/lint/NP010/fires.yaml",
        "--output",
        "sarif",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let sarif: Value = serde_json::from_str(&stdout(&output)).unwrap();
    // The published schema's language-tag patterns have an unescaped `]`,
    // which ECMAScript reads as a literal and the Rust regex engine rejects;
    // escaping it keeps the meaning. netpol emits no language tags.
    let schema_text =
        std::fs::read_to_string(repo().join("testdata/sarif/sarif-schema-2.1.0.json"))
            .unwrap()
            .replace(r"{2}-[a-zA-Z]{2}]?$", r"{2}-[a-zA-Z]{2}\\]?$");
    let schema: Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    // The validator has teeth: a level SARIF does not define is rejected.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = Value::String("fatal".into());
    assert!(!validator.is_valid(&broken));
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF does not validate:\n{}",
        errors.join("\n")
    );

    let run = &sarif["runs"][0];
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(run["tool"]["driver"]["name"], "netpol");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), policy_core::lint::RULES.len());
    assert!(rules.iter().all(|r| {
        r["help"]["markdown"]
            .as_str()
            .unwrap()
            .contains("## What it does")
    }));
    let results = run["results"].as_array().unwrap();
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        let location = &result["locations"][0]["physicalLocation"];
        assert!(
            location["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("testdata/lint/")
        );
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
    }
    let levels: Vec<&str> = results
        .iter()
        .map(|r| r["level"].as_str().unwrap())
        .collect();
    assert!(levels.contains(&"error") && levels.contains(&"warning") && levels.contains(&"note"));
}

#[test]
fn github_output_is_workflow_commands() {
    let output = netpol(&["lint", MIXED, "--output", "github"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let typo = text.lines().find(|l| l.contains("NP002")).unwrap();
    assert!(
        typo.starts_with(&format!("::error file={MIXED},line=")),
        "{typo}"
    );
    assert!(
        typo.contains(",title=NP002 unknown-field::unknown field `ingres`"),
        "{typo}"
    );
    assert!(text.lines().any(|l| l.starts_with("::warning file=")));
    assert!(text.lines().any(|l| l.starts_with("::notice file=")));
    // Multi-line messages are escaped onto one line.
    assert!(text.lines().all(|l| l.starts_with("::")));
    assert!(typo.contains("%0Ahelp: "));
}

#[test]
fn allow_flag_config_file_and_annotations_turn_rules_off() {
    let all = netpol(&["lint", MIXED, "--output", "json"]);
    let codes = |output: &Output| -> Vec<String> {
        let findings: Value = serde_json::from_str(&stdout(output)).unwrap();
        findings
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(codes(&all).contains(&"NP012".to_string()));
    let allowed = netpol(&[
        "lint",
        MIXED,
        "--output",
        "json",
        "--allow",
        "NP012",
        "--allow",
        "dns-blocked",
    ]);
    assert!(!codes(&allowed).iter().any(|c| c == "NP012" || c == "NP008"));

    let config = std::env::temp_dir().join("netpol-lint-config.yaml");
    std::fs::write(&config, "allow: [NP001, NP002, redundant]\nseverity: {NP005: info, NP008: info}\nfail-on: warning\n").unwrap();
    let output = netpol(&[
        "lint",
        MIXED,
        "--output",
        "json",
        "--config",
        config.to_str().unwrap(),
    ]);
    // Only infos are left, so the run passes.
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let findings: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "info")
    );
}

#[test]
fn lint_reads_standard_input() {
    let manifests = std::fs::read_to_string(repo().join(MIXED)).unwrap();
    let output = netpol_with_stdin(&["lint", "-", "--output", "github"], &manifests);
    assert_eq!(output.status.code(), Some(1));
    // Standard input has no file to annotate.
    assert!(
        stdout(&output)
            .lines()
            .any(|l| l.starts_with("::error title=NP002"))
    );
}

#[test]
fn rules_lists_every_rule_and_explains_one() {
    let output = netpol(&["rules"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output).lines().count(),
        policy_core::lint::RULES.len()
    );
    let output = netpol(&["rules", "NP004"]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!(stdout(&output));
    assert_eq!(netpol(&["rules", "NP404"]).status.code(), Some(2));
}
