//! The agent's only handle on the kernel: apply a transaction, list the
//! table, remove it. [`NftKernel`] runs `nft`; [`DryRun`] prints instead.

use std::io::Write;

use policy_nft::ruleset::{FAMILY, TABLE};
use policy_nft::runner::{Nft, NftError};

/// One atomic nft transaction, in both syntaxes.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// A full table replace or an element update.
    pub kind: TransactionKind,
    /// nft script (`nft -f -`): what `--dry-run` prints.
    pub text: String,
    /// libnftables JSON (`nft -j -f -`): what is applied.
    pub json: String,
    /// Set and map elements the transaction adds or deletes (for a full
    /// replace: the elements of the whole table).
    pub elements: usize,
}

/// What a transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransactionKind {
    /// Replaces the whole `inet netpol` table.
    Full,
    /// Adds and deletes elements of the existing table's sets and maps.
    Incremental,
}

impl TransactionKind {
    /// `full` or `incremental` (metric labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Full => "full",
            TransactionKind::Incremental => "incremental",
        }
    }
}

/// The kernel, as the agent uses it.
pub trait Kernel: Send {
    /// Applies one transaction atomically: all of it or none of it.
    fn apply(&mut self, transaction: &Transaction) -> Result<(), String>;
    /// The table as `nft list table` prints it; `None` if there is none.
    /// Comparing two listings tells whether someone changed the table.
    fn list(&mut self) -> Result<Option<String>, String>;
    /// Deletes the table, if it exists.
    fn remove(&mut self) -> Result<(), String>;
    /// False if this kernel only pretends (no drift to check).
    fn is_real(&self) -> bool {
        true
    }
}

/// The real kernel, through the `nft` binary.
#[derive(Clone, Debug, Default)]
pub struct NftKernel {
    nft: Nft,
}

impl NftKernel {
    /// Runs nft as configured.
    pub fn new(nft: Nft) -> Self {
        NftKernel { nft }
    }
}

fn is_missing_table(error: &NftError) -> bool {
    matches!(error, NftError::Refused { stderr, .. } if stderr.contains("No such file or directory"))
}

impl Kernel for NftKernel {
    fn apply(&mut self, transaction: &Transaction) -> Result<(), String> {
        self.nft
            .apply_json(&transaction.json)
            .map_err(|e| e.to_string())
    }

    fn list(&mut self) -> Result<Option<String>, String> {
        // JSON: about 20% faster to produce than the text listing.
        match self.nft.run(&["-j", "list", "table", FAMILY, TABLE], "") {
            Ok(listing) => Ok(Some(listing)),
            Err(error) if is_missing_table(&error) => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }

    fn remove(&mut self) -> Result<(), String> {
        // `add` first so that the delete succeeds whether or not the table
        // exists (nft 1.0.6 has no `destroy`).
        let script = format!("add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n");
        self.nft.apply_text(&script).map_err(|e| e.to_string())
    }
}

/// `--dry-run`: prints each transaction on standard output instead of
/// applying it.
#[derive(Debug, Default)]
pub struct DryRun {
    /// Transactions printed so far.
    pub printed: usize,
}

impl Kernel for DryRun {
    fn apply(&mut self, transaction: &Transaction) -> Result<(), String> {
        self.printed += 1;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "# transaction {}: {}, {} elements",
            self.printed,
            transaction.kind.as_str(),
            transaction.elements
        )
        .and_then(|_| out.write_all(transaction.text.as_bytes()))
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))
    }

    fn list(&mut self) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn remove(&mut self) -> Result<(), String> {
        println!("# remove: delete table {FAMILY} {TABLE}");
        Ok(())
    }

    fn is_real(&self) -> bool {
        false
    }
}
