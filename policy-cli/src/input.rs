//! Reading manifests from files, directories and standard input, and
//! reporting what the loader said.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use policy_core::diagnostic::SourceLocation;
use policy_core::yaml::Location;
use policy_core::{
    AddressFamily, Config, Diagnostic, DiagnosticKind, HostNetworkMode, IpBlockMode, Loaded,
    Loader, Model, SelfTraffic, Severity,
};

/// Inputs and model options shared by every command that reads a cluster.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Manifest files or directories (searched recursively for .yaml, .yml and
    /// .json), or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,

    #[command(flatten)]
    pub model: ModelArgs,
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
pub fn read_sources(paths: &[String]) -> Result<(Vec<Source>, Vec<Diagnostic>), InputError> {
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
            match std::io::stdin().read_to_end(&mut bytes) {
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
            match std::fs::read(&file) {
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

/// What was read: the loaded cluster, the source texts, and how many
/// files could not be read at all.
pub struct Input {
    /// The loader's result (file-level read problems first among its diagnostics).
    pub loaded: Loaded,
    /// The source texts, for snippets.
    pub sources: Vec<Source>,
    /// Files that could not be read or were not UTF-8.
    pub unreadable: usize,
}

/// Reads and loads the inputs without printing anything.
pub fn read_and_load(paths: &[String]) -> Result<Input, InputError> {
    let (sources, problems) = read_sources(paths)?;
    let mut loader = Loader::new();
    for source in &sources {
        loader.load_str(&source.name, &source.text);
    }
    let mut loaded = loader.finish();
    let unreadable = problems.len();
    loaded.diagnostics.splice(0..0, problems);
    Ok(Input {
        loaded,
        sources,
        unreadable,
    })
}

/// Reads and loads the inputs, printing diagnostics to standard error.
pub fn load(paths: &[String], options: &ModelArgs) -> Result<(Loaded, Vec<Source>), InputError> {
    let input = read_and_load(paths)?;
    report(&input.loaded, &input.sources, options.verbose);
    Ok((input.loaded, input.sources))
}

/// Reads and loads the inputs, builds the model, and prints every diagnostic.
/// Also says whether the input had errors (which makes the exit status 2).
pub fn load_model(args: &InputArgs) -> Result<(Model, bool), InputError> {
    load_model_from(&args.paths, &args.model)
}

/// [`load_model`] for paths and options given separately.
pub fn load_model_from(paths: &[String], options: &ModelArgs) -> Result<(Model, bool), InputError> {
    let (loaded, _) = load(paths, options)?;
    let has_errors = loaded.has_errors();
    let model = Model::new(loaded.cluster, options.config());
    print_diagnostics(&model.diagnostics());
    Ok((model, has_errors))
}

/// Prints diagnostics (and, when verbose, a summary) to standard error.
pub fn report(loaded: &Loaded, sources: &[Source], verbose: bool) {
    print_diagnostics(&loaded.diagnostics);
    if verbose {
        print_summary(loaded, sources);
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
pub fn print_summary(loaded: &Loaded, sources: &[Source]) {
    let mut out = std::io::stderr().lock();
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
