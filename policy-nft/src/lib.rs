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
//! - Sides: per direction and family, a set of the isolated local pod
//!   addresses sends their packets to the side's chain. A pod no policy
//!   isolates is in no set and is untouched.
//! - Peer groups: the side's chain looks the peer address up in a verdict
//!   map (pod addresses, hash) and then an interval verdict map (ipBlock
//!   ranges), which `goto` the chain of the peer's group; peers in neither
//!   go to group 0. Peers that every local pod of the node treats alike
//!   share a group, so a peer address is one element per direction and
//!   family, however many local pods name it.
//! - A group chain returns (allows) when the local address is in its
//!   any-protocol set, or `local address . protocol . port` in one of its
//!   two port sets (exact ports: hash; port ranges: interval); otherwise it
//!   drops. All three are declared, also when empty ([`ruleset::SetKind`]).
//!   So a packet costs one set lookup, one or two map lookups and three set
//!   lookups per side, whatever the number of policies, pods and groups.
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
//! [`diff::stabilize_names`] keeps group chain names stable across
//! recompilations (the compiler numbers groups afresh) and keeps spare
//! groups, so that the structure rarely changes.

#![warn(missing_docs)]

pub mod compile;
pub mod diff;
pub mod json;
pub mod ruleset;
pub mod runner;
pub mod text;

pub use compile::{ClassAddresses, CompileError, Compiler, Unenforceable};
pub use ruleset::{NodeRuleset, PeerGroup, Side};
