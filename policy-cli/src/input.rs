//! Reading manifests from files, directories, standard input and live
//! clusters, and reporting what the loader said.

use std::io::{IsTerminal, Read, Write};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use policy_agent::source::kube::{self as live, ClusterSnapshot, ClusterTarget, ListScope};
use policy_core::diagnostic::SourceLocation;
use policy_core::yaml::Location;
use policy_core::{
    AddressFamily, Config, Diagnostic, DiagnosticKind, HostNetworkMode, IpBlockMode, Loaded,
    Loader, Model, SelfTraffic, ServiceProfile, Severity,
};

use crate::progress::Progress;

/// Inputs and model options shared by every command that reads a cluster.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Manifest files or directories (searched recursively for .yaml, .yml and
    /// .json), or `-` for standard input. With --cluster they are applied on
    /// top of the live cluster, as `kubectl apply` would.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub model: ModelArgs,

    /// No progress bar (it only ever shows on a terminal, after half a second).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Reading a running cluster, with kubectl's flags.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Live cluster")]
pub struct ClusterArgs {
    /// Read the running cluster of the current kubeconfig context (lists
    /// namespaces, pods, workloads, services and network policies).
    #[arg(long)]
    pub cluster: bool,

    /// The kubeconfig context to read (implies --cluster).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig file (implies --cluster; default: $KUBECONFIG, then
    /// ~/.kube/config, then the in-cluster service account).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Read only this namespace's objects (repeatable; implies --cluster).
    /// Default: every namespace, since policies reach across namespaces.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,

    /// Read every namespace (the default; implies --cluster).
    #[arg(short = 'A', long, conflicts_with = "namespaces")]
    pub all_namespaces: bool,

    /// The longest one API request may take (`30s`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
}

impl ClusterArgs {
    /// Whether a flag asks for the live cluster.
    pub fn requested(&self) -> bool {
        self.cluster
            || self.context.is_some()
            || self.kubeconfig.is_some()
            || !self.namespaces.is_empty()
            || self.all_namespaces
    }

    fn target(&self) -> ClusterTarget {
        ClusterTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            request_timeout: self.request_timeout,
        }
    }

    fn scope(&self) -> ListScope {
        if self.namespaces.is_empty() {
            ListScope::AllNamespaces
        } else {
            let mut names = self.namespaces.clone();
            names.sort();
            names.dedup();
            ListScope::Namespaces(names)
        }
    }
}

/// `250ms`, `5s`, `2m`: a positive duration with a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number with a unit (ms, s, m)"))?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(format!("`{text}`: unknown unit (use ms, s or m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("`{text}`: must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The model's implementation-defined choices, and verbosity.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Whether ipBlock peers match pod IPs: `match` (upstream e2e, Calico)
    /// or `ignore` (Cilium; the API's intent).
    #[arg(long, value_name = "MODE", default_value_t = IpBlockMode::Match)]
    pub ip_block: IpBlockMode,

    /// How hostNetwork pods are treated: `node` (node traffic; never
    /// selected or isolated) or `pod` (ordinary pods).
    #[arg(long, value_name = "MODE", default_value_t = HostNetworkMode::Node)]
    pub host_network: HostNetworkMode,

    /// Whether a pod reaching itself is `allow`ed always or `evaluate`d
    /// like any other pair.
    #[arg(long, value_name = "MODE", default_value_t = SelfTraffic::Allow)]
    pub self_traffic: SelfTraffic,

    /// Which addresses of dual-stack pods ipBlocks are matched against:
    /// `any`, or only `ipv4` / `ipv6` (exact for connections of that family).
    #[arg(long, value_name = "FAMILY", default_value_t = AddressFamily::Any)]
    pub family: AddressFamily,

    /// Where the policy filter sits relative to the service proxy's source
    /// NAT, for outside traffic through NodePorts and load balancers with
    /// externalTrafficPolicy: Cluster: `netpol` (netpol agent or Calico
    /// iptables with kube-proxy: a backend on the receiving node sees the
    /// client, one on another node sees that node), `snat-before-policy`
    /// (every backend sees the receiving node; Antrea) or `client-preserved`
    /// (every backend sees the client; Calico eBPF, Cilium DSR).
    #[arg(long, value_name = "PROFILE", default_value_t = ServiceProfile::Netpol)]
    pub profile: ServiceProfile,

    /// Say what was read and what was skipped.
    #[arg(short, long)]
    pub verbose: bool,
}

impl ModelArgs {
    /// The model configuration the flags describe.
    pub fn config(&self) -> Config {
        Config {
            ip_block: self.ip_block,
            host_network: self.host_network,
            self_traffic: self.self_traffic,
            address_family: self.family,
            service_profile: self.profile,
        }
    }
}

/// An input that could not be read at all (exit code 2).
#[derive(Debug)]
pub struct InputError(pub String);

/// Finds the manifest files under each path, in a stable order.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let metadata =
        std::fs::metadata(path).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(&directory)
            .map_err(|e| InputError(format!("{}: {e}", directory.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| InputError(format!("{}: {e}", directory.display())))?;
            let entry_path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| InputError(format!("{}: {e}", entry_path.display())))?;
            if file_type.is_dir() || (file_type.is_symlink() && entry_path.is_dir()) {
                pending.push(entry_path);
            } else if is_manifest(&entry_path) {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

/// One source text and the name diagnostics use for it.
pub struct Source {
    /// The path as given (or `-`).
    pub name: String,
    /// Its contents.
    pub text: String,
}

/// Reads every source named by `paths`. Standard input may be named once.
///
/// A path that does not exist is a usage error. A file that cannot be read
/// or is not UTF-8 text becomes an error diagnostic, and the others are still read.
pub fn read_sources(
    paths: &[String],
    progress: &Progress,
) -> Result<(Vec<Source>, Vec<Diagnostic>), InputError> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    let mut read_stdin = false;
    let unreadable = |name: &str, why: String| {
        Diagnostic::new(Severity::Error, DiagnosticKind::Syntax, why).with_source(Some(
            SourceLocation {
                file: name.into(),
                location: Location::default(),
            },
        ))
    };
    for path in paths {
        if path == "-" {
            if read_stdin {
                return Err(InputError(
                    "`-` (standard input) can be given only once".into(),
                ));
            }
            read_stdin = true;
            let mut bytes = Vec::new();
            match read_counting(&mut std::io::stdin().lock(), &mut bytes, progress) {
                Err(error) => problems.push(unreadable(
                    "-",
                    format!("cannot read standard input: {error}"),
                )),
                Ok(_) => match String::from_utf8(bytes) {
                    Ok(text) => sources.push(Source {
                        name: "-".into(),
                        text,
                    }),
                    Err(_) => {
                        problems.push(unreadable("-", "standard input is not UTF-8 text".into()))
                    }
                },
            }
            continue;
        }
        let files = manifest_files(Path::new(path))?;
        if files.is_empty() {
            return Err(InputError(format!(
                "{path}: no .yaml, .yml or .json files found"
            )));
        }
        for file in files {
            let name = file.display().to_string();
            let read = std::fs::read(&file);
            if let Ok(bytes) = &read {
                progress.advance(bytes.len() as u64);
            }
            match read {
                Err(error) => {
                    problems.push(unreadable(&name, format!("cannot read the file: {error}")))
                }
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => sources.push(Source { name, text }),
                    Err(_) => problems.push(unreadable(&name, "the file is not UTF-8 text".into())),
                },
            }
        }
    }
    Ok((sources, problems))
}

/// A live cluster, as read once.
pub struct LiveCluster {
    /// Everything listed.
    pub snapshot: ClusterSnapshot,
    /// `context kind-dev (https://…)`, for messages.
    pub description: String,
    /// What was read.
    pub scope: ListScope,
}

/// Reads the live cluster the flags name, with progress. Errors say which
/// API calls failed, why, and what to do.
pub fn read_cluster(args: &ClusterArgs, progress: &Progress) -> Result<LiveCluster, InputError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| InputError(format!("cannot start the Kubernetes client: {e}")))?;
    let scope = args.scope();
    runtime.block_on(async {
        let connection = live::connect(&args.target())
            .await
            .map_err(|e| InputError(e.to_string()))?;
        let description = connection.describe();
        progress.reading_cluster(&format!("{scope} of {description}"));
        let on_page = |_kind: live::ResourceKind, items: usize| progress.listed(items);
        let snapshot = live::list_cluster(&connection, &scope, &on_page)
            .await
            .map_err(|error| {
                let mut message = format!("cannot read the cluster ({description})");
                for failure in &error.failures {
                    message.push_str(&format!("\n  {failure}\n  = help: {}", failure.help()));
                }
                InputError(message)
            })?;
        Ok(LiveCluster {
            snapshot,
            description,
            scope,
        })
    })
}

/// Reads `reader` to the end in chunks, counting bytes for the progress bar
/// (standard input can be slow: `helm template | netpol lint -`).
fn read_counting(
    reader: &mut impl Read,
    bytes: &mut Vec<u8>,
    progress: &Progress,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(bytes.len()),
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                progress.advance(n as u64);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// What was read: the loaded cluster, the source texts, and how many
/// files could not be read at all.
pub struct Input {
    /// The loader's result (file-level read problems first among its diagnostics).
    pub loaded: Loaded,
    /// The source texts, for snippets.
    pub sources: Vec<Source>,
    /// Files that could not be read or were not UTF-8.
    pub unreadable: usize,
    /// The live cluster's description and counts, when one was read.
    pub live: Option<LiveSummary>,
    /// The progress bar, still running: call `finish` before printing results.
    pub progress: Progress,
}

/// What a live read contributed, for `--verbose` and notes.
pub struct LiveSummary {
    /// `context kind-dev (https://…)`.
    pub description: String,
    /// What was read.
    pub scope: ListScope,
    /// Objects listed, by kind.
    pub counts: Vec<(String, usize)>,
}

/// Reads and loads what the arguments name (manifests, a live cluster, or
/// manifests on top of a live cluster) without printing diagnostics.
pub fn read_and_load(args: &InputArgs) -> Result<Input, InputError> {
    let progress = Progress::new(args.quiet);
    let live_requested =
        args.cluster.requested() || (args.paths.is_empty() && crate::invoked_as_kubectl_plugin());
    if !live_requested && args.paths.is_empty() {
        return Err(InputError(
            "nothing to read: give manifest files or directories (PATH, or - for standard \
             input), or --cluster to read the running cluster"
                .into(),
        ));
    }
    let cluster = if live_requested {
        Some(read_cluster(&args.cluster, &progress)?)
    } else {
        None
    };
    load_inputs(&args.paths, cluster.as_ref(), progress)
}

/// Loads manifests (none is fine when `cluster` is given) on top of an
/// already read live cluster.
pub fn load_inputs(
    paths: &[String],
    cluster: Option<&LiveCluster>,
    progress: Progress,
) -> Result<Input, InputError> {
    let (sources, problems) = if paths.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        progress.bytes("reading manifests", None);
        read_sources(paths, &progress)?
    };
    let total: usize = sources.iter().map(|s| s.text.len()).sum();
    progress.bytes("parsing manifests", Some(total as u64));
    let mut loader = Loader::new();
    if let Some(cluster) = cluster {
        progress.step("reading the cluster's objects");
        for object in &cluster.snapshot.objects {
            loader.add_live(object.clone());
        }
    }
    for source in &sources {
        loader.load_str(&source.name, &source.text);
        progress.advance(source.text.len() as u64);
    }
    let mut loaded = loader.finish();
    let unreadable = problems.len();
    loaded.diagnostics.splice(0..0, problems);
    let live = cluster.map(|cluster| LiveSummary {
        description: cluster.description.clone(),
        scope: cluster.scope.clone(),
        counts: cluster
            .snapshot
            .counts
            .iter()
            .map(|(kind, count)| (kind.plural().to_string(), *count))
            .collect(),
    });
    if let Some(cluster) = cluster {
        progress.suspend(|| print_live_notes(cluster));
    }
    Ok(Input {
        loaded,
        sources,
        unreadable,
        live,
        progress,
    })
}

/// What the user should know about a partial read, on standard error.
fn print_live_notes(cluster: &LiveCluster) {
    let mut err = std::io::stderr().lock();
    for note in &cluster.snapshot.notes {
        let _ = writeln!(err, "warning: {note}");
    }
    if let ListScope::Namespaces(names) = &cluster.scope {
        let _ = writeln!(
            err,
            "note: read {} only: pods in other namespaces are unknown, so peers that select them match nothing here",
            if names.len() == 1 {
                format!("namespace {}", names[0])
            } else {
                format!("namespaces {}", names.join(", "))
            }
        );
    }
}

/// Reads and loads the inputs, prints diagnostics (and the summary with
/// --verbose), and builds the model. Also says whether the input had errors
/// (which makes the exit status 2). The progress bar is cleared.
///
/// The model is never dropped: a command builds one and exits, and freeing
/// a 100,000-pod model object by object takes seconds the user would wait
/// for (BENCHMARKS.md, "Scale").
pub fn load_model(args: &InputArgs) -> Result<(ManuallyDrop<Model>, bool), InputError> {
    let input = read_and_load(args)?;
    let progress = input.progress.clone();
    let built = build_model(input, &args.model);
    progress.finish();
    Ok(built)
}

/// Prints the input's diagnostics and builds the model. The progress bar
/// keeps running: the caller clears it before printing results.
pub fn build_model(input: Input, options: &ModelArgs) -> (ManuallyDrop<Model>, bool) {
    input.progress.suspend(|| report(&input, options.verbose));
    input.progress.step("building model");
    let has_errors = input.loaded.has_errors();
    let Input {
        loaded, progress, ..
    } = input;
    let model = Model::new(loaded.cluster, options.config());
    progress.suspend(|| print_diagnostics(&model.diagnostics()));
    (ManuallyDrop::new(model), has_errors)
}

/// Prints diagnostics (and, when verbose, a summary) to standard error.
pub fn report(input: &Input, verbose: bool) {
    print_diagnostics(&input.loaded.diagnostics);
    if verbose {
        print_summary(input);
    }
}

/// Prints diagnostics to standard error, `file:line:col: severity: message`,
/// in colour on a terminal (unless NO_COLOR is set).
pub fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let stderr = std::io::stderr();
    let color = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = stderr.lock();
    for diagnostic in diagnostics {
        let severity = diagnostic.severity.as_str();
        let severity = if color {
            match diagnostic.severity {
                Severity::Error => format!("\x1b[1;31m{severity}\x1b[0m"),
                Severity::Warning => format!("\x1b[1;33m{severity}\x1b[0m"),
                Severity::Info => format!("\x1b[1;36m{severity}\x1b[0m"),
            }
        } else {
            severity.to_string()
        };
        let location = diagnostic
            .source
            .as_ref()
            .map(|s| format!("{s}: "))
            .unwrap_or_default();
        let mut context = Vec::new();
        if let Some(object) = &diagnostic.object {
            context.push(object.to_string());
        }
        if !diagnostic.field.is_empty() {
            context.push(format!("field {}", diagnostic.field));
        }
        let context = if context.is_empty() {
            String::new()
        } else {
            format!(" [{}]", context.join(", "))
        };
        let _ = writeln!(out, "{location}{severity}: {}{context}", diagnostic.message);
        if let Some(help) = &diagnostic.help {
            let _ = writeln!(out, "  = help: {help}");
        }
    }
}

/// Prints what was read and skipped, for `--verbose`.
pub fn print_summary(input: &Input) {
    let (loaded, sources) = (&input.loaded, &input.sources);
    let mut out = std::io::stderr().lock();
    if let Some(live) = &input.live {
        let counts: Vec<String> = live
            .counts
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let _ = writeln!(
            out,
            "read {} of {}: {}",
            live.scope,
            live.description,
            counts.join(", ")
        );
    }
    {
        let cluster = &loaded.cluster;
        let counts = cluster.endpoint_counts();
        let endpoints: Vec<String> = counts
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let created = cluster.namespaces.iter().filter(|n| !n.declared).count();
        let _ = writeln!(
            out,
            "read {} source(s): {} namespace(s) ({created} created because referenced), endpoints: {}, {} service(s), {} network polic{}",
            sources.len(),
            cluster.namespaces.len(),
            if endpoints.is_empty() {
                "none".to_string()
            } else {
                endpoints.join(", ")
            },
            cluster.services.len(),
            cluster.policies.len(),
            if cluster.policies.len() == 1 {
                "y"
            } else {
                "ies"
            },
        );
        if loaded.skipped.is_empty() {
            let _ = writeln!(out, "skipped nothing");
        } else {
            let total: usize = loaded.skipped.values().sum();
            let list: Vec<String> = loaded
                .skipped
                .iter()
                .map(|(what, n)| format!("{n} {what}"))
                .collect();
            let _ = writeln!(out, "skipped {total} document(s): {}", list.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_the_rest() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn any_cluster_flag_asks_for_the_live_cluster() {
        assert!(!ClusterArgs::default().requested());
        for args in [
            ClusterArgs {
                cluster: true,
                ..Default::default()
            },
            ClusterArgs {
                context: Some("dev".into()),
                ..Default::default()
            },
            ClusterArgs {
                kubeconfig: Some("k".into()),
                ..Default::default()
            },
            ClusterArgs {
                namespaces: vec!["shop".into()],
                ..Default::default()
            },
            ClusterArgs {
                all_namespaces: true,
                ..Default::default()
            },
        ] {
            assert!(args.requested(), "{args:?}");
        }
    }

    #[test]
    fn namespaces_are_read_once_each_in_order() {
        let args = ClusterArgs {
            namespaces: vec!["b".into(), "a".into(), "b".into()],
            ..Default::default()
        };
        assert_eq!(
            args.scope(),
            ListScope::Namespaces(vec!["a".into(), "b".into()])
        );
        assert_eq!(ClusterArgs::default().scope(), ListScope::AllNamespaces);
    }
}
