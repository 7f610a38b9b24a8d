//! The agent's metrics, in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::kernel::TransactionKind;

/// Upper bounds (seconds) of the apply latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Where an error happened (the `stage` label of `netpol_agent_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The source could not be read (watch errors, unreadable files).
    Source,
    /// The input has errors (invalid policies, syntax errors).
    Input,
    /// The model could not be compiled.
    Compile,
    /// nft refused a transaction.
    Apply,
    /// The drift check could not list the table.
    DriftCheck,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Source => "source",
            Stage::Input => "input",
            Stage::Compile => "compile",
            Stage::Apply => "apply",
            Stage::DriftCheck => "drift_check",
        }
    }
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Values {
    applies: BTreeMap<TransactionKind, u64>,
    apply_latency: BTreeMap<TransactionKind, Histogram>,
    last_transaction_elements: u64,
    ruleset_elements: u64,
    ruleset_chains: u64,
    errors: BTreeMap<Stage, u64>,
    input_errors: u64,
    repaired_objects: u64,
    unenforceable_pods: u64,
    drift_repairs: u64,
    drift_checks_skipped: u64,
    drift_checks_full: u64,
    last_sync: Option<f64>,
    snapshots: u64,
    endpoints: u64,
    policies: u64,
}

/// Shared between the control loop (writes) and the HTTP server (reads).
#[derive(Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Values) -> T) -> T {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut values)
    }

    /// A transaction was applied.
    pub fn applied(&self, kind: TransactionKind, latency: Duration, elements: usize) {
        self.with(|v| {
            *v.applies.entry(kind).or_default() += 1;
            v.last_transaction_elements = elements as u64;
            let histogram = v.apply_latency.entry(kind).or_default();
            let seconds = latency.as_secs_f64();
            histogram.count += 1;
            histogram.sum += seconds;
            for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
        });
    }

    /// The kernel now enforces a ruleset of this size, computed from the
    /// latest snapshot.
    pub fn synced(&self, chains: usize, elements: usize) {
        self.with(|v| {
            v.ruleset_chains = chains as u64;
            v.ruleset_elements = elements as u64;
            v.last_sync = Some(now_seconds());
        });
    }

    /// A snapshot was planned.
    pub fn planned(
        &self,
        input_errors: usize,
        repaired: usize,
        unenforceable: usize,
        endpoints: usize,
        policies: usize,
    ) {
        self.with(|v| {
            v.snapshots += 1;
            v.input_errors = input_errors as u64;
            v.repaired_objects = repaired as u64;
            v.unenforceable_pods = unenforceable as u64;
            v.endpoints = endpoints as u64;
            v.policies = policies as u64;
        });
    }

    /// Counts `count` errors at `stage`.
    pub fn error(&self, stage: Stage, count: usize) {
        self.with(|v| *v.errors.entry(stage).or_default() += count as u64);
    }

    /// The table was restored after drift.
    pub fn drift_repaired(&self) {
        self.with(|v| v.drift_repairs += 1);
    }

    /// A drift check ran: `listed` if it listed and compared the table
    /// (the generation moved or cannot be read), else it was skipped (the
    /// generation had not moved).
    pub fn drift_checked(&self, listed: bool) {
        self.with(|v| {
            if listed {
                v.drift_checks_full += 1;
            } else {
                v.drift_checks_skipped += 1;
            }
        });
    }

    /// Seconds since the last successful sync, if there was one.
    pub fn seconds_since_sync(&self) -> Option<f64> {
        self.with(|v| v.last_sync.map(|t| now_seconds() - t))
    }

    /// The current values in the Prometheus text format.
    pub fn render(&self) -> String {
        self.with(|v| {
            let mut out = String::new();
            let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (labels, value) in samples {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            };
            let kinds = [TransactionKind::Full, TransactionKind::Incremental];
            metric(
                "netpol_agent_applies_total",
                "counter",
                "nft transactions applied, by kind (full table replace or element update).",
                &kinds
                    .iter()
                    .map(|k| {
                        (
                            format!("{{kind=\"{}\"}}", k.as_str()),
                            v.applies.get(k).copied().unwrap_or(0) as f64,
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            let mut latency = Vec::new();
            for kind in kinds {
                let empty = Histogram::default();
                let histogram = v.apply_latency.get(&kind).unwrap_or(&empty);
                for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                    latency.push((
                        format!("_bucket{{kind=\"{}\",le=\"{bound}\"}}", kind.as_str()),
                        count as f64,
                    ));
                }
                latency.push((
                    format!("_bucket{{kind=\"{}\",le=\"+Inf\"}}", kind.as_str()),
                    histogram.count as f64,
                ));
                latency.push((
                    format!("_sum{{kind=\"{}\"}}", kind.as_str()),
                    histogram.sum,
                ));
                latency.push((
                    format!("_count{{kind=\"{}\"}}", kind.as_str()),
                    histogram.count as f64,
                ));
            }
            metric(
                "netpol_agent_apply_duration_seconds",
                "histogram",
                "Time to build and apply one nft transaction.",
                &latency,
            );
            // Metrics with one unlabelled sample: (name, type, help, value).
            // Metrics with one unlabelled sample.
            for (name, kind, help, value) in [
                    (
                        "netpol_agent_last_transaction_elements",
                        "gauge",
                        "Set and map elements in the last applied transaction.",
                        v.last_transaction_elements,
                    ),
                    (
                        "netpol_agent_ruleset_elements",
                        "gauge",
                        "Set and map elements of the enforced ruleset.",
                        v.ruleset_elements,
                    ),
                    (
                        "netpol_agent_ruleset_chains",
                        "gauge",
                        "Peer group chains of the enforced ruleset.",
                        v.ruleset_chains,
                    ),
            ] {
                metric(name, kind, help, &[(String::new(), value as f64)]);
            }
            let stages = [
                Stage::Source,
                Stage::Input,
                Stage::Compile,
                Stage::Apply,
                Stage::DriftCheck,
            ];
            metric(
                "netpol_agent_errors_total",
                "counter",
                "Errors, by stage: source (reading), input (invalid objects, counted per snapshot), compile, apply, drift_check.",
                &stages
                    .iter()
                    .map(|s| {
                        (
                            format!("{{stage=\"{}\"}}", s.as_str()),
                            v.errors.get(s).copied().unwrap_or(0) as f64,
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            metric(
                "netpol_agent_drift_checks_total",
                "counter",
                "Drift checks, by kind: skipped (the nftables generation had not moved, nothing listed) or full (the table listed and compared).",
                &[
                    ("{kind=\"skipped\"}".to_string(), v.drift_checks_skipped as f64),
                    ("{kind=\"full\"}".to_string(), v.drift_checks_full as f64),
                ],
            );
            for (name, kind, help, value) in [
                    (
                        "netpol_agent_input_errors",
                        "gauge",
                        "Error diagnostics in the latest snapshot.",
                        v.input_errors,
                    ),
                    (
                        "netpol_agent_repaired_objects",
                        "gauge",
                        "Unreadable objects enforced from their last good version (or fail-closed) in the latest snapshot.",
                        v.repaired_objects,
                    ),
                    (
                        "netpol_agent_unenforceable_pods",
                        "gauge",
                        "Local pods without an IP address, which cannot be enforced yet.",
                        v.unenforceable_pods,
                    ),
                    (
                        "netpol_agent_drift_repairs_total",
                        "counter",
                        "Times the table was restored after someone deleted or changed it.",
                        v.drift_repairs,
                    ),
                    (
                        "netpol_agent_snapshots_total",
                        "counter",
                        "Source snapshots and batches of changes planned.",
                        v.snapshots,
                    ),
                    (
                        "netpol_agent_model_endpoints",
                        "gauge",
                        "Pods (and workloads standing in for pods) in the latest model.",
                        v.endpoints,
                    ),
                    (
                        "netpol_agent_model_policies",
                        "gauge",
                        "NetworkPolicies in the latest model.",
                        v.policies,
                    ),
            ] {
                metric(name, kind, help, &[(String::new(), value as f64)]);
            }
            if let Some(last_sync) = v.last_sync {
                metric(
                    "netpol_agent_last_sync_timestamp_seconds",
                    "gauge",
                    "Unix time when the kernel last matched the latest snapshot.",
                    &[(String::new(), last_sync)],
                );
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_prometheus_text_with_counts_and_histogram() {
        let metrics = Metrics::default();
        metrics.applied(TransactionKind::Full, Duration::from_millis(30), 100);
        metrics.applied(TransactionKind::Incremental, Duration::from_millis(3), 2);
        metrics.error(Stage::Input, 2);
        metrics.synced(4, 100);
        metrics.drift_checked(false);
        metrics.drift_checked(false);
        metrics.drift_checked(true);
        let text = metrics.render();
        assert!(text.contains("netpol_agent_drift_checks_total{kind=\"skipped\"} 2\n"));
        assert!(text.contains("netpol_agent_drift_checks_total{kind=\"full\"} 1\n"));
        assert!(text.contains("netpol_agent_applies_total{kind=\"full\"} 1\n"));
        assert!(text.contains("netpol_agent_applies_total{kind=\"incremental\"} 1\n"));
        assert!(text.contains(
            "netpol_agent_apply_duration_seconds_bucket{kind=\"full\",le=\"0.025\"} 0\n"
        ));
        assert!(
            text.contains(
                "netpol_agent_apply_duration_seconds_bucket{kind=\"full\",le=\"0.05\"} 1\n"
            )
        );
        assert!(text.contains(
            "netpol_agent_apply_duration_seconds_bucket{kind=\"incremental\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains("netpol_agent_errors_total{stage=\"input\"} 2\n"));
        assert!(text.contains("netpol_agent_ruleset_elements 100\n"));
        assert!(text.contains("netpol_agent_last_sync_timestamp_seconds "));
        // Every sample line belongs to a declared metric.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                declared.iter().any(|name| line.starts_with(name)),
                "undeclared sample: {line}"
            );
        }
    }
}
