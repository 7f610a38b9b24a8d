//! The agent's only handle on the kernel: apply a transaction, list the
//! table, remove it, read the ruleset generation. [`NftKernel`] applies
//! through libnftables in-process ([`crate::libnft`]) or the `nft` binary,
//! lists with `nft`, and reads the generation over netlink
//! ([`crate::nftgen`]); [`DryRun`] prints instead.

use std::io::Write;

use policy_nft::ruleset::{FAMILY, TABLE};
use policy_nft::runner::{Nft, NftError};

use crate::libnft::LibNftables;
use crate::nftgen::GenerationSocket;

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

/// The nftables ruleset generation, as [`Kernel::generation`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generation {
    /// The generation id: it changes at every committed nftables
    /// transaction in the network namespace, in any table.
    Id(u32),
    /// It cannot be read; the message says why.
    Unavailable(String),
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
    /// The ruleset generation. While it has not moved, no transaction was
    /// committed, so the table lists as it did. By default unavailable:
    /// every drift check lists the table.
    fn generation(&mut self) -> Generation {
        Generation::Unavailable("this kernel has no generation id".into())
    }
}

/// The real kernel, through the `nft` binary; the generation through a
/// netlink socket.
#[derive(Debug, Default)]
pub struct NftKernel {
    nft: Nft,
    generation: GenerationReader,
    library: Library,
}

/// libnftables for applying, when nft is the default binary run directly.
#[derive(Debug, Default)]
enum Library {
    /// Not loaded yet: loaded on first apply, by the thread that applies.
    #[default]
    NotTried,
    Open(LibNftables),
    /// Missing, or `--nft` names another binary or runs it under a prefix:
    /// every transaction runs the binary.
    Unused,
}

/// The netlink side of [`NftKernel`].
#[derive(Debug, Default)]
enum GenerationReader {
    /// Not opened yet: opened on first use, by the thread that checks.
    #[default]
    Closed,
    Open(GenerationSocket),
    /// Never: nft runs elsewhere, or the socket cannot be opened.
    Unavailable(String),
}

impl NftKernel {
    /// Runs nft as configured. The generation is read in the network
    /// namespace of the thread that first asks for it, which is where nft
    /// runs unless `nft` has a command prefix: then it is unavailable
    /// (the prefix may enter another namespace).
    pub fn new(nft: Nft) -> Self {
        let generation = if nft.prefix.is_empty() {
            GenerationReader::Closed
        } else {
            GenerationReader::Unavailable(format!(
                "nft runs under `{}`, perhaps in another network namespace",
                nft.prefix.join(" ")
            ))
        };
        // A binary of the caller's choice (or run under a prefix) is what
        // must apply, not the library on this machine's search path.
        let library = if nft.prefix.is_empty() && nft.binary == std::path::Path::new("nft") {
            Library::NotTried
        } else {
            Library::Unused
        };
        NftKernel {
            nft,
            generation,
            library,
        }
    }

    /// libnftables, if it is to be used and can be loaded.
    fn library(&mut self) -> Option<&mut LibNftables> {
        if let Library::NotTried = self.library {
            self.library = match LibNftables::open() {
                Ok(library) => Library::Open(library),
                Err(why) => {
                    tracing::info!(reason = %why, "applying with the nft binary instead of libnftables");
                    Library::Unused
                }
            };
        }
        match &mut self.library {
            Library::Open(library) => Some(library),
            _ => None,
        }
    }
}

fn is_missing_table(error: &NftError) -> bool {
    matches!(error, NftError::Refused { stderr, .. } if stderr.contains("No such file or directory"))
}

impl Kernel for NftKernel {
    fn apply(&mut self, transaction: &Transaction) -> Result<(), String> {
        if let Some(library) = self.library() {
            return library.run(&transaction.text);
        }
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

    fn generation(&mut self) -> Generation {
        if let GenerationReader::Closed = self.generation {
            self.generation = match GenerationSocket::open() {
                Ok(socket) => GenerationReader::Open(socket),
                Err(e) => GenerationReader::Unavailable(format!(
                    "cannot open a NETLINK_NETFILTER socket: {e}"
                )),
            };
        }
        match &mut self.generation {
            GenerationReader::Open(socket) => match socket.read() {
                Ok(id) => Generation::Id(id),
                Err(e) => {
                    let why = format!("cannot read the nftables generation (NFT_MSG_GETGEN): {e}");
                    // Permission errors stay; anything else may pass (a
                    // timeout): try a new socket next time.
                    self.generation = if e.kind() == std::io::ErrorKind::PermissionDenied {
                        GenerationReader::Unavailable(why.clone())
                    } else {
                        GenerationReader::Closed
                    };
                    Generation::Unavailable(why)
                }
            },
            GenerationReader::Unavailable(why) => Generation::Unavailable(why.clone()),
            GenerationReader::Closed => unreachable!("opened above"),
        }
    }

    fn remove(&mut self) -> Result<(), String> {
        // `add` first so that the delete succeeds whether or not the table
        // exists (nft 1.0.6 has no `destroy`).
        let script = format!("add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n");
        if let Some(library) = self.library() {
            return library.run(&script);
        }
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
