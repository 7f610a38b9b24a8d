//! # policy-nft: the model, enforced by nftables
//!
//! Lowers a [`policy_core::Model`] to one nftables ruleset per node, covering
//! the pods whose `spec.nodeName` is that node, and runs `nft` to load it.
//!
//! ## The ruleset
//! One table, `inet netpol`, that netpol owns; nothing else is touched. A
//! ruleset replaces that table in one transaction.
//! - Hooks: `forward` (pod to pod and pod to outside traffic crosses the node
//!   there, after kube-proxy's DNAT) and `input` (pod to its own node). This
//!   fits routed CNIs, where the node forwards pod traffic (Calico-like). With
//!   a bridge CNI, pod-to-pod traffic on one node is bridged, not routed, and
//!   reaches these hooks only with `br_netfilter` loaded
//!   (`net.bridge.bridge-nf-call-iptables=1`).
//! - `ct state established,related accept` first: replies of allowed
//!   connections flow.
//! - Dispatch: verdict maps from local pod address to the chain of the pod's
//!   class, one map per direction and family. A pod no policy isolates has no
//!   entry and is untouched.
//! - A class chain returns (allows) when the peer address is in one of the
//!   class's any-protocol sets, or when `address . protocol . port` is in one
//!   of its concatenated sets; otherwise it drops. Pod addresses go into hash
//!   sets, ipBlock ranges and port ranges into interval sets
//!   ([`ruleset::SetKind`]); all four are declared, also when empty. So a
//!   packet costs two map lookups and four set lookups, whatever the number
//!   of policies and pods.
//!
//! The per-packet semantics equal the model's: [`Compiler`] turns peer sets
//! into address sets (ipBlock `except` subtracted by the model; pod addresses
//! subtracted when ipBlocks must not match pods), resolves named ports on the
//! destination, and makes endPort a range.
//!
//! ```no_run
//! # fn demo(model: &policy_core::Model) -> Result<(), Box<dyn std::error::Error>> {
//! let compiler = policy_nft::Compiler::new(model)?;
//! let (ruleset, _unenforceable) = compiler.compile("node-1");
//! let script = policy_nft::text::render(&ruleset);
//! policy_nft::runner::Nft::default().apply_text(&script)?;
//! # Ok(()) }
//! ```
//!
//! ## Updates
//! An agent that keeps a node's table in sync need not replace it at every
//! cluster change: [`diff`] compares the committed ruleset with the next one
//! and, when only set and map elements differ (as when a pod of an existing
//! workload starts, stops or gets a new address), writes just those element
//! deletions and additions as one transaction; otherwise the whole ruleset
//! is loaded.
//! [`diff::stabilize_names`] keeps class chain names stable across
//! recompilations (the compiler names them after class indices, which shift).

#![warn(missing_docs)]

pub mod compile;
pub mod diff;
pub mod json;
pub mod ruleset;
pub mod runner;
pub mod text;

pub use compile::{CompileError, Compiler, Unenforceable};
pub use ruleset::{ClassChain, NodeRuleset};
