//! Keeps the kernel equal to the ruleset the agent last committed.
//!
//! The [`Enforcer`] holds the committed [`NodeRuleset`] in memory. A new
//! ruleset becomes one transaction: element updates when only the contents
//! of maps and sets changed, a full table replace when the structure
//! changed (or nothing was committed yet, as right after a restart: the
//! replace is atomic, so adopting the previous agent's table never leaves a
//! moment without rules). A failed transaction changes nothing in the
//! kernel, and the committed state stays what it was.
//!
//! Drift: after each apply the enforcer keeps `nft list table`'s output;
//! [`Enforcer::check_drift`] lists again and, if the table is gone or
//! differs, replaces it with the committed ruleset.

use std::time::{Duration, Instant};

use policy_nft::NodeRuleset;
use policy_nft::diff::{self, FlatRuleset, Update};

use crate::kernel::{Kernel, Transaction, TransactionKind};

/// What [`Enforcer::enforce`] did.
#[derive(Clone, Debug)]
pub enum Applied {
    /// The new ruleset equals the committed one; nothing was applied.
    Unchanged,
    /// A transaction was applied.
    Transaction {
        /// Full or incremental.
        kind: TransactionKind,
        /// Elements in the transaction.
        elements: usize,
        /// Bytes of the applied JSON document.
        bytes: usize,
        /// Time to build and apply the transaction (not the listing after).
        latency: Duration,
        /// Set when an incremental transaction was refused and a full
        /// replace applied instead: why the first failed.
        fell_back: Option<String>,
    },
}

/// Drift found and repaired by [`Enforcer::check_drift`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// The table was gone.
    TableMissing,
    /// The table differed from what was applied.
    TableChanged {
        /// Listing objects (JSON items) only in the kernel.
        added_objects: usize,
        /// Listing objects missing from the kernel.
        removed_objects: usize,
        /// The first differing object, for the log.
        example: String,
    },
}

/// See the module documentation.
pub struct Enforcer {
    kernel: Box<dyn Kernel>,
    committed: Option<NodeRuleset>,
    /// `committed`, flattened: the next diff needs it, and flattening a
    /// large ruleset is a good part of the agent's work per update.
    committed_flat: Option<FlatRuleset>,
    /// The kernel's listing right after the last apply.
    expected_listing: Option<String>,
}

impl Enforcer {
    /// An enforcer that has committed nothing yet.
    pub fn new(kernel: Box<dyn Kernel>) -> Self {
        Enforcer {
            kernel,
            committed: None,
            committed_flat: None,
            expected_listing: None,
        }
    }

    /// The ruleset last applied, if any.
    pub fn committed(&self) -> Option<&NodeRuleset> {
        self.committed.as_ref()
    }

    /// Makes the kernel enforce `next`.
    pub fn enforce(&mut self, mut next: NodeRuleset) -> Result<Applied, String> {
        let started = Instant::now();
        if let Some(committed) = &self.committed {
            diff::stabilize_names(committed, &mut next);
        }
        let next_flat = diff::flatten(&next);
        let update = match &self.committed_flat {
            None => Update::Replace,
            Some(committed) => diff::diff_flat(committed, &next_flat),
        };
        let transaction = match update {
            Update::Unchanged => return Ok(Applied::Unchanged),
            Update::Elements(delta) => Transaction {
                kind: TransactionKind::Incremental,
                text: diff::render_text(&delta),
                json: diff::render_json(&delta),
                elements: delta.len(),
            },
            Update::Replace => full_replace(&next),
        };
        let mut fell_back = None;
        let applied = match self.kernel.apply(&transaction) {
            Ok(()) => transaction,
            Err(error) if transaction.kind == TransactionKind::Incremental => {
                // The kernel is not in the committed state (someone changed
                // it since the last drift check): start from scratch.
                fell_back = Some(error);
                let full = full_replace(&next);
                self.kernel.apply(&full)?;
                full
            }
            Err(error) => return Err(error),
        };
        let latency = started.elapsed();
        self.committed = Some(next);
        self.committed_flat = Some(next_flat);
        self.expected_listing = if self.kernel.is_real() {
            self.kernel.list()?
        } else {
            None
        };
        Ok(Applied::Transaction {
            kind: applied.kind,
            elements: applied.elements,
            bytes: applied.json.len(),
            latency,
            fell_back,
        })
    }

    /// Compares the kernel's table with what was applied; restores the
    /// committed ruleset if they differ. `Ok(None)`: no drift (or nothing
    /// committed yet).
    pub fn check_drift(&mut self) -> Result<Option<Drift>, String> {
        let Some(committed) = &self.committed else {
            return Ok(None);
        };
        if !self.kernel.is_real() {
            return Ok(None);
        }
        let listing = self.kernel.list()?;
        let drift = match (&listing, &self.expected_listing) {
            (None, _) => Drift::TableMissing,
            (Some(actual), Some(expected)) if actual == expected => return Ok(None),
            (Some(actual), expected) => line_difference(actual, expected.as_deref().unwrap_or("")),
        };
        let full = full_replace(committed);
        self.kernel.apply(&full)?;
        self.expected_listing = self.kernel.list()?;
        Ok(Some(drift))
    }

    /// Deletes the table (`--cleanup-on-exit`).
    pub fn remove(&mut self) -> Result<(), String> {
        self.kernel.remove()?;
        self.committed = None;
        self.committed_flat = None;
        self.expected_listing = None;
        Ok(())
    }
}

/// The transaction that replaces the whole table with `ruleset`.
pub fn full_replace(ruleset: &NodeRuleset) -> Transaction {
    Transaction {
        kind: TransactionKind::Full,
        text: policy_nft::text::render(ruleset),
        json: policy_nft::json::render_string(ruleset),
        elements: ruleset.element_count(),
    }
}

/// The objects of a listing: the items of `nft -j`'s array, or lines.
fn listing_items(listing: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(listing) {
        Ok(serde_json::Value::Object(mut document)) => match document.remove("nftables") {
            Some(serde_json::Value::Array(items)) => {
                items.iter().map(|item| item.to_string()).collect()
            }
            _ => vec![listing.to_string()],
        },
        _ => listing.lines().map(|l| l.trim().to_string()).collect(),
    }
}

fn line_difference(actual: &str, expected: &str) -> Drift {
    use std::collections::BTreeMap;
    let (actual, expected) = (listing_items(actual), listing_items(expected));
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for item in &actual {
        *counts.entry(item).or_default() += 1;
    }
    for item in &expected {
        *counts.entry(item).or_default() -= 1;
    }
    let added_objects = counts
        .values()
        .filter(|c| **c > 0)
        .map(|c| *c as usize)
        .sum();
    let removed_objects = counts
        .values()
        .filter(|c| **c < 0)
        .map(|c| (-*c) as usize)
        .sum();
    let shorten = |item: &str| {
        let mut item = item.to_string();
        if item.len() > 200 {
            item.truncate(item.floor_char_boundary(200));
            item.push('…');
        }
        item
    };
    let example = match counts.iter().find(|(_, c)| **c != 0) {
        Some((item, c)) if *c > 0 => format!("not applied by netpol: {}", shorten(item)),
        Some((item, _)) => format!("missing from the kernel: {}", shorten(item)),
        None => "the listings differ in order only".to_string(),
    };
    Drift::TableChanged {
        added_objects,
        removed_objects,
        example,
    }
}
