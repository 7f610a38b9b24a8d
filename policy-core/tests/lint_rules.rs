//! Every lint rule against its own fixtures (testdata/lint/NPxxx).
//!
//! `fires*.yaml`: the rule reports exactly the lines marked `# expect: NPxxx`.
//! `clean*.yaml`: the rule reports nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use policy_core::lint::{self, Finding, LintOptions, RULES};
use policy_core::{Config, Loader, Model};

fn lint_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/lint")
}

fn lint_file(path: &Path) -> Vec<Finding> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut loader = Loader::new();
    loader.load_str(&path.display().to_string(), &text);
    let loaded = loader.finish();
    let model = Model::new(loaded.cluster, Config::default());
    lint::lint(
        &loaded.diagnostics,
        &loaded.allowances,
        &model,
        &LintOptions::default(),
    )
}

/// Lines carrying `# expect: CODE`, per code.
fn expectations(path: &Path) -> BTreeMap<String, BTreeSet<u32>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut expected: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if let Some((_, codes)) = line.split_once("# expect:") {
            for code in codes.split([',', ' ']).filter(|c| !c.is_empty()) {
                expected
                    .entry(code.to_string())
                    .or_default()
                    .insert(index as u32 + 1);
            }
        }
    }
    expected
}

fn lines_of(findings: &[Finding], code: &str) -> BTreeSet<u32> {
    findings
        .iter()
        .filter(|f| f.code == code)
        .map(|f| f.source.as_ref().map_or(0, |s| s.location.line))
        .collect()
}

#[test]
fn every_rule_fires_exactly_on_its_fixture_and_nowhere_on_its_clean_one() {
    let mut failures = Vec::new();
    for rule in RULES {
        let code = rule.info().code;
        let dir = lint_dir().join(code);
        let fixtures = |prefix: &str| -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|_| panic!("{code} has no fixture directory {}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
                .collect();
            files.sort();
            files
        };
        let fires = fixtures("fires");
        assert!(!fires.is_empty(), "{code} has no fires.yaml");
        for path in fires {
            let expected = expectations(&path).remove(code).unwrap_or_default();
            assert!(
                !expected.is_empty(),
                "{}: no line is marked `# expect: {code}`",
                path.display()
            );
            let findings = lint_file(&path);
            let actual = lines_of(&findings, code);
            if actual != expected {
                let shown: Vec<String> = findings
                    .iter()
                    .filter(|f| f.code == code)
                    .map(|f| f.to_string())
                    .collect();
                failures.push(format!(
                    "{code} {}: expected lines {expected:?}, got {actual:?}\n  {}",
                    path.display(),
                    shown.join("\n  ")
                ));
            }
        }

        let clean = fixtures("clean");
        assert!(!clean.is_empty(), "{code} has no clean fixture");
        for path in clean {
            let findings = lint_file(&path);
            let reported: Vec<String> = findings
                .iter()
                .filter(|f| f.code == code)
                .map(|f| f.to_string())
                .collect();
            if !reported.is_empty() {
                failures.push(format!(
                    "{code} {}: expected nothing, got\n  {}",
                    path.display(),
                    reported.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_rule_is_documented_with_the_three_sections() {
    let mut codes = BTreeSet::new();
    for rule in RULES {
        let info = rule.info();
        assert!(codes.insert(info.code), "duplicate code {}", info.code);
        let doc = info.documentation();
        for section in ["## What it does", "## Why it matters", "## Example"] {
            assert!(doc.contains(section), "{} lacks `{section}`", info.code);
        }
        assert!(!info.summary.is_empty());
        assert_eq!(lint::rule_info(info.name).map(|r| r.code), Some(info.code));
    }
}

#[test]
fn an_annotation_turns_a_rule_off_for_one_object() {
    let text = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: shop}
spec: {policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: b
  namespace: shop
  annotations: {netpol.dev/allow: \"np012, NP007\"}
spec: {podSelector: {matchLabels: {app: x}}, policyTypes: [Egress]}
";
    let mut loader = Loader::new();
    loader.load_str("t.yaml", text);
    let loaded = loader.finish();
    let model = Model::new(loaded.cluster, Config::default());
    let findings = lint::lint(
        &loaded.diagnostics,
        &loaded.allowances,
        &model,
        &LintOptions::default(),
    );
    let deny_all: Vec<&str> = findings
        .iter()
        .filter(|f| f.code == "NP012")
        .map(|f| f.object.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(deny_all, ["a"]);
}

#[test]
fn options_disable_rules_and_change_severities() {
    let path = lint_dir().join("NP012/fires.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut loader = Loader::new();
    loader.load_str("t.yaml", &text);
    let loaded = loader.finish();
    let model = Model::new(loaded.cluster, Config::default());
    let mut options = LintOptions::default();
    options
        .severity
        .insert("NP012".into(), policy_core::Severity::Error);
    let findings = lint::lint(&loaded.diagnostics, &loaded.allowances, &model, &options);
    assert!(
        findings
            .iter()
            .any(|f| f.code == "NP012" && f.severity == policy_core::Severity::Error)
    );
    options.allow.insert("NP012".into());
    let findings = lint::lint(&loaded.diagnostics, &loaded.allowances, &model, &options);
    assert!(findings.iter().all(|f| f.code != "NP012"));
}
