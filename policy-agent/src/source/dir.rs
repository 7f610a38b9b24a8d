//! The directory source: a folder of manifests, reloaded when it changes.
//!
//! For trying netpol without a cluster, and for tests. Every `*.yaml`,
//! `*.yml` and `*.json` file under the directory (recursively; names starting
//! with `.` are skipped, which also skips the `..data` directory of a
//! mounted ConfigMap while following its symlinked files) is one input file.
//!
//! The source polls file metadata (path, size, modification time), which
//! costs a `stat` per file and works on every filesystem, including
//! ConfigMap volumes whose files change by a symlink swap. After a change it
//! waits until the directory has been quiet for the debounce time, so a file
//! being written is read once it is complete, reads the files whose metadata
//! changed, and sends the whole directory if any text changed. Unchanged
//! files are sent as the same shared text as before, so the planner parses
//! only the files that changed. A file that cannot be read is reported as
//! an error and its last readable text is used meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::Sender;

use super::{Inputs, SourceEvent, SourceFile};

/// How the directory is watched.
#[derive(Clone, Copy, Debug)]
pub struct DirSourceOptions {
    /// How often file metadata is checked.
    pub poll_interval: Duration,
    /// How long the directory must be quiet before it is read.
    pub debounce: Duration,
}

impl Default for DirSourceOptions {
    fn default() -> Self {
        DirSourceOptions {
            poll_interval: Duration::from_millis(200),
            debounce: Duration::from_millis(100),
        }
    }
}

/// `(size, modification time)` of each file.
type Fingerprint = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The manifest files under `root` with their metadata, and problems met.
fn scan(root: &Path) -> (Fingerprint, Vec<String>) {
    let mut files = Fingerprint::new();
    let mut problems = Vec::new();
    let metadata = match std::fs::metadata(root) {
        Ok(metadata) => metadata,
        Err(error) => {
            problems.push(format!("{}: {error}", root.display()));
            return (files, problems);
        }
    };
    if metadata.is_file() {
        files.insert(
            root.to_path_buf(),
            (metadata.len(), metadata.modified().ok()),
        );
        return (files, problems);
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                problems.push(format!("{}: {error}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if is_hidden(&path) {
                continue;
            }
            // Follows symlinks, as ConfigMap volumes need.
            match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_dir() => pending.push(path),
                Ok(metadata) if metadata.is_file() && is_manifest(&path) => {
                    files.insert(path, (metadata.len(), metadata.modified().ok()));
                }
                Ok(_) => {}
                Err(error) => problems.push(format!("{}: {error}", path.display())),
            }
        }
    }
    (files, problems)
}

/// The texts of the files in `fingerprint`. Files whose fingerprint is
/// unchanged since `previous` keep their previous text (the same `Arc`, so
/// the planner knows them unchanged without comparing); the others are
/// read, and an unreadable one keeps its previous text too.
fn read_changed(
    fingerprint: &Fingerprint,
    previous_fingerprint: &Fingerprint,
    previous: &BTreeMap<PathBuf, Arc<str>>,
    problems: &mut Vec<String>,
) -> BTreeMap<PathBuf, Arc<str>> {
    let mut texts = BTreeMap::new();
    for (path, stamp) in fingerprint {
        let known = previous.get(path);
        if let Some(text) = known
            && previous_fingerprint.get(path) == Some(stamp)
        {
            texts.insert(path.clone(), text.clone());
            continue;
        }
        match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(text)) => {
                // An unchanged text keeps its `Arc`.
                let text = match known {
                    Some(known) if **known == *text => known.clone(),
                    _ => Arc::from(text),
                };
                texts.insert(path.clone(), text);
            }
            Ok(Err(_)) => {
                problems.push(format!("{}: not UTF-8 text", path.display()));
                if let Some(text) = known {
                    texts.insert(path.clone(), text.clone());
                }
            }
            Err(error) => {
                problems.push(format!("{}: {error}", path.display()));
                if let Some(text) = known {
                    texts.insert(path.clone(), text.clone());
                }
            }
        }
    }
    texts
}

/// Watches `root` (a directory or one file) and sends a snapshot at start
/// and after every change. Returns when the receiver is gone.
pub async fn run(root: PathBuf, options: DirSourceOptions, events: Sender<SourceEvent>) {
    let mut texts: Option<BTreeMap<PathBuf, Arc<str>>> = None;
    let mut fingerprint: Option<Fingerprint> = None;
    let mut reported: Vec<String> = Vec::new();
    loop {
        let scan_root = root.clone();
        let Ok((mut current, mut problems)) =
            tokio::task::spawn_blocking(move || scan(&scan_root)).await
        else {
            return;
        };
        // A directory that cannot be listed says nothing about which files
        // exist: send nothing (the agent keeps enforcing what it has) until
        // it can be listed again.
        if problems.is_empty() && fingerprint.as_ref() != Some(&current) {
            // Wait for quiet: a file may be half written.
            loop {
                tokio::time::sleep(options.debounce).await;
                let scan_root = root.clone();
                let Ok((again, again_problems)) =
                    tokio::task::spawn_blocking(move || scan(&scan_root)).await
                else {
                    return;
                };
                let quiet = again == current;
                (current, problems) = (again, again_problems);
                if quiet || !problems.is_empty() {
                    break;
                }
            }
            if !problems.is_empty() {
                report(&events, &mut reported, problems).await;
                tokio::time::sleep(options.poll_interval).await;
                continue;
            }
            let previous = texts.clone().unwrap_or_default();
            let previous_fingerprint = fingerprint.clone().unwrap_or_default();
            let to_read = current.clone();
            let Ok((read, read_problems)) = tokio::task::spawn_blocking(move || {
                let mut problems = Vec::new();
                let read = read_changed(&to_read, &previous_fingerprint, &previous, &mut problems);
                (read, problems)
            })
            .await
            else {
                return;
            };
            problems.extend(read_problems);
            fingerprint = Some(current);
            if texts.as_ref() != Some(&read) {
                let files = read
                    .iter()
                    .map(|(path, text)| SourceFile {
                        path: path.display().to_string(),
                        text: text.clone(),
                    })
                    .collect();
                texts = Some(read);
                if events
                    .send(SourceEvent::Snapshot(Inputs::Files(files)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if !report(&events, &mut reported, problems).await {
            return;
        }
        tokio::time::sleep(options.poll_interval).await;
    }
}

/// Sends each problem once per distinct set of problems, not on every poll.
/// False if the receiver is gone.
async fn report(
    events: &Sender<SourceEvent>,
    reported: &mut Vec<String>,
    problems: Vec<String>,
) -> bool {
    if problems != *reported {
        for problem in &problems {
            if events
                .send(SourceEvent::Error(problem.clone()))
                .await
                .is_err()
            {
                return false;
            }
        }
        *reported = problems;
    }
    true
}
