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
//! Drift: the enforcer keeps a *reference*, `nft list table`'s output at a
//! moment the table was known to hold the committed ruleset, and the
//! *verified generation*: an nftables ruleset generation
//! ([`Kernel::generation`]: the kernel changes it at every committed
//! transaction, in any table) at which the table is known to hold the
//! committed ruleset. [`Enforcer::check_drift`] reads the generation; if it
//! is still the verified one, nothing was committed since and there is
//! nothing to do. If it moved (someone's transaction, perhaps on another
//! table), it lists again and compares with the reference; if the table is
//! gone or differs, it replaces it with the committed ruleset. Without a
//! generation (no netlink), every check lists and compares.
//!
//! Listing a large table costs far more than updating it (about 0.5 s for
//! a node's 43,000 elements at 100,000 pods, against a few milliseconds
//! for an element update), so an apply does not list. When the generation
//! was verified just before the apply and moved by exactly one with it,
//! the apply was the only transaction in between: the new generation is
//! verified, and the reference is *stale* (it shows an earlier ruleset).
//! The next check whose generation is still that one renews the reference
//! (one listing per check interval at most, however many updates came in
//! between). Should another transaction come first, the reference can no
//! longer tell drift from the agent's own updates, so that check replaces
//! the table whole ([`Drift::Unverifiable`]) — never trusting an unchecked
//! table. When the generation shows another transaction during an apply,
//! the enforcer lists at once, as it does without a generation.
//!
//! An element update builds on the table in the kernel. So when the
//! generation moved since it was verified, [`Enforcer::enforce`] compares
//! first, and if the table drifted (or cannot be compared), replaces it
//! whole instead.

use std::time::{Duration, Instant};

use policy_nft::NodeRuleset;
use policy_nft::diff::{self, FlatRuleset, Update};

use crate::kernel::{Generation, Kernel, Transaction, TransactionKind};

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
        /// Set when the table had drifted since the last check, so a full
        /// replace was applied instead of an element update.
        repaired: Option<Drift>,
    },
}

/// What [`Enforcer::check_drift`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriftCheck {
    /// Nothing committed yet, or a kernel that only pretends: nothing to
    /// check.
    Idle,
    /// The generation had not moved since the table was last listed: the
    /// table is as applied. Nothing was listed.
    Skipped,
    /// The table was listed and compared (the generation moved, or cannot
    /// be read) and is as applied.
    Clean,
    /// The table was listed, found gone or changed, and restored.
    Repaired(Drift),
    /// The generation showed that only the agent's own updates were
    /// committed since the table was last listed: it was listed again to
    /// renew the reference.
    Renewed,
}

impl DriftCheck {
    /// True if the table was listed and compared.
    pub fn listed(&self) -> bool {
        matches!(
            self,
            DriftCheck::Clean | DriftCheck::Repaired(_) | DriftCheck::Renewed
        )
    }
}

/// Whether the kernel's generation could be read, last time it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GenerationState {
    Unknown,
    Available,
    Unavailable,
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
    /// Another nftables transaction was committed after the agent's own
    /// update and before the reference listing was renewed: drift cannot
    /// be told from the update, so the table was replaced whole.
    Unverifiable,
}

/// See the module documentation.
pub struct Enforcer {
    kernel: Box<dyn Kernel>,
    committed: Option<NodeRuleset>,
    /// `committed`, flattened: the next diff needs it, and flattening a
    /// large ruleset is a good part of the agent's work per update.
    committed_flat: Option<FlatRuleset>,
    /// The reference: the kernel's listing at a moment the table held the
    /// committed ruleset, or an earlier one when `reference_stale`.
    expected_listing: Option<String>,
    /// The reference shows an earlier ruleset: the agent's own element
    /// updates were applied since, without listing.
    reference_stale: bool,
    /// A generation at which the table is known to hold the committed
    /// ruleset. While the kernel's generation is still this, nothing was
    /// committed since. None: unknown; the next check lists.
    verified_generation: Option<u32>,
    generation_state: GenerationState,
    /// Why the generation became unavailable, until taken by
    /// [`Enforcer::take_generation_notice`].
    generation_notice: Option<String>,
}

impl Enforcer {
    /// An enforcer that has committed nothing yet.
    pub fn new(kernel: Box<dyn Kernel>) -> Self {
        Enforcer {
            kernel,
            committed: None,
            committed_flat: None,
            expected_listing: None,
            reference_stale: false,
            verified_generation: None,
            generation_state: GenerationState::Unknown,
            generation_notice: None,
        }
    }

    /// Why drift checks fall back to listing the table every time: set
    /// once when the generation becomes unavailable (again only if it came
    /// back in between). For a log line.
    pub fn take_generation_notice(&mut self) -> Option<String> {
        self.generation_notice.take()
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
        if let Update::Unchanged = update {
            return Ok(Applied::Unchanged);
        }
        let before = if self.kernel.is_real() {
            self.read_generation()
        } else {
            None
        };
        let mut repaired = None;
        let transaction = match update {
            Update::Unchanged => unreachable!("returned above"),
            Update::Elements(delta) => match self.drift_before_update(before)? {
                None => Transaction {
                    kind: TransactionKind::Incremental,
                    text: diff::render_text(&delta),
                    json: diff::render_json(&delta),
                    elements: delta.len(),
                },
                Some(drift) => {
                    repaired = Some(drift);
                    full_replace(&next)
                }
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
        self.after_apply(before, applied.kind == TransactionKind::Full)?;
        Ok(Applied::Transaction {
            kind: applied.kind,
            elements: applied.elements,
            bytes: applied.json.len(),
            latency,
            fell_back,
            repaired,
        })
    }

    /// After a transaction committed the new ruleset: verifies the new
    /// generation without listing when the transaction was the only one
    /// since `before` (and the table held the committed ruleset then, or
    /// the transaction replaced it whole); else lists at once.
    fn after_apply(&mut self, before: Option<u32>, replaced_whole: bool) -> Result<(), String> {
        if !self.kernel.is_real() {
            self.expected_listing = None;
            self.reference_stale = false;
            self.verified_generation = None;
            return Ok(());
        }
        let held_before =
            replaced_whole || (before.is_some() && before == self.verified_generation);
        let after = self.read_generation();
        match (before, after) {
            (Some(before), Some(after)) if held_before && after == before.wrapping_add(1) => {
                self.verified_generation = Some(after);
                self.reference_stale = true;
                Ok(())
            }
            _ => self.record_listing(),
        }
    }

    /// The kernel's generation, if it can be read.
    fn read_generation(&mut self) -> Option<u32> {
        match self.kernel.generation() {
            Generation::Id(id) => {
                self.generation_state = GenerationState::Available;
                Some(id)
            }
            Generation::Unavailable(why) => {
                if self.generation_state != GenerationState::Unavailable {
                    self.generation_state = GenerationState::Unavailable;
                    self.generation_notice = Some(why);
                }
                None
            }
        }
    }

    /// True if no transaction was committed since the generation was
    /// verified: the table holds the committed ruleset. False if one was,
    /// or if unknown.
    fn unchanged_since_verified(&mut self) -> bool {
        let Some(verified) = self.verified_generation else {
            return false;
        };
        self.read_generation() == Some(verified)
    }

    /// Keeps the table's listing (and the generation it was listed at) as
    /// the reference for drift checks, right after an apply.
    fn record_listing(&mut self) -> Result<(), String> {
        self.verified_generation = None;
        self.reference_stale = false;
        if !self.kernel.is_real() {
            self.expected_listing = None;
            return Ok(());
        }
        // Read before listing: a transaction committed after this read,
        // even during the listing, moves the generation away from it.
        let generation = self.read_generation();
        self.expected_listing = self.kernel.list()?;
        self.verified_generation = generation;
        Ok(())
    }

    /// Lists the table and compares it with the reference (which must not
    /// be stale). Unchanged: verified at the generation read before listing.
    fn compare(&mut self) -> Result<Option<Drift>, String> {
        let generation = self.read_generation();
        let listing = self.kernel.list()?;
        let drift = match (&listing, &self.expected_listing) {
            (None, _) => Some(Drift::TableMissing),
            (Some(actual), Some(expected)) if actual == expected => None,
            (Some(actual), expected) => {
                Some(line_difference(actual, expected.as_deref().unwrap_or("")))
            }
        };
        if drift.is_none() {
            self.verified_generation = generation;
        }
        Ok(drift)
    }

    /// Before an element update (`before`: the generation now): if the
    /// generation moved since it was verified, the table may have drifted,
    /// and the update would build on the drift. Compares then, or, with a
    /// stale reference, reports that it cannot. Without a generation, does
    /// nothing (the periodic check lists; listing before every update too
    /// would double its cost).
    fn drift_before_update(&mut self, before: Option<u32>) -> Result<Option<Drift>, String> {
        if !self.kernel.is_real() || self.generation_state != GenerationState::Available {
            return Ok(None);
        }
        if before.is_some() && before == self.verified_generation {
            return Ok(None);
        }
        if self.reference_stale {
            return Ok(Some(Drift::Unverifiable));
        }
        self.compare()
    }

    /// Checks that the kernel's table is as applied; restores the committed
    /// ruleset if it is not. Costs one netlink round trip when no nftables
    /// transaction was committed since the last check (and none of the
    /// agent's own since the one before).
    pub fn check_drift(&mut self) -> Result<DriftCheck, String> {
        if self.committed.is_none() || !self.kernel.is_real() {
            return Ok(DriftCheck::Idle);
        }
        if self.unchanged_since_verified() {
            if !self.reference_stale {
                return Ok(DriftCheck::Skipped);
            }
            // Only the agent's own updates since the last listing: renew
            // the reference, if nothing is committed while listing.
            let verified = self.verified_generation;
            let listing = self.kernel.list()?;
            if self.read_generation() == verified {
                self.expected_listing = listing;
                self.reference_stale = false;
                return Ok(DriftCheck::Renewed);
            }
            // Something was committed while listing: as below.
        }
        let drift = if self.reference_stale {
            Drift::Unverifiable
        } else {
            match self.compare()? {
                None => return Ok(DriftCheck::Clean),
                Some(drift) => drift,
            }
        };
        let before = self.read_generation();
        let full = full_replace(self.committed.as_ref().expect("checked above"));
        self.kernel.apply(&full)?;
        self.after_apply(before, true)?;
        Ok(DriftCheck::Repaired(drift))
    }

    /// Deletes the table (`--cleanup-on-exit`).
    pub fn remove(&mut self) -> Result<(), String> {
        self.kernel.remove()?;
        self.committed = None;
        self.committed_flat = None;
        self.expected_listing = None;
        self.reference_stale = false;
        self.verified_generation = None;
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use policy_core::Config;

    use super::*;
    use crate::plan::tests::files;
    use crate::plan::{OnUnreadable, Planner};

    /// The kernel's side of [`FakeKernel`], shared with the test.
    #[derive(Debug, Default)]
    struct Table {
        /// The "listing": applied documents, concatenated.
        listing: Option<String>,
        /// The generation; None: unavailable.
        generation: Option<u32>,
        lists: usize,
        applied: Vec<TransactionKind>,
    }

    impl Table {
        /// Someone else's transaction: `edit` changes the listing (or not).
        fn foreign(&mut self, edit: impl FnOnce(&mut Option<String>)) {
            edit(&mut self.listing);
            self.generation = self.generation.map(|g| g + 1);
        }
    }

    #[derive(Clone, Default)]
    struct FakeKernel(Arc<Mutex<Table>>);

    impl FakeKernel {
        fn with_generation() -> Self {
            let kernel = FakeKernel::default();
            kernel.table().generation = Some(100);
            kernel
        }

        fn table(&self) -> std::sync::MutexGuard<'_, Table> {
            self.0.lock().unwrap()
        }
    }

    impl Kernel for FakeKernel {
        fn apply(&mut self, transaction: &Transaction) -> Result<(), String> {
            let mut table = self.table();
            match transaction.kind {
                TransactionKind::Full => table.listing = Some(transaction.json.clone()),
                TransactionKind::Incremental => match &mut table.listing {
                    Some(listing) => listing.push_str(&transaction.json),
                    None => return Err("No such file or directory".into()),
                },
            }
            table.applied.push(transaction.kind);
            table.generation = table.generation.map(|g| g + 1);
            Ok(())
        }

        fn list(&mut self) -> Result<Option<String>, String> {
            let mut table = self.table();
            table.lists += 1;
            Ok(table.listing.clone())
        }

        fn remove(&mut self) -> Result<(), String> {
            self.table().foreign(|listing| *listing = None);
            Ok(())
        }

        fn generation(&mut self) -> Generation {
            match self.table().generation {
                Some(id) => Generation::Id(id),
                None => Generation::Unavailable("no netlink here".into()),
            }
        }
    }

    /// node-1's ruleset when web may reach db on `port` only.
    fn ruleset(port: u16) -> NodeRuleset {
        let policy = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: db, namespace: shop}}\nspec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: web}}}}}}], ports: [{{port: {port}}}]}}]\n"
        );
        let mut planner = Planner::new("node-1", Config::default(), OnUnreadable::KeepLastGood);
        let plan = planner.plan(files(&policy)).expect("plan");
        assert!(plan.errors.is_empty());
        plan.ruleset
    }

    fn applied(enforcer: &mut Enforcer, ruleset: NodeRuleset) -> (TransactionKind, Option<Drift>) {
        match enforcer.enforce(ruleset).expect("enforce") {
            Applied::Transaction { kind, repaired, .. } => (kind, repaired),
            Applied::Unchanged => panic!("nothing applied"),
        }
    }

    #[test]
    fn an_apply_does_not_list_and_the_next_check_renews_the_reference() {
        let kernel = FakeKernel::with_generation();
        let mut enforcer = Enforcer::new(Box::new(kernel.clone()));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Idle));
        applied(&mut enforcer, ruleset(5432));
        assert_eq!(kernel.table().lists, 0, "no listing on the apply's path");
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(kernel.table().lists, 1);
        for _ in 0..3 {
            assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
        }
        assert_eq!(kernel.table().lists, 1);
        // Several updates between two checks: one listing for all of them.
        for port in [5433, 5434, 5435] {
            assert_eq!(
                applied(&mut enforcer, ruleset(port)),
                (TransactionKind::Incremental, None)
            );
        }
        assert_eq!(kernel.table().lists, 1);
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
        assert_eq!(kernel.table().lists, 2);
        // The renewed reference is the table as updated: a foreign
        // transaction elsewhere now compares clean.
        kernel.table().foreign(|_| {});
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Clean));
        assert_eq!(enforcer.take_generation_notice(), None);
    }

    #[test]
    fn a_foreign_transaction_on_another_table_costs_one_listing() {
        let kernel = FakeKernel::with_generation();
        let mut enforcer = Enforcer::new(Box::new(kernel.clone()));
        applied(&mut enforcer, ruleset(5432));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        kernel.table().foreign(|_| {});
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Clean));
        assert_eq!(kernel.table().lists, 2);
        // The new generation is remembered.
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
        assert_eq!(kernel.table().lists, 2);
        assert_eq!(kernel.table().applied, [TransactionKind::Full]);
    }

    #[test]
    fn a_foreign_transaction_before_the_renewal_replaces_the_table_whole() {
        let kernel = FakeKernel::with_generation();
        let mut enforcer = Enforcer::new(Box::new(kernel.clone()));
        applied(&mut enforcer, ruleset(5432));
        applied(&mut enforcer, ruleset(5433));
        let expected = kernel.table().listing.clone();
        // A hand edit, or another table: the stale reference cannot tell.
        kernel
            .table()
            .foreign(|listing| listing.as_mut().unwrap().push_str("\nrule accept"));
        assert_eq!(
            enforcer.check_drift(),
            Ok(DriftCheck::Repaired(Drift::Unverifiable))
        );
        assert_eq!(kernel.table().lists, 0);
        assert_eq!(
            kernel.table().applied,
            [
                TransactionKind::Full,
                TransactionKind::Incremental,
                TransactionKind::Full
            ]
        );
        // The hand edit is gone: the table is the committed ruleset again.
        let listing = kernel.table().listing.clone().unwrap();
        assert!(!listing.contains("rule accept"));
        assert_ne!(Some(&listing), expected.as_ref(), "replaced whole");
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
    }

    #[test]
    fn a_changed_or_deleted_table_is_restored() {
        let kernel = FakeKernel::with_generation();
        let mut enforcer = Enforcer::new(Box::new(kernel.clone()));
        applied(&mut enforcer, ruleset(5432));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        let expected = kernel.table().listing.clone();
        kernel
            .table()
            .foreign(|listing| listing.as_mut().unwrap().push_str("\nrule accept"));
        let Ok(DriftCheck::Repaired(Drift::TableChanged { added_objects, .. })) =
            enforcer.check_drift()
        else {
            panic!("not repaired")
        };
        assert!(added_objects > 0);
        assert_eq!(kernel.table().listing, expected);
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
        kernel.table().foreign(|listing| *listing = None);
        assert_eq!(
            enforcer.check_drift(),
            Ok(DriftCheck::Repaired(Drift::TableMissing))
        );
        assert_eq!(kernel.table().listing, expected);
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
        assert_eq!(
            kernel.table().applied,
            [
                TransactionKind::Full,
                TransactionKind::Full,
                TransactionKind::Full
            ]
        );
    }

    #[test]
    fn without_a_generation_every_check_lists_and_says_so_once() {
        let kernel = FakeKernel::default();
        let mut enforcer = Enforcer::new(Box::new(kernel.clone()));
        applied(&mut enforcer, ruleset(5432));
        assert_eq!(
            enforcer.take_generation_notice().as_deref(),
            Some("no netlink here")
        );
        for lists in 2..5 {
            assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Clean));
            assert_eq!(kernel.table().lists, lists);
        }
        assert_eq!(enforcer.take_generation_notice(), None);
        kernel.table().foreign(|listing| *listing = None);
        assert_eq!(
            enforcer.check_drift(),
            Ok(DriftCheck::Repaired(Drift::TableMissing))
        );
        // An element update does not list first.
        let lists = kernel.table().lists;
        let (kind, repaired) = applied(&mut enforcer, ruleset(5433));
        assert_eq!((kind, repaired), (TransactionKind::Incremental, None));
        assert_eq!(kernel.table().lists, lists + 1, "only the listing after");
    }

    #[test]
    fn an_element_update_after_unseen_drift_replaces_the_table() {
        let kernel = FakeKernel::with_generation();
        let mut enforcer = Enforcer::new(Box::new(kernel.clone()));
        applied(&mut enforcer, ruleset(5432));
        // Nothing else moved: an element update, with no listing at all.
        assert_eq!(
            applied(&mut enforcer, ruleset(5433)),
            (TransactionKind::Incremental, None)
        );
        assert_eq!(kernel.table().lists, 0);
        // Another transaction before the reference was renewed: the table
        // cannot be compared, so it is replaced whole.
        kernel.table().foreign(|_| {});
        assert_eq!(
            applied(&mut enforcer, ruleset(5432)),
            (TransactionKind::Full, Some(Drift::Unverifiable))
        );
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(kernel.table().lists, 1);
        // Another table changed, reference renewed: compared first, then an
        // element update.
        kernel.table().foreign(|_| {});
        assert_eq!(
            applied(&mut enforcer, ruleset(5433)),
            (TransactionKind::Incremental, None)
        );
        assert_eq!(kernel.table().lists, 2);
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        // Our table changed by hand before the update: replaced whole, and
        // the hand edit is not adopted as the reference.
        kernel
            .table()
            .foreign(|listing| listing.as_mut().unwrap().push_str("\nrule accept"));
        let (kind, repaired) = applied(&mut enforcer, ruleset(5432));
        assert_eq!(kind, TransactionKind::Full);
        assert!(matches!(repaired, Some(Drift::TableChanged { .. })));
        assert!(
            !kernel
                .table()
                .listing
                .as_ref()
                .unwrap()
                .contains("rule accept")
        );
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Renewed));
        assert_eq!(enforcer.check_drift(), Ok(DriftCheck::Skipped));
    }
}
