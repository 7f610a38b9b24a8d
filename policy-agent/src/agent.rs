//! The agent process: sources and the HTTP server on a tokio runtime, and
//! one control thread that plans, applies and checks for drift.
//!
//! Planning and applying are synchronous and CPU-bound, so they run on
//! their own thread, fed by a channel: the sources never wait for nft, and a
//! burst of snapshots that arrives during an apply is coalesced into the
//! newest one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use policy_core::{Config, Diagnostic};
use policy_nft::runner::Nft;
use tracing::{debug, error, info, warn};

use crate::enforce::{Applied, Drift, DriftCheck, Enforcer};
use crate::http::{Health, serve};
use crate::kernel::{DryRun, Kernel, NftKernel};
use crate::metrics::{Metrics, Stage};
use crate::plan::{OnUnreadable, Planner};
use crate::source::{self, Inputs, ObjectChange, SourceEvent};

/// Where the cluster comes from.
#[derive(Clone, Debug)]
pub enum SourceChoice {
    /// A directory (or one file) of manifests.
    Directory(PathBuf),
    /// The Kubernetes API: a kubeconfig file, or (None) `KUBECONFIG`,
    /// `~/.kube/config` or the in-cluster service account, as `kubectl`
    /// finds them.
    Kubernetes {
        /// `--kubeconfig`.
        kubeconfig: Option<PathBuf>,
        /// `--context`: a kubeconfig context other than the current one.
        context: Option<String>,
    },
}

/// Everything `netpol agent` is told.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The node whose pods this agent enforces (`spec.nodeName`).
    pub node: String,
    /// The source.
    pub source: SourceChoice,
    /// Model semantics (ipBlock, hostNetwork, self traffic, family).
    pub config: Config,
    /// What to do with isolated pods whose policy became unreadable.
    pub on_unreadable: OnUnreadable,
    /// How often the kernel's table is compared with the committed state.
    pub check_interval: Duration,
    /// Quiet time before a burst of changes is acted on.
    pub debounce: Duration,
    /// Delete the table on exit (by default the rules stay in place).
    pub cleanup_on_exit: bool,
    /// Print transactions instead of applying them.
    pub dry_run: bool,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; None: nowhere.
    pub listen: Option<SocketAddr>,
    /// How to run nft.
    pub nft: Nft,
    /// Returns freed memory to the operating system; called after planning
    /// a snapshot (the initial sync, a directory reload), when the memory
    /// that loading and building took has just been freed, and after each
    /// drift check, off the event path. The agent does
    /// not know the process's allocator; the binary passes its collector
    /// (mimalloc's `mi_collect`). Without it an idle agent can keep
    /// hundreds of MiB it no longer uses until the allocator's own delay
    /// runs out on a later allocation.
    pub release_memory: Option<fn()>,
}

/// Why the agent stopped with an error.
#[derive(Debug)]
pub struct AgentError(pub String);

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AgentError {}

enum Control {
    Source(SourceEvent),
    /// The source stopped; the message says why.
    SourceEnded(Option<String>),
    Shutdown(&'static str),
}

/// Runs the agent until SIGTERM or SIGINT (or until the source ends).
pub fn run(options: AgentOptions) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError(format!("cannot start the runtime: {e}")))?;
    let metrics = Arc::new(Metrics::default());
    let stall_after = (options.check_interval * 3).max(Duration::from_secs(30));
    let health = Arc::new(Health::new(stall_after));
    let (control, inbox) = std::sync::mpsc::channel::<Control>();

    runtime.block_on(async {
        if let Some(address) = options.listen {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| AgentError(format!("cannot listen on {address}: {e}")))?;
            info!(%address, "serving /metrics, /healthz and /readyz");
            tokio::spawn(serve(listener, metrics.clone(), health.clone()));
        }
        start_source(&options, control.clone()).await?;
        start_signals(control.clone())?;
        Ok::<(), AgentError>(())
    })?;
    drop(control);

    let worker_metrics = metrics.clone();
    let worker_health = health.clone();
    let worker = std::thread::Builder::new()
        .name("netpol-control".into())
        .spawn(move || control_loop(options, inbox, &worker_metrics, &worker_health))
        .map_err(|e| AgentError(format!("cannot start the control thread: {e}")))?;
    let result = worker
        .join()
        .unwrap_or_else(|_| Err(AgentError("the control thread panicked".into())));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn start_source(options: &AgentOptions, control: Sender<Control>) -> Result<(), AgentError> {
    let (events, mut received) = tokio::sync::mpsc::channel::<SourceEvent>(16);
    match &options.source {
        SourceChoice::Directory(path) => {
            info!(path = %path.display(), "source: directory");
            let options = source::dir::DirSourceOptions {
                debounce: options.debounce,
                ..Default::default()
            };
            let control = control.clone();
            let path = path.clone();
            tokio::spawn(async move {
                source::dir::run(path, options, events).await;
                let _ = control.send(Control::SourceEnded(None));
            });
        }
        SourceChoice::Kubernetes {
            kubeconfig,
            context,
        } => {
            let target = source::kube::ClusterTarget {
                kubeconfig: kubeconfig.clone(),
                context: context.clone(),
                request_timeout: None,
            };
            let connection = source::kube::connect(&target)
                .await
                .map_err(|e| AgentError(e.to_string()))?;
            info!(cluster = %connection.describe(), "source: Kubernetes API");
            let client = connection.client;
            let options = source::kube::KubeSourceOptions {
                debounce: options.debounce,
                ..Default::default()
            };
            let control = control.clone();
            tokio::spawn(async move {
                let ended = source::kube::run(client, options, events).await;
                let _ = control.send(Control::SourceEnded(ended.err().map(|e| e.to_string())));
            });
        }
    }
    tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            if control.send(Control::Source(event)).is_err() {
                return;
            }
        }
    });
    Ok(())
}

fn start_signals(control: Sender<Control>) -> Result<(), AgentError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| AgentError(format!("cannot handle SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| AgentError(format!("cannot handle SIGINT: {e}")))?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        let _ = control.send(Control::Shutdown(name));
    });
    Ok(())
}

fn control_loop(
    options: AgentOptions,
    inbox: Receiver<Control>,
    metrics: &Metrics,
    health: &Health,
) -> Result<(), AgentError> {
    let kernel: Box<dyn Kernel> = if options.dry_run {
        Box::new(DryRun::default())
    } else {
        Box::new(NftKernel::new(options.nft.clone()))
    };
    let mut enforcer = Enforcer::new(kernel);
    let mut planner = Planner::new(options.node.clone(), options.config, options.on_unreadable);
    info!(
        node = %options.node,
        on_unreadable = %options.on_unreadable,
        dry_run = options.dry_run,
        "waiting for the source's initial sync; the kernel's current table stays in place until then"
    );
    let mut next_check = Instant::now() + options.check_interval;
    let outcome = loop {
        health.beat();
        let wait = next_check.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(wait) {
            Ok(Control::Source(event @ (SourceEvent::Snapshot(_) | SourceEvent::Changes(_)))) => {
                // Act on everything queued at once: only the newest snapshot
                // matters, and the changes after it, in order.
                let mut work = Work::default();
                work.add(event);
                let mut stop = None;
                while let Ok(message) = inbox.try_recv() {
                    match message {
                        Control::Source(SourceEvent::Error(message)) => {
                            source_error(metrics, &message)
                        }
                        Control::Source(event) => work.add(event),
                        other => {
                            stop = Some(other);
                            break;
                        }
                    }
                }
                let snapshot = work.snapshot.is_some();
                sync(&mut planner, &mut enforcer, work, metrics, health);
                if snapshot {
                    release_memory(&options);
                }
                match stop {
                    Some(Control::Shutdown(signal)) => break shutdown(signal),
                    Some(Control::SourceEnded(why)) => break source_ended(why),
                    _ => {}
                }
            }
            Ok(Control::Source(SourceEvent::Error(message))) => source_error(metrics, &message),
            Ok(Control::Shutdown(signal)) => break shutdown(signal),
            Ok(Control::SourceEnded(why)) => break source_ended(why),
            Err(RecvTimeoutError::Timeout) => {
                check_drift(&mut enforcer, metrics);
                // Off the event path: what changes freed since goes back too.
                release_memory(&options);
                next_check = Instant::now() + options.check_interval;
            }
            Err(RecvTimeoutError::Disconnected) => break source_ended(None),
        }
    };
    if options.cleanup_on_exit {
        match enforcer.remove() {
            Ok(()) => info!("--cleanup-on-exit: removed table inet netpol"),
            Err(e) => error!(error = %e, "--cleanup-on-exit: could not remove the table"),
        }
    } else {
        info!("leaving the rules in place (use --cleanup-on-exit to remove them)");
    }
    outcome
}

fn release_memory(options: &AgentOptions) {
    if let Some(release) = options.release_memory {
        let started = Instant::now();
        release();
        debug!(
            us = started.elapsed().as_micros() as u64,
            "returned freed memory"
        );
    }
}

fn shutdown(signal: &str) -> Result<(), AgentError> {
    info!(signal, "shutting down");
    Ok(())
}

fn source_ended(why: Option<String>) -> Result<(), AgentError> {
    let why = why.unwrap_or_else(|| "the source stopped".into());
    error!(error = %why, "source ended");
    Err(AgentError(why))
}

fn source_error(metrics: &Metrics, message: &str) {
    warn!(error = %message, "source error; enforcing the last applied ruleset");
    metrics.error(Stage::Source, 1);
}

fn describe(diagnostic: &Diagnostic) -> String {
    let mut text = String::new();
    if let Some(source) = &diagnostic.source {
        text.push_str(&format!("{source}: "));
    }
    if let Some(object) = &diagnostic.object {
        text.push_str(&format!("{object}: "));
    }
    if !diagnostic.field.is_empty() {
        text.push_str(&format!("{}: ", diagnostic.field));
    }
    text.push_str(&diagnostic.message);
    text
}

/// What the source sent since the agent last planned.
#[derive(Default)]
struct Work {
    /// The newest snapshot, if one came.
    snapshot: Option<Inputs>,
    /// The changes after it (or after the last plan), in order.
    changes: Vec<ObjectChange>,
}

impl Work {
    fn add(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Snapshot(inputs) => {
                self.snapshot = Some(inputs);
                self.changes.clear();
            }
            SourceEvent::Changes(changes) => self.changes.extend(changes),
            SourceEvent::Error(_) => {}
        }
    }
}

fn sync(
    planner: &mut Planner,
    enforcer: &mut Enforcer,
    work: Work,
    metrics: &Metrics,
    health: &Health,
) {
    let started = Instant::now();
    let planned = match work.snapshot {
        Some(inputs) if work.changes.is_empty() => planner.plan(inputs),
        Some(inputs) => {
            // The snapshot's own ruleset is superseded at once.
            if let Err(e) = planner.plan(inputs) {
                error!(error = %e, "cannot compile the snapshot");
                metrics.error(Stage::Compile, 1);
            }
            planner.plan_changes(work.changes)
        }
        None => planner.plan_changes(work.changes),
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            error!(error = %e, "cannot compile the snapshot; enforcing the last applied ruleset");
            metrics.error(Stage::Compile, 1);
            return;
        }
    };
    let planned_in = started.elapsed();
    match &plan.model_update {
        Some(update) => debug!(
            model_us = plan.model_time.as_micros() as u64,
            endpoints = update.endpoints,
            policies = update.policies,
            classes_added = update.classes_added,
            classes_emptied = update.classes_emptied,
            rebuilt = ?update.rebuilt,
            "model updated"
        ),
        None => debug!(model_us = plan.model_time.as_micros() as u64, "model built"),
    }
    for diagnostic in &plan.errors {
        warn!(error = %describe(diagnostic), "invalid input");
    }
    if !plan.errors.is_empty() {
        metrics.error(Stage::Input, plan.errors.len());
    }
    let names = |objects: &[policy_core::diagnostic::ObjectRef]| {
        objects
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !plan.kept_last_good.is_empty() {
        warn!(objects = %names(&plan.kept_last_good), "unreadable objects: enforcing their last good version");
    }
    if !plan.failed_closed.is_empty() {
        warn!(policies = %names(&plan.failed_closed), "unreadable policies: enforced fail-closed (isolating, allowing nothing)");
    }
    if !plan.shared_addresses.is_empty() {
        let addresses: Vec<String> = (plan.shared_addresses.iter())
            .map(ToString::to_string)
            .collect();
        warn!(addresses = %addresses.join(", "), "peer addresses shared by pods with different permissions: allowed only what all of those pods are allowed");
    }
    if !plan.without_address.is_empty() {
        info!(pods = %plan.without_address.join(", "), "local pods without an IP address are not enforced yet");
    }
    metrics.planned(
        plan.errors.len(),
        plan.kept_last_good.len() + plan.failed_closed.len(),
        plan.without_address.len(),
        plan.counts.endpoints,
        plan.counts.policies,
    );
    let chains = plan.ruleset.group_count();
    let elements = plan.ruleset.element_count();
    let result = enforcer.enforce(plan.ruleset);
    log_generation_notice(enforcer);
    match result {
        Ok(Applied::Unchanged) => {
            metrics.synced(chains, elements);
            health.set_ready();
            info!(
                planned_ms = planned_in.as_millis() as u64,
                files_parsed = plan.files_parsed,
                "nothing to change on this node"
            );
        }
        Ok(Applied::Transaction {
            kind,
            elements: changed,
            bytes,
            latency,
            fell_back,
            repaired,
        }) => {
            if let Some(why) = fell_back {
                warn!(error = %why, "element update refused; replaced the whole table instead");
                metrics.error(Stage::Apply, 1);
            }
            if let Some(drift) = repaired {
                log_drift(
                    &drift,
                    "replaced the whole table instead of an element update",
                );
                if seen(&drift) {
                    metrics.drift_repaired();
                }
            }
            metrics.applied(kind, latency, changed);
            metrics.synced(chains, elements);
            health.set_ready();
            info!(
                kind = kind.as_str(),
                elements = changed,
                bytes,
                chains,
                ruleset_elements = elements,
                planned_ms = planned_in.as_millis() as u64,
                files_parsed = plan.files_parsed,
                apply_ms = latency.as_secs_f64() * 1e3,
                endpoints = plan.counts.endpoints,
                policies = plan.counts.policies,
                admin_policies = plan.counts.admin_policies,
                "applied"
            );
        }
        Err(e) => {
            error!(error = %e, "nft refused the transaction; the kernel keeps the previous ruleset");
            metrics.error(Stage::Apply, 1);
        }
    }
}

fn log_generation_notice(enforcer: &mut Enforcer) {
    if let Some(why) = enforcer.take_generation_notice() {
        warn!(
            reason = %why,
            "cannot read the nftables generation: every drift check lists and compares the whole table"
        );
    }
}

fn log_drift(drift: &Drift, action: &str) {
    match drift {
        Drift::TableMissing => warn!("drift: table inet netpol was deleted; {action}"),
        Drift::TableChanged {
            added_objects,
            removed_objects,
            example,
        } => warn!(
            added_objects,
            removed_objects,
            example = %example,
            "drift: table inet netpol was changed; {action}"
        ),
        // Not drift seen: another transaction came before the reference
        // listing was renewed (expected on nodes where other tables change
        // often), so the table could not be compared.
        Drift::Unverifiable => info!(
            "another nftables transaction came before table inet netpol was listed after the last update; {action} to be sure"
        ),
    }
}

/// True if `drift` is drift seen in the table (not a replace made to be
/// sure).
fn seen(drift: &Drift) -> bool {
    !matches!(drift, Drift::Unverifiable)
}

fn check_drift(enforcer: &mut Enforcer, metrics: &Metrics) {
    let result = enforcer.check_drift();
    log_generation_notice(enforcer);
    match result {
        Ok(DriftCheck::Idle) => {}
        Ok(DriftCheck::Skipped) => metrics.drift_checked(false),
        Ok(DriftCheck::Clean | DriftCheck::Renewed) => metrics.drift_checked(true),
        Ok(DriftCheck::Repaired(drift)) => {
            metrics.drift_checked(true);
            log_drift(&drift, "restored it");
            if seen(&drift) {
                metrics.drift_repaired();
            }
        }
        Err(e) => {
            error!(error = %e, "drift check failed");
            metrics.error(Stage::DriftCheck, 1);
        }
    }
}
