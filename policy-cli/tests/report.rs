//! `netpol report`: one self-contained HTML page, checked as a file and as
//! what a real browser renders. Headless Chromium (Debian's `chromium`,
//! which `scripts/test-all` installs) opens the report of `examples/demo`;
//! the test reads the rendered DOM and the browser's console log. With
//! NETPOL_REQUIRE_E2E=1 (CI), a missing Chromium is a failure.
//!
//! A screenshot is kept at `target/report-screenshot.png` (under
//! `$CARGO_TARGET_DIR` when set) as a CI artifact.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use policy_core::Loader;
use serde_json::Value;

const DEMO: &str = "examples/demo";

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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpol-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn demo_report(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("report.html");
    let output = netpol(&["report", DEMO, "-o", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let page = std::fs::read_to_string(&path).expect("the report was written");
    (path, page)
}

#[test]
fn the_report_is_one_file_that_requests_nothing() {
    let dir = scratch("file");
    let (_, page) = demo_report(&dir);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains(
        "content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\""
    ));
    // No external resource: nothing is loaded from an address.
    for attribute in ["src=", "href="] {
        let mut rest = page.as_str();
        while let Some(at) = rest.find(attribute) {
            let value = rest[at + attribute.len()..].trim_start_matches(['"', '\'']);
            assert!(
                !value.starts_with("http:")
                    && !value.starts_with("https:")
                    && !value.starts_with("//"),
                "external {attribute}{}",
                &value[..value.len().min(60)]
            );
            rest = &rest[at + attribute.len()..];
        }
    }
    assert!(!page.contains("<link "), "no linked stylesheet or resource");
    // The vendored library and its licence are inside.
    assert!(page.contains("cytoscape@3.35.0 (npm), MIT licence"));
    assert!(page.contains("The Cytoscape Consortium"));

    // `-o -` writes the same page to standard output.
    let stdout = netpol(&["report", DEMO, "-o", "-"]);
    assert_eq!(stdout.status.code(), Some(0));
    assert_eq!(text(&stdout.stdout), page);

    // A path that does not exist is a usage error, and nothing is written.
    let missing = netpol(&[
        "report",
        "no/such/dir",
        "-o",
        dir.join("x.html").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(!dir.join("x.html").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Chromium from PATH; with NETPOL_REQUIRE_E2E=1 its absence fails the test.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        });
    if found.is_none() {
        assert_ne!(
            std::env::var("NETPOL_REQUIRE_E2E").as_deref(),
            Ok("1"),
            "Chromium is not installed (apt-get install -y chromium); the report's browser \
             test needs it. NETPOL_REQUIRE_E2E=1 is set, so this is a failure."
        );
        eprintln!("note: skipping the report's browser test: Chromium is not installed");
    }
    found
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom`, or
/// `--screenshot=…`); returns stdout and the browser's log.
fn run_chromium(
    browser: &Path,
    profile: &Path,
    url: &str,
    mode: &str,
    height: u32,
) -> (String, String) {
    let _ = std::fs::remove_dir_all(profile);
    std::fs::create_dir_all(profile).unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--window-size=1400,{height}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Drain both pipes while waiting: the DOM alone is larger than a pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (text(&stdout.join().unwrap()), text(&stderr.join().unwrap()))
}

/// The value of `attribute="…"` on the element whose start tag has `marker`.
fn attribute(dom: &str, marker: &str, attribute: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attribute}=\"");
    let from = tag.find(&key)? + key.len();
    Some(tag[from..from + tag[from..].find('"')?].to_string())
}

/// Console messages (page errors are console errors too) from the log.
fn console_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(":CONSOLE") || line.contains("Uncaught"))
        .collect()
}

#[test]
fn chromium_renders_the_demo_report_with_every_workload_and_finding() {
    let Some(browser) = chromium() else { return };
    let dir = scratch("browser");
    let (path, _) = demo_report(&dir);
    let url = format!("file://{}", path.display());
    let profile = dir.join("profile");

    // What the page must show, computed without the report: the demo's
    // workloads as the model groups them, and the lint findings.
    let mut loader = Loader::new();
    for file in ["namespaces.yaml", "workloads.yaml", "policies.yaml"] {
        let file = repo().join(DEMO).join(file);
        loader.load_str(
            &file.display().to_string(),
            &std::fs::read_to_string(&file).unwrap(),
        );
    }
    let cluster = loader.finish().cluster;
    let workloads: BTreeSet<String> = (0..cluster.endpoints.len())
        .map(|id| cluster.workload_name(id))
        .collect();
    let lint = netpol(&["lint", DEMO, "--output", "json"]);
    let findings: Value = serde_json::from_slice(&lint.stdout).expect("lint JSON");
    let findings = findings.as_array().unwrap().len();
    assert!(findings > 0, "the demo has findings to show");

    let (dom, log) = run_chromium(&browser, &profile, &url, "--dump-dom", 1000);
    assert_eq!(
        attribute(&dom, "<body", "data-ready").as_deref(),
        Some("true"),
        "the viewer script did not finish:\n{log}"
    );
    assert_eq!(
        console_lines(&log),
        Vec::<&str>::new(),
        "the page wrote to the console (errors, warnings, blocked requests)"
    );
    let rendered = attribute(&dom, "id=\"graph\"", "data-rendered-nodes");
    assert_eq!(
        rendered,
        Some(workloads.len().to_string()),
        "workload nodes drawn"
    );
    let edges: usize = attribute(&dom, "id=\"graph\"", "data-rendered-edges")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(edges > 0, "connections drawn");
    assert_eq!(
        dom.matches("<tr class=\"finding ").count(),
        findings,
        "finding rows"
    );
    // The heat map has a row per namespace with endpoints, and the outside.
    let namespaces: BTreeSet<&str> = cluster
        .endpoints
        .iter()
        .map(|e| e.namespace.as_str())
        .collect();
    let heat_rows = dom
        .split("id=\"heatmap-table\"")
        .nth(1)
        .map(|t| {
            t.split("</table>")
                .next()
                .unwrap_or_default()
                .matches("<th scope=\"row\"")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(heat_rows, namespaces.len() + 1);

    // A workload's panel: what it may receive and send, and which policies decide.
    let (dom, log) = run_chromium(
        &browser,
        &profile,
        &format!("{url}#workload=shop/cart"),
        "--dump-dom",
        1000,
    );
    assert_eq!(console_lines(&log), Vec::<&str>::new());
    assert_eq!(
        attribute(&dom, "id=\"panel\"", "data-workload").as_deref(),
        Some("shop/cart")
    );
    let panel = dom
        .split("id=\"panel\"")
        .nth(1)
        .unwrap()
        .split("</aside>")
        .next()
        .unwrap();
    for expected in [
        "May receive from",
        "May send to",
        "shop/cart",
        "shop/frontend",
        "TCP 7070",
        "ingress[0]",
    ] {
        assert!(
            panel.contains(expected),
            "panel lacks {expected:?}: {panel}"
        );
    }

    // The screenshot of the whole page, kept as a CI artifact. (Tall enough
    // that nothing scrolls: headless Chromium paints only the first screen.)
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    std::fs::create_dir_all(&target).unwrap();
    let screenshot = target.join("report-screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &browser,
        &profile,
        &format!("{url}#workload=shop/frontend"),
        &format!("--screenshot={}", screenshot.display()),
        2000,
    );
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real picture"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
