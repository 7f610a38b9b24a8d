//! netpol in the ecosystem's habits: the kubectl plugin (through the real
//! `kubectl` binary), shell completions, man pages, and a progress bar that
//! appears on a terminal and nowhere else.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kube_fake::FakeApiServer;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpol-eco-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kubectl` from PATH; with NETPOL_REQUIRE_E2E=1 its absence fails the test.
fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("NETPOL_REQUIRE_E2E").as_deref(),
            Ok("1"),
            "kubectl is not on PATH; the plugin test needs the real binary"
        );
        eprintln!("note: skipping the kubectl plugin test: kubectl is not on PATH");
    }
    found
}

#[test]
fn kubectl_runs_netpol_as_a_plugin() {
    let Some(kubectl) = kubectl() else { return };
    let dir = scratch("plugin");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_netpol"), bin.join("kubectl-netpol")).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let run = |args: &[&str], kubeconfig: Option<&Path>| -> Output {
        let mut command = Command::new(&kubectl);
        command
            .args(args)
            .current_dir(repo())
            .env("PATH", &path)
            .env("HOME", &dir)
            .env_remove("KUBERNETES_SERVICE_HOST");
        match kubeconfig {
            Some(file) => command.env("KUBECONFIG", file),
            None => command.env_remove("KUBECONFIG"),
        };
        command.output().expect("kubectl runs")
    };

    // kubectl finds the plugin.
    let list = run(&["plugin", "list"], None);
    assert!(
        text(&list.stdout).contains("kubectl-netpol"),
        "{}",
        text(&list.stderr)
    );

    // Its help speaks of `kubectl netpol`.
    let help = run(&["netpol", "query", "--help"], None);
    assert_eq!(help.status.code(), Some(0), "{}", text(&help.stderr));
    let help = text(&help.stdout);
    assert!(help.contains("Usage: kubectl netpol query"), "{help}");
    assert!(
        help.contains("\n  kubectl netpol query manifests/"),
        "{help}"
    );
    assert!(!help.contains("\n  netpol "), "{help}");

    // On manifests, the same answer as netpol itself.
    let args = [
        "query",
        "examples/demo",
        "--from",
        "shop/frontend",
        "--to",
        "shop/cart",
        "--port",
        "grpc",
    ];
    let plugin = run(&[&["netpol"][..], &args].concat(), None);
    let direct = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(plugin.status.code(), Some(0), "{}", text(&plugin.stderr));
    assert_eq!(plugin.stdout, direct.stdout);

    // With no PATH, the plugin reads the current context's cluster, as
    // kubectl's own commands do.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(FakeApiServer::start());
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("fake")).unwrap();
    let matrix = run(&["netpol", "matrix", "--port", "5432"], Some(&kubeconfig));
    assert_eq!(matrix.status.code(), Some(0), "{}", text(&matrix.stderr));
    assert!(
        text(&matrix.stdout).contains("shop/db-0"),
        "{}",
        text(&matrix.stdout)
    );
    assert!(server.requests().iter().any(|r| r.is_list_start()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_generate_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef netpol"),
        ("fish", "complete -c netpol"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_netpol"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shell}: {}",
            text(&output.stderr)
        );
        let script = text(&output.stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        // Subcommands and their flags are in the script.
        for word in ["query", "matrix", "cluster", "ip-block", "kubeconfig"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    // bash accepts its script.
    let output = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let mut bash = Command::new("bash")
        .args(["-n"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash");
    bash.stdin
        .take()
        .unwrap()
        .write_all(&output.stdout)
        .unwrap();
    assert!(bash.wait().unwrap().success(), "bash -n rejects the script");

    let unknown = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn man_pages_generate_from_the_command_definitions() {
    let output = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .arg("man")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let page = text(&output.stdout);
    assert!(page.contains(".TH netpol 1"));
    assert!(page.contains("netpol\\-query"), "subcommands are listed");

    let dir = scratch("man");
    let output = Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(["man", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for command in [
        "", "-query", "-matrix", "-lint", "-explain", "-diff", "-compile", "-agent", "-rules",
    ] {
        let path = dir.join(format!("netpol{command}.1"));
        let page =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            page.contains(&format!(".TH netpol{command} 1")),
            "{}",
            path.display()
        );
    }
    let query = std::fs::read_to_string(dir.join("netpol-query.1")).unwrap();
    assert!(
        query.contains("\\-\\-cluster") && query.contains("\\-\\-from"),
        "flags are documented"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pseudo-terminal: the child's end and ours.
struct Pty {
    ours: std::fs::File,
    theirs: OwnedFd,
}

fn open_pty() -> Pty {
    let (mut ours, mut theirs) = (0, 0);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors, which we then own.
    let result = unsafe {
        libc::openpty(
            &mut ours,
            &mut theirs,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(result, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nobody else.
    unsafe {
        Pty {
            ours: std::fs::File::from_raw_fd(ours),
            theirs: OwnedFd::from_raw_fd(theirs),
        }
    }
}

/// Runs `netpol matrix -` with standard error on a terminal (or a pipe),
/// feeding the demo on standard input only after `delay`, as a slow
/// `helm template | netpol matrix -` would. Returns stdout and what
/// appeared on standard error.
fn matrix_from_slow_stdin(
    terminal: bool,
    extra: &[&str],
    env: &[(&str, &str)],
    delay: Duration,
) -> (String, String) {
    let manifests: String = ["namespaces.yaml", "workloads.yaml", "policies.yaml"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(repo().join("examples/demo").join(f)).ok())
        .collect::<Vec<_>>()
        .join("\n---\n");
    assert!(!manifests.is_empty(), "examples/demo has manifests");
    let pty = terminal.then(open_pty);
    let mut command = Command::new(env!("CARGO_BIN_EXE_netpol"));
    command
        .args(["matrix", "-", "--port", "80"])
        .args(extra)
        .env_remove("CI")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    match &pty {
        Some(pty) => command.stderr(Stdio::from(pty.theirs.try_clone().unwrap())),
        None => command.stderr(Stdio::piped()),
    };
    let mut child = command.spawn().expect("netpol runs");
    // The command holds a copy of the terminal's child end; until every copy
    // is closed, reading ours never ends.
    drop(command);
    let mut pty = pty.map(|pty| {
        drop(pty.theirs);
        pty.ours
    });
    // Read the terminal as the child writes it, so it never blocks.
    let reader = pty.take().map(|mut ours| {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut chunk = [0u8; 4096];
            // EIO once the child has exited and closed its end.
            while let Ok(n) = ours.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&chunk[..n]);
            }
            seen
        })
    });
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(delay);
    stdin.write_all(manifests.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = match reader {
        Some(reader) => text(&reader.join().unwrap()),
        None => text(&output.stderr),
    };
    (text(&output.stdout), stderr)
}

#[test]
fn a_progress_bar_shows_on_a_terminal_after_half_a_second_and_never_elsewhere() {
    let slow = Duration::from_millis(1500);
    let (table, terminal) = matrix_from_slow_stdin(true, &[], &[], slow);
    assert!(
        terminal.contains("reading manifests"),
        "no progress on the terminal: {terminal:?}"
    );
    // It is cleared: the last thing on the terminal erases the line.
    assert!(terminal.contains("\u{1b}["), "{terminal:?}");
    assert!(
        table.contains("shop/frontend"),
        "results still go to stdout"
    );

    // A fast run shows nothing, even on a terminal.
    let (_, fast) = matrix_from_slow_stdin(true, &[], &[], Duration::ZERO);
    assert!(!fast.contains("reading manifests"), "{fast:?}");

    // Never on a pipe, with --quiet, or in CI.
    let (piped_table, piped) = matrix_from_slow_stdin(false, &[], &[], slow);
    assert_eq!(piped, "", "stderr on a pipe: {piped:?}");
    assert_eq!(piped_table, table);
    let (_, quiet) = matrix_from_slow_stdin(true, &["--quiet"], &[], slow);
    assert!(!quiet.contains("reading"), "{quiet:?}");
    let (_, ci) = matrix_from_slow_stdin(true, &[], &[("CI", "true")], slow);
    assert!(!ci.contains("reading"), "{ci:?}");
}
