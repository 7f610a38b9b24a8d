//! A progress bar on standard error for long reads, and only where a person
//! is watching.
//!
//! It appears when standard error is a terminal and the work has taken
//! longer than [`SHOW_AFTER`]: short runs print nothing, so snapshots and
//! scripts see the same output as before. It never appears on a pipe or a
//! file, with `--quiet`, under CI (`CI` set, as every CI service sets it),
//! or with `TERM=dumb`. It is cleared before any result is printed.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before the bar is shown.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);

/// The bar's redraw interval while shown.
const TICK: Duration = Duration::from_millis(100);

/// Progress of one command. Cheap to create and to clone (clones share one
/// bar); a no-op when disabled. The bar is cleared by [`Progress::finish`],
/// or when the last clone is dropped (an early error return).
#[derive(Clone)]
pub struct Progress(Arc<Shared>);

struct Shared {
    /// None when progress is disabled.
    bar: Option<ProgressBar>,
    /// Set when the work is over, so a late timer does not show the bar.
    done: Mutex<bool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress {
    /// Progress on standard error, if a person is watching it.
    pub fn new(quiet: bool) -> Progress {
        if quiet || !wanted_on_stderr() {
            return Progress::disabled();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        let progress = Progress(Arc::new(Shared {
            bar: Some(bar),
            done: Mutex::new(false),
        }));
        // The timer is detached and holds only a weak reference: if the work
        // ends first, it finds the bar done (or gone) and draws nothing.
        let weak = Arc::downgrade(&progress.0);
        let _ = std::thread::Builder::new()
            .name("netpol-progress".into())
            .spawn(move || {
                std::thread::sleep(SHOW_AFTER);
                let Some(shared) = weak.upgrade() else { return };
                let done = shared.done.lock().unwrap_or_else(|e| e.into_inner());
                if let (false, Some(bar)) = (*done, &shared.bar) {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(TICK);
                }
            });
        progress
    }

    /// Progress that never shows.
    pub fn disabled() -> Progress {
        Progress(Arc::new(Shared {
            bar: None,
            done: Mutex::new(true),
        }))
    }

    /// A step measured in bytes (reading, then parsing manifests): out of
    /// `total` when it is known, else a running count.
    pub fn bytes(&self, what: &str, total: Option<u64>) {
        let Some(bar) = &self.0.bar else { return };
        match total {
            Some(total) => {
                bar.set_length(total);
                bar.set_style(style(
                    "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({elapsed})",
                ));
            }
            None => {
                bar.unset_length();
                bar.set_style(style("{spinner} {msg} {bytes} ({elapsed})"));
            }
        }
        bar.set_position(0);
        bar.set_message(what.to_string());
    }

    /// `bytes` more were read or parsed.
    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0.bar {
            bar.inc(bytes);
        }
    }

    /// Reading a live cluster: a running count of objects.
    pub fn reading_cluster(&self, what: &str) {
        let Some(bar) = &self.0.bar else { return };
        bar.unset_length();
        bar.set_position(0);
        bar.set_style(style("{spinner} {msg}: {human_pos} objects ({elapsed})"));
        bar.set_message(format!("reading {what}"));
    }

    /// `objects` more were listed.
    pub fn listed(&self, objects: usize) {
        if let Some(bar) = &self.0.bar {
            bar.inc(objects as u64);
        }
    }

    /// A step without a measure of its own, such as "building model".
    pub fn step(&self, what: &str) {
        let Some(bar) = &self.0.bar else { return };
        bar.unset_length();
        bar.set_style(style("{spinner} {msg} ({elapsed})"));
        bar.set_message(what.to_string());
    }

    /// Runs `print` with the bar hidden, for messages printed mid-way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.0.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// The work is over: clears the bar (before results are printed).
    pub fn finish(&self) {
        let mut done = self.0.done.lock().unwrap_or_else(|e| e.into_inner());
        *done = true;
        if let Some(bar) = &self.0.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

/// Whether standard error is a terminal a person watches.
fn wanted_on_stderr() -> bool {
    if !std::io::stderr().is_terminal() {
        return false;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0") {
        return false;
    }
    std::env::var("TERM").map_or(true, |term| term != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_progress_accepts_every_call() {
        let progress = Progress::disabled();
        progress.bytes("reading manifests", Some(10));
        progress.advance(5);
        progress.reading_cluster("the cluster");
        progress.listed(3);
        progress.step("building model");
        progress.finish();
        assert!(progress.0.bar.is_none());
    }

    #[test]
    fn quiet_disables_progress_even_on_a_terminal() {
        assert!(Progress::new(true).0.bar.is_none());
    }
}
