//! Incremental updates: what changed between the ruleset a node runs and the
//! next one, as element additions and deletions when that is all that changed.
//!
//! Loading a whole ruleset ([`crate::text::render`]) replaces the table in
//! one transaction, which is always right but rewrites every set and map.
//! When the cluster changes a little (a pod starts, gets a new address,
//! changes labels; a policy gains a peer), often only elements change: a
//! dispatch map entry, a few peer addresses. [`diff`] finds out:
//!
//! - [`Update::Unchanged`]: nothing to do.
//! - [`Update::Elements`]: the table's structure (the [`Skeleton`]: which
//!   chains, sets and maps exist, and the rules) is the same; only elements
//!   of named sets and maps differ. [`render_text`] and [`render_json`] write
//!   the [`ElementDelta`] as one `nft -f` (or `nft -j -f`) transaction:
//!   deletes first, then adds (an interval set refuses an element that
//!   overlaps one still present, so a range that grows must go first).
//! - [`Update::Replace`]: the structure differs; load the full ruleset.
//!
//! The compiler names class chains after model class indices
//! (`ingress_c3_v4`), which shift whenever the cluster changes. So that a
//! recompiled ruleset does not look structurally new each time, call
//! [`stabilize_names`] on it first: it gives the chains of the next ruleset
//! the names their counterparts have in the committed one.
//!
//! ```no_run
//! # fn demo(committed: &policy_nft::NodeRuleset, mut next: policy_nft::NodeRuleset)
//! # -> Result<(), policy_nft::runner::NftError> {
//! use policy_nft::diff::{Update, diff, render_text, stabilize_names};
//! use policy_nft::runner::Nft;
//!
//! stabilize_names(committed, &mut next);
//! match diff(committed, &next) {
//!     Update::Unchanged => {}
//!     // Should it fail (the kernel's table is not `committed` any more),
//!     // nothing changed: load the whole ruleset instead.
//!     Update::Elements(delta) => Nft::default().apply_text(&render_text(&delta))?,
//!     Update::Replace => Nft::default().apply_text(&policy_nft::text::render(&next))?,
//! }
//! // `next` (with its stabilized names) is now the committed ruleset.
//! # Ok(()) }
//! ```
//!
//! A delta is only right for the table it was computed against, so the
//! agent must own table `inet netpol` alone. Deleting an element that a hash
//! set, a map or an address interval set does not hold fails, and so does
//! the whole transaction, leaving the table as it was. Not so in the
//! concatenated interval sets (`_port_net`, nftables' pipapo backend): there
//! the kernel deletes whichever element holds the *start* of the element
//! named (seen on Linux 6.18 with nft 1.0.6). Their elements are disjoint, so
//! against the committed table that is the element named; against a table
//! that drifted, a delta may succeed and still not give the next ruleset. A
//! failure is therefore no complete drift check: reload the whole ruleset
//! from time to time, or compare `nft list table inet netpol`.
//!
//! Such a comparison must not expect the listing of a fresh load of the next
//! ruleset byte for byte: after an element update, nft lists the elements of
//! concatenated interval sets in insertion order (hash and address interval
//! sets come sorted), and the kernel keeps declarations in creation order.
//! Compare with the listing taken after the update, or sort both.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{NfCmd, NfListObject, NfObject};
use nftables::types::NfFamily;
use policy_core::Direction;
use policy_core::ipset::Family;
use policy_core::ports::Protocol;
use serde_json::{Value, json};

use crate::json::{self, Command, Document, address_expression, port_expression};
use crate::ruleset::{ClassChain, FAMILY, Interval, NodeRuleset, SetKind, TABLE};
use crate::text::{port_range, protocol_keyword};

// ---------------------------------------------------------------------------
// Stable chain names

/// Names a class chain can never take: the base chains.
const BASE_CHAINS: [&str; 2] = ["forward", "input"];

/// What identifies a class chain across recompilations: its direction,
/// family and the policies that isolate it (sorted).
type ChainKey = (Direction, Family, Vec<String>);

fn chain_key(chain: &ClassChain) -> ChainKey {
    let mut policies = chain.policies.clone();
    policies.sort();
    (chain.direction, chain.family, policies)
}

fn sorted_members(chain: &ClassChain) -> Vec<String> {
    let mut members = chain.members.clone();
    members.sort();
    members
}

/// True for a valid nft identifier: a letter, then letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` made a valid nft identifier (other characters become `_`).
fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "c_");
    }
    out
}

/// Renames the class chains of `next` so that a chain that is "the same" as
/// a chain of `committed` has its name, and rewrites the dispatch maps of
/// `next` to match. Set names follow ([`ClassChain::set_name`] derives them
/// from the chain name; nothing else holds chain names).
///
/// A chain of `next` takes the name of a chain of `committed` when:
/// 1. exactly one chain of each shares its key (direction, family, and the
///    sorted list of policies that isolate it); or else
/// 2. the chains sharing the key are several on one side, but exactly one of
///    each (among those not named by rule 1) also has the same local pods.
///    Two classes isolated by the same policies are common (pods that other
///    policies tell apart); without this rule they would get new names, and
///    so a new structure, at every recompilation, even an unchanged one.
///
/// Every other chain of `next` gets a name no chain of `committed` has
/// (its own when that is free, else its own with the first free suffix
/// `_1`, `_2`, ...), unique in `next`, and a valid nft identifier (letters,
/// digits, `_`). So a name never changes meaning from one commit to the next.
pub fn stabilize_names(committed: &NodeRuleset, next: &mut NodeRuleset) {
    let mut committed_by_key: BTreeMap<ChainKey, Vec<usize>> = BTreeMap::new();
    for (index, chain) in committed.chains.iter().enumerate() {
        committed_by_key
            .entry(chain_key(chain))
            .or_default()
            .push(index);
    }
    let mut next_by_key: BTreeMap<ChainKey, Vec<usize>> = BTreeMap::new();
    for (index, chain) in next.chains.iter().enumerate() {
        next_by_key.entry(chain_key(chain)).or_default().push(index);
    }
    let mut names: Vec<Option<String>> = vec![None; next.chains.len()];
    for (key, next_indices) in &next_by_key {
        let Some(committed_indices) = committed_by_key.get(key) else {
            continue;
        };
        if let ([only_next], [only_committed]) =
            (next_indices.as_slice(), committed_indices.as_slice())
        {
            names[*only_next] = Some(committed.chains[*only_committed].name.clone());
            continue;
        }
        // Several on a side: pair those with the same local pods, when unique.
        let mut by_members: BTreeMap<Vec<String>, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for &index in next_indices {
            by_members
                .entry(sorted_members(&next.chains[index]))
                .or_default()
                .0
                .push(index);
        }
        for &index in committed_indices {
            by_members
                .entry(sorted_members(&committed.chains[index]))
                .or_default()
                .1
                .push(index);
        }
        for (next_indices, committed_indices) in by_members.values() {
            if let ([only_next], [only_committed]) =
                (next_indices.as_slice(), committed_indices.as_slice())
            {
                names[*only_next] = Some(committed.chains[*only_committed].name.clone());
            }
        }
    }
    let mut taken: HashSet<String> = committed
        .chains
        .iter()
        .map(|chain| chain.name.clone())
        .chain(BASE_CHAINS.map(String::from))
        .chain(names.iter().flatten().cloned())
        .collect();
    for (index, name) in names.iter_mut().enumerate() {
        if name.is_some() {
            continue;
        }
        let own = &next.chains[index].name;
        let base = if is_identifier(own) {
            own.clone()
        } else {
            identifier(own)
        };
        let mut candidate = base.clone();
        let mut suffix = 0;
        while taken.contains(&candidate) {
            suffix += 1;
            candidate = format!("{base}_{suffix}");
        }
        taken.insert(candidate.clone());
        *name = Some(candidate);
    }
    let renames: HashMap<String, String> = next
        .chains
        .iter()
        .zip(&names)
        .filter_map(|(chain, name)| {
            let name = name.as_ref().expect("every chain is named");
            (chain.name != *name).then(|| (chain.name.clone(), name.clone()))
        })
        .collect();
    if renames.is_empty() {
        return;
    }
    for (chain, name) in next.chains.iter_mut().zip(names) {
        chain.name = name.expect("every chain is named");
    }
    for (_, target) in next
        .ingress_dispatch
        .iter_mut()
        .chain(next.egress_dispatch.iter_mut())
    {
        if let Some(name) = renames.get(target.as_str()) {
            target.clone_from(name);
        }
    }
}

// ---------------------------------------------------------------------------
// The flattened view

/// What a named set or map of the table holds (its declaration, without
/// elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetShape {
    /// A dispatch verdict map (`ingress_v4`, ...): address → `jump` chain.
    /// Always declared, also when empty.
    Dispatch {
        /// Ingress or egress.
        direction: Direction,
        /// The address family of its keys.
        family: Family,
    },
    /// An interval set of host-network pod addresses (`local_node_v4`, ...).
    /// Always declared, also when empty.
    LocalNode {
        /// The address family.
        family: Family,
    },
    /// One of a class chain's four sets; always declared, also when empty.
    Class {
        /// The address family.
        family: Family,
        /// Which of the chain's four sets.
        kind: SetKind,
    },
}

/// A chain of the table and its rules (which follow from the shape).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChainShape {
    /// `forward` or `input`: the same rules in every ruleset.
    Base {
        /// The hook, `forward` or `input`.
        hook: &'static str,
    },
    /// A class chain: one lookup per set it has, in [`SetKind::ALL`] order,
    /// each returning on a match, then `drop`.
    Class {
        /// The family of the addresses it matches.
        family: Family,
        /// Ingress (matches the source) or egress (the destination).
        direction: Direction,
        /// The sets it has (those with elements), in [`SetKind::ALL`] order.
        sets: Vec<SetKind>,
    },
}

/// Everything the nft text of a ruleset declares outside element lists:
/// the table's structure. Two rulesets with the same skeleton differ only in
/// the elements of their sets and maps.
///
/// Not part of it: the order of declarations (it does not change what the
/// table does; after an element update the kernel keeps the committed
/// order) and the `#` comments of the text (pod and policy names; they never
/// reach the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skeleton {
    /// Every named set and map, by name.
    pub sets: BTreeMap<String, SetShape>,
    /// Every chain, by name.
    pub chains: BTreeMap<String, ChainShape>,
}

/// One element of a named set or map, as it is loaded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// An address, in a hash set ([`SetKind::AnyAddress`]).
    Address(IpAddr),
    /// An address interval `first..=last` (possibly one address), in an
    /// interval set ([`SetKind::AnyRange`], the local-node sets). Written as
    /// [`Interval::of`] writes it: address, prefix or `first-last`.
    Range {
        /// The first address.
        first: IpAddr,
        /// The last address.
        last: IpAddr,
    },
    /// `address . protocol . port`, in a hash set ([`SetKind::PortAddress`]).
    AddressPort {
        /// The peer address.
        address: IpAddr,
        /// The protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
    },
    /// `range . protocol . port range`, in an interval set
    /// ([`SetKind::PortRange`]).
    RangePorts {
        /// The first peer address.
        first: IpAddr,
        /// The last peer address.
        last: IpAddr,
        /// The protocol.
        protocol: Protocol,
        /// The first port.
        low: u16,
        /// The last port.
        high: u16,
    },
    /// A dispatch map entry: `address : jump chain`.
    Jump {
        /// The local pod address.
        address: IpAddr,
        /// The class chain it jumps to.
        chain: String,
    },
}

/// A ruleset as its structure and the elements of each named set and map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatRuleset {
    /// The structure.
    pub skeleton: Skeleton,
    /// The elements of every set and map of the skeleton, by name (an empty
    /// set for a dispatch map or local-node set without elements).
    pub elements: BTreeMap<String, BTreeSet<Element>>,
}

fn family_suffix(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn in_family(address: IpAddr, family: Family) -> bool {
    address.is_ipv4() == (family == Family::V4)
}

/// The ruleset as [`crate::text::render`] declares it: its skeleton and the
/// elements of its sets and maps.
pub fn flatten(ruleset: &NodeRuleset) -> FlatRuleset {
    let mut sets = BTreeMap::new();
    let mut elements: BTreeMap<String, BTreeSet<Element>> = BTreeMap::new();
    for (direction, dispatch) in [
        (Direction::Ingress, &ruleset.ingress_dispatch),
        (Direction::Egress, &ruleset.egress_dispatch),
    ] {
        for family in [Family::V4, Family::V6] {
            let name = format!("{}_{}", direction.field(), family_suffix(family));
            sets.insert(name.clone(), SetShape::Dispatch { direction, family });
            elements.insert(
                name,
                dispatch
                    .iter()
                    .filter(|(address, _)| in_family(*address, family))
                    .map(|(address, chain)| Element::Jump {
                        address: *address,
                        chain: chain.clone(),
                    })
                    .collect(),
            );
        }
    }
    for family in [Family::V4, Family::V6] {
        let name = format!("local_node_{}", family_suffix(family));
        sets.insert(name.clone(), SetShape::LocalNode { family });
        elements.insert(
            name,
            ruleset
                .local_node_addresses
                .ranges(family)
                .map(|(first, last)| Element::Range { first, last })
                .collect(),
        );
    }
    let mut chains = BTreeMap::new();
    for hook in BASE_CHAINS {
        chains.insert(hook.to_string(), ChainShape::Base { hook });
    }
    for chain in &ruleset.chains {
        let chain_elements = chain.elements(&ruleset.pod_addresses);
        let mut kinds = Vec::new();
        for kind in SetKind::ALL {
            kinds.push(kind);
            let name = chain.set_name(kind);
            sets.insert(
                name.clone(),
                SetShape::Class {
                    family: chain.family,
                    kind,
                },
            );
            let set: BTreeSet<Element> = match kind {
                SetKind::AnyAddress => chain_elements
                    .any_addresses
                    .iter()
                    .map(|&address| Element::Address(address))
                    .collect(),
                SetKind::PortAddress => chain_elements
                    .port_addresses
                    .iter()
                    .map(|&(address, protocol, port)| Element::AddressPort {
                        address,
                        protocol,
                        port,
                    })
                    .collect(),
                SetKind::AnyRange => chain_elements
                    .any_ranges
                    .iter()
                    .map(|&(first, last)| Element::Range { first, last })
                    .collect(),
                SetKind::PortRange => chain_elements
                    .port_ranges
                    .iter()
                    .map(
                        |&((first, last), protocol, (low, high))| Element::RangePorts {
                            first,
                            last,
                            protocol,
                            low,
                            high,
                        },
                    )
                    .collect(),
            };
            elements.insert(name, set);
        }
        chains.insert(
            chain.name.clone(),
            ChainShape::Class {
                family: chain.family,
                direction: chain.direction,
                sets: kinds,
            },
        );
    }
    FlatRuleset {
        skeleton: Skeleton { sets, chains },
        elements,
    }
}

// ---------------------------------------------------------------------------
// The difference

/// The element changes of one set or map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetDelta {
    /// Elements to delete (held by the committed ruleset only).
    pub delete: BTreeSet<Element>,
    /// Elements to add (held by the next ruleset only).
    pub add: BTreeSet<Element>,
}

/// Element changes that turn one ruleset into another of the same skeleton.
/// A dispatch entry whose chain changed is a deletion and an addition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElementDelta {
    /// Per set or map name, its changes; only sets and maps that change.
    pub sets: BTreeMap<String, SetDelta>,
}

impl ElementDelta {
    /// Elements touched: deletions plus additions.
    pub fn len(&self) -> usize {
        self.sets
            .values()
            .map(|set| set.delete.len() + set.add.len())
            .sum()
    }

    /// True if nothing changes.
    pub fn is_empty(&self) -> bool {
        self.sets
            .values()
            .all(|set| set.delete.is_empty() && set.add.is_empty())
    }
}

/// What it takes to turn the committed table into the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// Nothing: same skeleton, same elements.
    Unchanged,
    /// Same skeleton; only these elements change.
    Elements(ElementDelta),
    /// The skeleton changed: load the next ruleset whole.
    Replace,
}

/// What turns `committed` into `next`. Chain names are compared as they
/// are: call [`stabilize_names`] on `next` first.
pub fn diff(committed: &NodeRuleset, next: &NodeRuleset) -> Update {
    diff_flat(&flatten(committed), &flatten(next))
}

/// [`diff`] on rulesets already flattened (e.g. to keep the committed one
/// flat between updates).
pub fn diff_flat(committed: &FlatRuleset, next: &FlatRuleset) -> Update {
    if committed.skeleton != next.skeleton {
        return Update::Replace;
    }
    let empty = BTreeSet::new();
    let mut delta = ElementDelta::default();
    for (name, next_elements) in &next.elements {
        let committed_elements = committed.elements.get(name).unwrap_or(&empty);
        if committed_elements == next_elements {
            continue;
        }
        delta.sets.insert(
            name.clone(),
            SetDelta {
                delete: committed_elements
                    .difference(next_elements)
                    .cloned()
                    .collect(),
                add: next_elements
                    .difference(committed_elements)
                    .cloned()
                    .collect(),
            },
        );
    }
    // Equal skeletons declare the same sets, so no set is in `committed` only.
    if delta.is_empty() {
        Update::Unchanged
    } else {
        Update::Elements(delta)
    }
}

/// `flat` with `delta` applied in memory, as nft applies it: per set,
/// deletions, then additions. (A set the delta names that `flat` lacks is
/// created; nft would refuse such a delta.)
pub fn apply(flat: &FlatRuleset, delta: &ElementDelta) -> FlatRuleset {
    let mut out = flat.clone();
    for (name, changes) in &delta.sets {
        let elements = out.elements.entry(name.clone()).or_default();
        for element in &changes.delete {
            elements.remove(element);
        }
        elements.extend(changes.add.iter().cloned());
    }
    out
}

// ---------------------------------------------------------------------------
// Rendering a delta

/// An element in nft syntax, as [`crate::text::render`] writes it. A
/// deletion names a map entry by its key alone.
fn element_text(element: &Element, deletion: bool) -> String {
    match element {
        Element::Address(address) => address.to_string(),
        Element::Range { first, last } => Interval::of(*first, *last).to_string(),
        Element::AddressPort {
            address,
            protocol,
            port,
        } => format!("{address} . {} . {port}", protocol_keyword(*protocol)),
        Element::RangePorts {
            first,
            last,
            protocol,
            low,
            high,
        } => format!(
            "{} . {} . {}",
            Interval::of(*first, *last),
            protocol_keyword(*protocol),
            port_range(*low, *high)
        ),
        Element::Jump { address, .. } if deletion => address.to_string(),
        Element::Jump { address, chain } => format!("{address} : jump {chain}"),
    }
}

/// The delta as an nft script: one `delete element` command per set with
/// deletions, then one `add element` command per set with additions. `nft -f`
/// runs it as one transaction. An empty delta is an empty script (which nft
/// accepts and which changes nothing).
pub fn render_text(delta: &ElementDelta) -> String {
    let mut out = String::new();
    for (command, deletion) in [("delete", true), ("add", false)] {
        for (name, changes) in &delta.sets {
            let elements = if deletion {
                &changes.delete
            } else {
                &changes.add
            };
            if elements.is_empty() {
                continue;
            }
            let _ = write!(out, "{command} element {FAMILY} {TABLE} {name} {{");
            for (index, element) in elements.iter().enumerate() {
                out.push_str(if index == 0 { " " } else { ",\n\t" });
                out.push_str(&element_text(element, deletion));
            }
            out.push_str(" }\n");
        }
    }
    out
}

/// A set element as [`crate::json`] writes it (map entries excluded).
fn element_expression(element: &Element) -> Expression<'static> {
    let protocol = json::protocol_keyword;
    let concat =
        |parts: Vec<Expression<'static>>| Expression::Named(NamedExpression::Concat(parts));
    match element {
        Element::Address(address) | Element::Jump { address, .. } => {
            address_expression(*address, *address)
        }
        Element::Range { first, last } => address_expression(*first, *last),
        Element::AddressPort {
            address,
            protocol: p,
            port,
        } => concat(vec![
            address_expression(*address, *address),
            protocol(*p),
            port_expression(*port, *port),
        ]),
        Element::RangePorts {
            first,
            last,
            protocol: p,
            low,
            high,
        } => concat(vec![
            address_expression(*first, *last),
            protocol(*p),
            port_expression(*low, *high),
        ]),
    }
}

fn element_command(name: &str, elements: &BTreeSet<Element>, deletion: bool) -> Command {
    let is_map_entry = |element: &Element| matches!(element, Element::Jump { .. });
    if !deletion && elements.iter().any(is_map_entry) {
        // Verdict map entries: [key, verdict], as crate::json writes them.
        let elem: Vec<Value> = elements
            .iter()
            .map(|element| match element {
                Element::Jump { address, chain } => {
                    json!([address.to_string(), {"jump": {"target": chain}}])
                }
                other => serde_json::to_value(element_expression(other))
                    .expect("nftables expressions serialise"),
            })
            .collect();
        return Command::Raw(json!({"add": {"element": {
            "family": FAMILY, "table": TABLE, "name": name, "elem": elem,
        }}}));
    }
    let object = NfListObject::Element(nftables::schema::Element {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name.to_string()),
        elem: Cow::Owned(elements.iter().map(element_expression).collect()),
    });
    Command::Typed(NfObject::CmdObject(if deletion {
        NfCmd::Delete(object)
    } else {
        NfCmd::Add(object)
    }))
}

fn document(delta: &ElementDelta) -> Document {
    let mut commands = Vec::new();
    for deletion in [true, false] {
        for (name, changes) in &delta.sets {
            let elements = if deletion {
                &changes.delete
            } else {
                &changes.add
            };
            if !elements.is_empty() {
                commands.push(element_command(name, elements, deletion));
            }
        }
    }
    Document { nftables: commands }
}

/// The delta as a libnftables JSON document for `nft -j -f -`:
/// `{"nftables": [{"delete": {"element": ...}}, ..., {"add": {"element": ...}}, ...]}`,
/// deletions first, elements encoded as [`crate::json`] encodes them (map
/// entries to delete by their key alone). An empty delta is
/// `{"nftables":[]}` (which nft accepts and which changes nothing).
pub fn render_json(delta: &ElementDelta) -> String {
    serde_json::to_string(&document(delta)).expect("nftables objects serialise")
}

/// [`render_json`] as a JSON value.
pub fn render_json_value(delta: &ElementDelta) -> Value {
    serde_json::to_value(document(delta)).expect("nftables objects serialise")
}

// The random worlds of policy-core's property tests (clusters and policies).
#[cfg(test)]
#[path = "../../policy-core/tests/common/mod.rs"]
mod common;

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use policy_core::ipset::IpSet;
    use policy_core::{Config, HostNetworkMode, Loader, Model, SelfTraffic};
    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::test_runner::{Config as ProptestConfig, TestRunner};

    use super::common::{self, NaiveEndpoint, World};
    use super::*;
    use crate::Compiler;

    const NODES: [&str; 2] = ["node-1", "node-2"];

    // -------------------------------------------------------------- worlds

    /// One change to a world, as the agent sees clusters change.
    #[derive(Clone, Debug)]
    enum Mutation {
        /// A pod gets a new address (its IPv6 address follows).
        NewAddress(Index, u8),
        /// A pod's labels change.
        Relabel(Index, common::Labels),
        /// A pod goes away.
        Remove(Index),
        /// A pod starts.
        Add(NaiveEndpoint),
        /// A pod moves to the other node.
        Move(Index),
        /// A policy's spec changes (peers, ports, selectors).
        ReplacePolicy(Index, NetworkPolicy),
        /// A policy is created.
        AddPolicy(NetworkPolicy),
        /// A policy is deleted.
        RemovePolicy(Index),
    }

    fn labels() -> impl Strategy<Value = common::Labels> {
        proptest::collection::btree_map(
            proptest::sample::select(&["app", "tier", "role"][..]).prop_map(String::from),
            proptest::sample::select(&["web", "db", "api"][..]).prop_map(String::from),
            0..3,
        )
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            3 => (any::<Index>(), 0..17u8).prop_map(|(i, salt)| Mutation::NewAddress(i, salt)),
            2 => (any::<Index>(), labels()).prop_map(|(i, l)| Mutation::Relabel(i, l)),
            2 => any::<Index>().prop_map(Mutation::Remove),
            2 => (9usize..14).prop_flat_map(common::endpoint).prop_map(Mutation::Add),
            1 => any::<Index>().prop_map(Mutation::Move),
            2 => (any::<Index>(), common::policy(0)).prop_map(|(i, p)| Mutation::ReplacePolicy(i, p)),
            1 => common::policy(9).prop_map(Mutation::AddPolicy),
            1 => any::<Index>().prop_map(Mutation::RemovePolicy),
        ]
    }

    /// The IPv6 address a dual-stack pod gets: `fd00::` and its IPv4 address.
    fn ipv6_of(ipv4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(u32::from(ipv4)))
    }

    /// Compilable choices, and IPv6 addresses for dual-stack worlds.
    fn finish(mut world: World, dual_stack: bool) -> World {
        world.config.host_network = HostNetworkMode::Node;
        world.config.self_traffic = SelfTraffic::Allow;
        for (index, endpoint) in world.endpoints.iter_mut().enumerate() {
            // Pods with an address run somewhere (host-network pods on the
            // node whose address they have).
            if let Some(ip) = endpoint.ip
                && endpoint.node.is_none()
            {
                let node = if endpoint.host_network {
                    usize::from(ip.octets()[3] == 2)
                } else {
                    index % 2
                };
                endpoint.node = Some(NODES[node].into());
            }
            endpoint.ipv6 = endpoint
                .ip
                .filter(|_| dual_stack && !endpoint.host_network)
                .map(ipv6_of);
        }
        world
    }

    fn mutate(world: &World, mutations: &[Mutation]) -> World {
        let mut world = world.clone();
        for mutation in mutations {
            let count = world.endpoints.len();
            let policies = world.policies.len();
            match mutation.clone() {
                Mutation::NewAddress(i, salt) if count > 0 => {
                    let index = i.index(count);
                    let endpoint = &mut world.endpoints[index];
                    if endpoint.ip.is_some() && !endpoint.host_network {
                        endpoint.ip = Some(Ipv4Addr::new(10, 0, 1, 10 + 17 * index as u8 + salt));
                    }
                }
                Mutation::Relabel(i, labels) if count > 0 => {
                    world.endpoints[i.index(count)].labels = labels;
                }
                Mutation::Remove(i) if count > 0 => {
                    world.endpoints.remove(i.index(count));
                }
                Mutation::Add(endpoint)
                    if !world.endpoints.iter().any(|e| e.name == endpoint.name) =>
                {
                    world.endpoints.push(endpoint);
                }
                Mutation::Move(i) if count > 0 => {
                    let endpoint = &mut world.endpoints[i.index(count)];
                    if !endpoint.host_network {
                        endpoint.node = match endpoint.node.as_deref() {
                            Some("node-1") => Some("node-2".into()),
                            Some(_) => Some("node-1".into()),
                            None => None,
                        };
                    }
                }
                Mutation::ReplacePolicy(i, mut policy) if policies > 0 => {
                    let index = i.index(policies);
                    policy.metadata.name = world.policies[index].metadata.name.clone();
                    world.policies[index] = policy;
                }
                Mutation::AddPolicy(policy)
                    if !world
                        .policies
                        .iter()
                        .any(|p| p.metadata.name == policy.metadata.name) =>
                {
                    world.policies.push(policy);
                }
                Mutation::RemovePolicy(i) if policies > 0 => {
                    world.policies.remove(i.index(policies));
                }
                _ => {}
            }
        }
        world
    }

    /// A policy that isolates every pod of `namespace` both ways.
    fn default_deny(namespace: &str) -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": format!("deny-{namespace}"), "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }))
        .unwrap()
    }

    /// A random world, and the same world after one or two changes. Three
    /// in four worlds deny by default in every namespace, as clusters often
    /// do (so most pods have chains).
    fn world_pair() -> impl Strategy<Value = (World, World)> {
        (
            common::world(),
            proptest::collection::vec(mutation(), 1..=2),
            any::<bool>(),
            proptest::bool::weighted(0.75),
        )
            .prop_map(|(mut world, mutations, dual_stack, deny)| {
                if deny {
                    world
                        .policies
                        .extend(common::NAMESPACES.iter().map(|n| default_deny(n)));
                }
                let before = finish(world, dual_stack);
                let after = finish(mutate(&before, &mutations), dual_stack);
                (before, after)
            })
    }

    fn compile(world: &World) -> Vec<NodeRuleset> {
        let model = common::build_model(world);
        let compiler = Compiler::new(&model).expect("compilable choices");
        NODES.iter().map(|node| compiler.compile(node).0).collect()
    }

    // ------------------------------------------------------------ checks

    /// What stabilization promises: unique, valid names that keep their
    /// meaning, dispatch maps that follow, and nothing else changed.
    fn check_names(
        committed: &NodeRuleset,
        before: &NodeRuleset,
        after: &NodeRuleset,
    ) -> Result<(), TestCaseError> {
        let names: HashSet<&str> = after.chains.iter().map(|c| c.name.as_str()).collect();
        prop_assert_eq!(names.len(), after.chains.len(), "duplicate chain names");
        for chain in &after.chains {
            prop_assert!(
                is_identifier(&chain.name),
                "{} is no identifier",
                chain.name
            );
            prop_assert!(!BASE_CHAINS.contains(&chain.name.as_str()));
            if let Some(old) = committed.chains.iter().find(|c| c.name == chain.name) {
                prop_assert_eq!(
                    chain_key(old),
                    chain_key(chain),
                    "{} changed meaning",
                    chain.name
                );
            }
        }
        for (_, target) in after.ingress_dispatch.iter().chain(&after.egress_dispatch) {
            prop_assert!(
                names.contains(target.as_str()),
                "dispatch to a missing {}",
                target
            );
        }
        // Only names changed, consistently.
        prop_assert_eq!(before.chains.len(), after.chains.len());
        let renames: HashMap<&str, &str> = before
            .chains
            .iter()
            .zip(&after.chains)
            .map(|(b, a)| (b.name.as_str(), a.name.as_str()))
            .collect();
        for (b, a) in before.chains.iter().zip(&after.chains) {
            prop_assert_eq!(
                &ClassChain {
                    name: a.name.clone(),
                    ..b.clone()
                },
                a
            );
        }
        for (b, a) in [
            (&before.ingress_dispatch, &after.ingress_dispatch),
            (&before.egress_dispatch, &after.egress_dispatch),
        ] {
            let renamed: Vec<(IpAddr, String)> = b
                .iter()
                .map(|(ip, chain)| (*ip, renames[chain.as_str()].to_string()))
                .collect();
            prop_assert_eq!(&renamed, a);
        }
        prop_assert_eq!(&before.local_node_addresses, &after.local_node_addresses);
        prop_assert_eq!(&before.pod_addresses, &after.pod_addresses);
        Ok(())
    }

    #[derive(Debug, Default)]
    struct Outcomes {
        unchanged: usize,
        elements: usize,
        replace: usize,
    }

    /// The property, for one pair of worlds: stabilized names keep their
    /// promises, a ruleset does not differ from itself, and an element delta
    /// turns the committed ruleset exactly into the next one.
    fn check_pair(
        before: &World,
        after: &World,
        outcomes: &RefCell<Outcomes>,
    ) -> Result<(), TestCaseError> {
        for (committed, compiled) in compile(before).iter().zip(compile(after)) {
            prop_assert_eq!(diff(committed, committed), Update::Unchanged);
            let mut same = committed.clone();
            stabilize_names(committed, &mut same);
            prop_assert_eq!(
                &same,
                committed,
                "stabilizing a ruleset against itself renamed"
            );

            let mut next = compiled.clone();
            stabilize_names(committed, &mut next);
            check_names(committed, &compiled, &next)?;
            let (flat_committed, flat_next) = (flatten(committed), flatten(&next));
            match diff(committed, &next) {
                Update::Unchanged => {
                    prop_assert_eq!(&flat_committed, &flat_next);
                    outcomes.borrow_mut().unchanged += 1;
                }
                Update::Elements(delta) => {
                    prop_assert!(!delta.is_empty() && delta.len() >= delta.sets.len());
                    prop_assert_eq!(&apply(&flat_committed, &delta), &flat_next);
                    // Deletions only of what is there, additions only of what is not.
                    for (name, changes) in &delta.sets {
                        let there = &flat_committed.elements[name];
                        prop_assert!(changes.delete.is_subset(there));
                        prop_assert!(changes.add.is_disjoint(there));
                    }
                    outcomes.borrow_mut().elements += 1;
                }
                Update::Replace => {
                    prop_assert_ne!(&flat_committed.skeleton, &flat_next.skeleton);
                    outcomes.borrow_mut().replace += 1;
                }
            }
        }
        Ok(())
    }

    #[test]
    fn applying_the_delta_to_the_committed_ruleset_gives_the_next_one() {
        let outcomes = RefCell::new(Outcomes::default());
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 1000,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let result = runner.run(&world_pair(), |(before, after)| {
            check_pair(&before, &after, &outcomes)
        });
        if let Err(error) = result {
            panic!("{error}");
        }
        // The property is not vacuous: of the 2,000 pairs (two nodes per
        // case), typically about 170 are element updates and 550 replacements.
        let outcomes = outcomes.into_inner();
        eprintln!("{outcomes:?}");
        assert!(
            outcomes.elements >= 100,
            "too few element updates: {outcomes:?}"
        );
        assert!(
            outcomes.replace >= 100,
            "too few replacements: {outcomes:?}"
        );
    }

    // ---------------------------------------------- agreement with text.rs

    /// The sets and maps of nft text as written by text.rs: name → elements.
    fn text_sets(text: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut sets = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut inside = false;
        let mut buffer = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed
                .strip_prefix("set ")
                .or_else(|| trimmed.strip_prefix("map "))
            {
                let name = rest.trim_end_matches(" {").to_string();
                sets.insert(name.clone(), BTreeSet::new());
                current = Some(name);
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("elements = {") {
                inside = true;
                buffer.clear();
                buffer.push_str(rest);
            } else if inside {
                buffer.push_str(trimmed);
            }
            if inside && buffer.ends_with('}') {
                inside = false;
                let elements = buffer.trim_end_matches('}');
                let set = sets.get_mut(current.as_ref().unwrap()).unwrap();
                set.extend(elements.split(',').map(|e| e.trim().to_string()));
            }
        }
        sets
    }

    /// The chains of nft text: name → the lines of the chain.
    fn text_chains(text: &str) -> BTreeMap<String, Vec<String>> {
        let mut chains = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("chain ") {
                let name = rest.trim_end_matches(" {").to_string();
                chains.insert(name.clone(), Vec::new());
                current = Some(name);
            } else if trimmed == "}" {
                current = None;
            } else if let Some(name) = &current {
                chains.get_mut(name).unwrap().push(trimmed.to_string());
            }
        }
        chains
    }

    fn check_flatten_agrees_with_text_and_json(ruleset: &NodeRuleset) {
        let flat = flatten(ruleset);
        // The text: the same sets and maps, the same elements, written alike.
        let text = crate::text::render(ruleset);
        let expected: BTreeMap<String, BTreeSet<String>> = flat
            .elements
            .iter()
            .map(|(name, elements)| {
                let written = elements.iter().map(|e| element_text(e, false)).collect();
                (name.clone(), written)
            })
            .collect();
        assert_eq!(text_sets(&text), expected, "{text}");
        assert_eq!(
            flat.skeleton.sets.keys().collect::<Vec<_>>(),
            flat.elements.keys().collect::<Vec<_>>()
        );
        // The same chains, with one lookup per set, then drop.
        let chains = text_chains(&text);
        assert_eq!(
            chains.keys().collect::<Vec<_>>(),
            flat.skeleton.chains.keys().collect::<Vec<_>>()
        );
        for (name, shape) in &flat.skeleton.chains {
            if let ChainShape::Class { sets, .. } = shape {
                let lines = &chains[name];
                assert_eq!(lines.len(), sets.len() + 1, "{name}: {lines:?}");
                for (line, kind) in lines.iter().zip(sets) {
                    assert!(line.contains(&format!("@{name}_{} return", kind.suffix())));
                }
                assert_eq!(lines.last().unwrap(), "drop");
            }
        }
        // The JSON: every set's elements encoded as json.rs encodes them.
        let document = crate::json::render(ruleset);
        let mut json_sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for command in document["nftables"].as_array().unwrap() {
            let Some(add) = command.get("add") else {
                continue;
            };
            for object in ["set", "map", "element"] {
                if let Some(object) = add.get(object) {
                    let set = json_sets
                        .entry(object["name"].as_str().unwrap().to_string())
                        .or_default();
                    if let Some(elements) = object.get("elem").and_then(Value::as_array) {
                        set.extend(elements.iter().map(Value::to_string));
                    }
                }
            }
        }
        let mut from_delta: BTreeMap<String, BTreeSet<String>> = flat
            .elements
            .keys()
            .map(|name| (name.clone(), BTreeSet::new()))
            .collect();
        let delta = ElementDelta {
            sets: flat
                .elements
                .iter()
                .map(|(name, elements)| {
                    let changes = SetDelta {
                        delete: BTreeSet::new(),
                        add: elements.clone(),
                    };
                    (name.clone(), changes)
                })
                .collect(),
        };
        for command in render_json_value(&delta)["nftables"].as_array().unwrap() {
            let element = &command["add"]["element"];
            from_delta
                .get_mut(element["name"].as_str().unwrap())
                .unwrap()
                .extend(
                    element["elem"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(Value::to_string),
                );
        }
        assert_eq!(json_sets, from_delta);
    }

    fn model(text: &str) -> Model {
        let mut loader = Loader::new();
        loader.load_str("input.yaml", text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        Model::new(loaded.cluster, Config::default())
    }

    fn repo_file(path: &str) -> String {
        std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn flatten_sees_what_text_and_json_write() {
        // Every element kind: dual stack, ipBlocks, endPort, SCTP, named ports.
        let model = model(&repo_file("testdata/nft/dual-stack.yaml"));
        let compiler = Compiler::new(&model).unwrap();
        for node in NODES {
            check_flatten_agrees_with_text_and_json(&compiler.compile(node).0);
        }
        // And random worlds, with host-network pods (local-node sets).
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&world_pair(), |(world, _)| {
                for ruleset in compile(&world) {
                    check_flatten_agrees_with_text_and_json(&ruleset);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn dispatch_maps_local_node_sets_and_all_four_chain_sets_are_declared_even_when_empty() {
        let ruleset = NodeRuleset {
            node: "n".into(),
            ingress_dispatch: vec![],
            egress_dispatch: vec![],
            local_node_addresses: IpSet::empty(),
            pod_addresses: IpSet::empty(),
            chains: vec![ClassChain {
                name: "ingress_c0_v4".into(),
                family: Family::V4,
                direction: Direction::Ingress,
                class: 0,
                members: vec!["x/a".into()],
                policies: vec!["x/deny".into()],
                any_protocol: IpSet::empty(),
                ports: vec![],
            }],
        };
        let flat = flatten(&ruleset);
        assert_eq!(
            flat.skeleton.sets.keys().collect::<Vec<_>>(),
            [
                "egress_v4",
                "egress_v6",
                "ingress_c0_v4_any_ip",
                "ingress_c0_v4_any_net",
                "ingress_c0_v4_port_ip",
                "ingress_c0_v4_port_net",
                "ingress_v4",
                "ingress_v6",
                "local_node_v4",
                "local_node_v6"
            ]
        );
        assert!(flat.elements.values().all(BTreeSet::is_empty));
        assert_eq!(
            flat.skeleton.chains["ingress_c0_v4"],
            ChainShape::Class {
                family: Family::V4,
                direction: Direction::Ingress,
                sets: SetKind::ALL.to_vec(),
            }
        );
        check_flatten_agrees_with_text_and_json(&ruleset);
        // A peer appearing is an element of a set that was already there.
        let mut allowing = ruleset.clone();
        allowing.chains[0].any_protocol = IpSet::from_range(ip("10.0.0.1"), ip("10.0.0.1"));
        let Update::Elements(delta) = diff(&ruleset, &allowing) else {
            panic!("expected an element update")
        };
        assert_eq!(delta.len(), 1);
    }

    // ------------------------------------------------------ stable names

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn chain(name: &str, policies: &[&str], members: &[&str]) -> ClassChain {
        ClassChain {
            name: name.into(),
            family: Family::V4,
            direction: Direction::Ingress,
            class: 0,
            members: members.iter().map(|m| m.to_string()).collect(),
            policies: policies.iter().map(|p| p.to_string()).collect(),
            any_protocol: IpSet::empty(),
            ports: vec![],
        }
    }

    fn ruleset(chains: Vec<ClassChain>) -> NodeRuleset {
        let ingress_dispatch = chains
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                    c.name.clone(),
                )
            })
            .collect();
        NodeRuleset {
            node: "n".into(),
            ingress_dispatch,
            egress_dispatch: vec![],
            local_node_addresses: IpSet::empty(),
            pod_addresses: IpSet::empty(),
            chains,
        }
    }

    fn names(ruleset: &NodeRuleset) -> Vec<&str> {
        ruleset.chains.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn chains_keep_their_committed_names_across_shifting_class_indices() {
        let committed = ruleset(vec![
            chain("ingress_c0_v4", &["x/a"], &["x/p1"]),
            chain("ingress_c1_v4", &["x/b", "x/a"], &["x/p2"]),
            chain("ingress_c2_v4", &["x/c"], &["x/p3"]),
        ]);
        // Class indices shifted: c0 is new, the others moved by one and
        // swapped; x/c's chain is gone, x/d's is new and would take a
        // committed name.
        let mut next = ruleset(vec![
            chain("ingress_c0_v4", &["x/d"], &["x/p4"]),
            chain("ingress_c1_v4", &["x/a", "x/b"], &["x/p2", "x/p5"]),
            chain("ingress_c2_v4", &["x/a"], &["x/p1"]),
            chain("ingress_c3_v4", &["x/e"], &["x/p6"]),
        ]);
        stabilize_names(&committed, &mut next);
        assert_eq!(
            names(&next),
            [
                "ingress_c0_v4_1",
                "ingress_c1_v4",
                "ingress_c0_v4",
                "ingress_c3_v4"
            ]
        );
        let targets: Vec<&str> = next
            .ingress_dispatch
            .iter()
            .map(|(_, c)| c.as_str())
            .collect();
        assert_eq!(targets, names(&next));
    }

    #[test]
    fn chains_with_the_same_policies_are_told_apart_by_their_pods() {
        let committed = ruleset(vec![
            chain("ingress_c0_v4", &["x/deny"], &["x/web"]),
            chain("ingress_c1_v4", &["x/deny"], &["x/db"]),
        ]);
        let mut next = ruleset(vec![
            chain("ingress_c0_v4", &["x/deny"], &["x/db"]),
            chain("ingress_c1_v4", &["x/deny"], &["x/web"]),
            chain("ingress_c2_v4", &["x/deny"], &["x/new"]),
        ]);
        stabilize_names(&committed, &mut next);
        assert_eq!(
            names(&next),
            ["ingress_c1_v4", "ingress_c0_v4", "ingress_c2_v4"]
        );
        // Pods changed too: no pairing is certain, so both get new names.
        let mut next = ruleset(vec![
            chain("ingress_c0_v4", &["x/deny"], &["x/db", "x/db-2"]),
            chain("ingress_c1_v4", &["x/deny"], &["x/cache"]),
        ]);
        stabilize_names(&committed, &mut next);
        assert_eq!(names(&next), ["ingress_c0_v4_1", "ingress_c1_v4_1"]);
    }

    #[test]
    fn fresh_names_are_valid_identifiers_and_avoid_the_base_chains() {
        let committed = ruleset(vec![]);
        let mut next = ruleset(vec![
            chain("forward", &["x/a"], &["x/p"]),
            chain("9-bad.name", &["x/b"], &["x/q"]),
        ]);
        stabilize_names(&committed, &mut next);
        assert_eq!(names(&next), ["forward_1", "c_9_bad_name"]);
    }

    // ------------------------------------------------------ rendering

    fn delta() -> ElementDelta {
        let mut delta = ElementDelta::default();
        delta.sets.insert(
            "ingress_v4".into(),
            SetDelta {
                delete: [Element::Jump {
                    address: ip("10.0.0.1"),
                    chain: "ingress_c0_v4".into(),
                }]
                .into(),
                add: [
                    Element::Jump {
                        address: ip("10.0.0.1"),
                        chain: "ingress_c1_v4".into(),
                    },
                    Element::Jump {
                        address: ip("10.0.0.2"),
                        chain: "ingress_c1_v4".into(),
                    },
                ]
                .into(),
            },
        );
        delta.sets.insert(
            "ingress_c1_v4_any_net".into(),
            SetDelta {
                delete: [Element::Range {
                    first: ip("192.0.2.0"),
                    last: ip("192.0.2.127"),
                }]
                .into(),
                add: [Element::Range {
                    first: ip("192.0.2.0"),
                    last: ip("192.0.2.200"),
                }]
                .into(),
            },
        );
        delta.sets.insert(
            "ingress_c1_v4_port_ip".into(),
            SetDelta {
                delete: BTreeSet::new(),
                add: [Element::AddressPort {
                    address: ip("10.0.0.9"),
                    protocol: Protocol::Tcp,
                    port: 80,
                }]
                .into(),
            },
        );
        delta.sets.insert(
            "egress_c2_v6_port_net".into(),
            SetDelta {
                delete: [Element::RangePorts {
                    first: ip("fd00::1"),
                    last: ip("fd00::1"),
                    protocol: Protocol::Udp,
                    low: 5000,
                    high: 5010,
                }]
                .into(),
                add: BTreeSet::new(),
            },
        );
        delta.sets.insert(
            "ingress_c1_v4_any_ip".into(),
            SetDelta {
                delete: [Element::Address(ip("10.0.0.7"))].into(),
                add: BTreeSet::new(),
            },
        );
        delta
    }

    #[test]
    fn a_delta_is_written_deletions_first_in_the_syntax_of_the_ruleset() {
        let delta = delta();
        assert_eq!(delta.len(), 8);
        assert_eq!(
            render_text(&delta),
            "delete element inet netpol egress_c2_v6_port_net { fd00::1 . udp . 5000-5010 }\n\
             delete element inet netpol ingress_c1_v4_any_ip { 10.0.0.7 }\n\
             delete element inet netpol ingress_c1_v4_any_net { 192.0.2.0/25 }\n\
             delete element inet netpol ingress_v4 { 10.0.0.1 }\n\
             add element inet netpol ingress_c1_v4_any_net { 192.0.2.0-192.0.2.200 }\n\
             add element inet netpol ingress_c1_v4_port_ip { 10.0.0.9 . tcp . 80 }\n\
             add element inet netpol ingress_v4 { 10.0.0.1 : jump ingress_c1_v4,\n\
             \t10.0.0.2 : jump ingress_c1_v4 }\n"
        );
        let element = |command: &str, name: &str, elem: Value| json!({command: {"element": {"family": "inet", "table": "netpol", "name": name, "elem": elem}}});
        assert_eq!(
            render_json_value(&delta),
            json!({"nftables": [
                element("delete", "egress_c2_v6_port_net",
                    json!([{"concat": ["fd00::1", "udp", {"range": [5000, 5010]}]}])),
                element("delete", "ingress_c1_v4_any_ip", json!(["10.0.0.7"])),
                element("delete", "ingress_c1_v4_any_net",
                    json!([{"prefix": {"addr": "192.0.2.0", "len": 25}}])),
                element("delete", "ingress_v4", json!(["10.0.0.1"])),
                element("add", "ingress_c1_v4_any_net",
                    json!([{"range": ["192.0.2.0", "192.0.2.200"]}])),
                element("add", "ingress_c1_v4_port_ip", json!([{"concat": ["10.0.0.9", "tcp", 80]}])),
                element("add", "ingress_v4", json!([
                    ["10.0.0.1", {"jump": {"target": "ingress_c1_v4"}}],
                    ["10.0.0.2", {"jump": {"target": "ingress_c1_v4"}}],
                ])),
            ]})
        );
        let text: Value = serde_json::from_str(&render_json(&delta)).unwrap();
        assert_eq!(text, render_json_value(&delta));
    }

    #[test]
    fn an_empty_delta_is_an_empty_transaction() {
        let delta = ElementDelta::default();
        assert!(delta.is_empty());
        assert_eq!(delta.len(), 0);
        assert_eq!(render_text(&delta), "");
        assert_eq!(render_json(&delta), r#"{"nftables":[]}"#);
    }

    // ------------------------------------------- a mid-size cluster

    /// True if `element` involves `address`.
    fn mentions(element: &Element, address: IpAddr) -> bool {
        let within =
            |first: &IpAddr, last: &IpAddr| IpSet::from_range(*first, *last).contains(address);
        match element {
            Element::Address(a)
            | Element::AddressPort { address: a, .. }
            | Element::Jump { address: a, .. } => *a == address,
            Element::Range { first, last } | Element::RangePorts { first, last, .. } => {
                within(first, last)
            }
        }
    }

    #[test]
    fn one_pod_address_change_in_a_synthetic_cluster_is_a_small_element_update() {
        let params = netpol_synth::Params {
            nodes: 4,
            ..netpol_synth::Params::scale(400, 300)
        };
        let before = netpol_synth::generate(&params);
        // An api pod of node-0000 (between the gateway and the cache in its
        // namespace's chain of tiers) gets a new address.
        let pod = before
            .split("\n---\n")
            .find(|document| {
                document.contains("\nkind: Pod\n")
                    && document.contains("nodeName: node-0000\n")
                    && document.contains("app.kubernetes.io/component: api\n")
            })
            .unwrap();
        let at = pod.find("  podIP: ").unwrap() + "  podIP: ".len();
        let old: IpAddr = pod[at..at + pod[at..].find('\n').unwrap()].parse().unwrap();
        let new = ip("10.254.254.254");
        assert!(!before.contains(&format!(": {new}\n")));
        let after = before.replace(&format!(": {old}\n"), &format!(": {new}\n"));
        assert_eq!(after.matches(&format!(": {new}\n")).count(), 2); // podIP, podIPs
        let (model_before, model_after) = (model(&before), model(&after));
        let compilers = (
            Compiler::new(&model_before).unwrap(),
            Compiler::new(&model_after).unwrap(),
        );
        for node in ["node-0000", "node-0001"] {
            let committed = compilers.0.compile(node).0;
            let mut next = compilers.1.compile(node).0;
            stabilize_names(&committed, &mut next);
            let Update::Elements(delta) = diff(&committed, &next) else {
                let (a, b) = (flatten(&committed).skeleton, flatten(&next).skeleton);
                for (name, shape) in &a.chains {
                    if b.chains.get(name) != Some(shape) {
                        eprintln!("committed {name}: {shape:?} vs {:?}", b.chains.get(name));
                    }
                }
                for (name, shape) in &b.chains {
                    if !a.chains.contains_key(name) {
                        eprintln!("next {name}: {shape:?}");
                    }
                }
                panic!(
                    "{node}: not an element update: {:?} {old} {new}",
                    diff(&committed, &next)
                );
            };
            let size = committed.element_count();
            eprintln!(
                "{node}: {} of {size} elements touched, in {:?}",
                delta.len(),
                delta.sets.keys().collect::<Vec<_>>()
            );
            assert!(delta.len() >= 2, "{node}: {delta:?}");
            assert!(delta.len() * 50 < size, "{node}: {} of {size}", delta.len());
            for changes in delta.sets.values() {
                assert!(
                    changes.delete.iter().all(|e| mentions(e, old)),
                    "{changes:?}"
                );
                assert!(changes.add.iter().all(|e| mentions(e, new)), "{changes:?}");
            }
            if node == "node-0000" {
                // The pod's own dispatch entries moved.
                assert!(delta.sets.contains_key("ingress_v4"));
            }
            assert_eq!(apply(&flatten(&committed), &delta), flatten(&next));
        }
    }
}
