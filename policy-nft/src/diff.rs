//! Incremental updates: what changed between the ruleset a node runs and the
//! next one, as element additions and deletions when that is all that changed.
//!
//! Loading a whole ruleset ([`crate::text::render`]) replaces the table in
//! one transaction, which is always right but rewrites every set and map.
//! When the cluster changes a little (a pod starts, gets a new address,
//! changes labels; a policy gains a peer), often only elements change: an
//! isolated pod's address, a peer's group, a group's (local pod, port)
//! pairs. [`diff`] finds out:
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
//! The structure of a ruleset is fixed but for the number of peer group
//! chains per direction and family: every group chain has the same three
//! sets and rules. The compiler numbers groups afresh at each compilation,
//! so call [`stabilize_names`] on the next ruleset first: it gives its
//! groups the names of the committed groups that resemble them most, keeps
//! unused committed groups as empty spares, and adds spares when the number
//! of groups grows, so that a group appearing later is an element update.
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
//! concatenated interval sets (`_port_ranges`, nftables' pipapo backend):
//! there the kernel deletes whichever element holds the *start* of the
//! element named (seen on Linux 6.18 with nft 1.0.6). Their elements are
//! disjoint, so against the committed table that is the element named;
//! against a table that drifted, a delta may succeed and still not give the
//! next ruleset. A failure is therefore no complete drift check: reload the
//! whole ruleset from time to time, or compare `nft list table inet netpol`.
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
use std::sync::Arc;

use nftables::expr::Expression;
use nftables::schema::{NfCmd, NfListObject, NfObject};
use nftables::types::NfFamily;
use policy_core::Direction;
use policy_core::ipset::Family;
use policy_core::ports::Protocol;
use serde_json::Value;

use crate::json::{self, Command, Document, address_expression, port_element};
use crate::ruleset::{
    FAMILY, Interval, NodeRuleset, PeerGroup, SetKind, Side, TABLE, family_suffix,
};
use crate::text::{port_range, protocol_keyword};

// ---------------------------------------------------------------------------
// Stable group names

/// Spare groups kept when a side shrinks, at most this many beyond its
/// groups in use (more, and the next full load drops them).
const SPARE_SLACK: usize = 16;

/// Spare groups added when a side outgrows the committed one: a quarter of
/// its groups, and at least this many.
const SPARE_MIN: usize = 4;

/// Renames the peer groups of `next` so that each takes the name of the
/// committed group of the same side it resembles most, and pads `next` with
/// empty spare groups, so that a recompiled ruleset keeps the committed
/// structure whenever it can. Only names change and empty groups are added:
/// what `next` allows stays the same (no peer belongs to a spare group).
///
/// Per side (direction and family), group 0 keeps its fixed name; the
/// others are paired with committed groups:
/// 1. a group with the same contents (the same local pods, protocols and
///    ports) as a committed one takes its name;
/// 2. then, greedily, the pair sharing the most peers (addresses and ranges);
/// 3. then the remaining groups take the remaining committed names, in order.
///
/// When `next` has fewer groups than `committed`, the unused committed names
/// become empty spares (up to [`SPARE_SLACK`] beyond the groups in use), so
/// the structure is the same. When it has more, the structure must change
/// anyway: the extra groups get fresh names, and a quarter more empty
/// spares (at least [`SPARE_MIN`]) are added for the groups to come.
pub fn stabilize_names(committed: &NodeRuleset, next: &mut NodeRuleset) {
    for side in &mut next.sides {
        let Some(old) = committed
            .sides
            .iter()
            .find(|s| s.direction == side.direction && s.family == side.family)
        else {
            continue;
        };
        stabilize_side(old, side);
    }
}

/// A group's elements, names aside.
type Contents<'a> = (
    &'a [IpAddr],
    &'a [(IpAddr, Protocol, u16)],
    &'a [(IpAddr, Protocol, u16, u16)],
);

fn stabilize_side(committed: &Side, next: &mut Side) {
    let old = &committed.groups;
    let mut names: Vec<Option<String>> = vec![None; next.groups.len()];
    names[0] = Some(next.others_name());
    let mut taken = vec![false; old.len()];
    taken[0] = true;
    // 1. Same contents.
    let mut by_contents: HashMap<Contents<'_>, usize> = HashMap::new();
    for (index, group) in old.iter().enumerate().skip(1) {
        by_contents
            .entry((&group.any, &group.ports, &group.port_ranges))
            .or_insert(index);
    }
    for (index, group) in next.groups.iter().enumerate().skip(1) {
        if let Some(&old_index) =
            by_contents.get(&(&group.any[..], &group.ports[..], &group.port_ranges[..]))
            && !taken[old_index]
        {
            taken[old_index] = true;
            names[index] = Some(old[old_index].name.clone());
        }
    }
    // 2. Most shared peers.
    if names.iter().any(Option::is_none) && taken.iter().any(|t| !t) {
        let old_addresses: HashMap<IpAddr, usize> =
            committed.peer_addresses.iter().copied().collect();
        let old_ranges: HashMap<(IpAddr, IpAddr), usize> = committed
            .peer_ranges
            .iter()
            .map(|&(first, last, group)| ((first, last), group))
            .collect();
        let mut shared: HashMap<(usize, usize), usize> = HashMap::new();
        let pairs = next
            .peer_addresses
            .iter()
            .filter_map(|(address, group)| Some((*group, *old_addresses.get(address)?)))
            .chain(next.peer_ranges.iter().filter_map(|&(first, last, group)| {
                Some((group, *old_ranges.get(&(first, last))?))
            }));
        for (group, old_group) in pairs {
            if names[group].is_none() && !taken[old_group] {
                *shared.entry((group, old_group)).or_default() += 1;
            }
        }
        let mut candidates: Vec<((usize, usize), usize)> = shared.into_iter().collect();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for ((group, old_group), _) in candidates {
            if names[group].is_none() && !taken[old_group] {
                taken[old_group] = true;
                names[group] = Some(old[old_group].name.clone());
            }
        }
    }
    // 3. The rest, in order; then fresh names.
    let mut free = (0..old.len()).filter(|&i| !taken[i]);
    let mut used: HashSet<String> = old.iter().map(|g| g.name.clone()).collect();
    let prefix = next.chain_name();
    let mut fresh = 1;
    let mut fresh_name = |used: &mut HashSet<String>| loop {
        let name = format!("{prefix}_g{fresh}");
        fresh += 1;
        if used.insert(name.clone()) {
            return name;
        }
    };
    for name in names.iter_mut().filter(|n| n.is_none()) {
        *name = Some(match free.next() {
            Some(index) => old[index].name.clone(),
            None => fresh_name(&mut used),
        });
    }
    for (group, name) in next.groups.iter_mut().zip(names) {
        group.name = name.expect("every group is named");
    }
    // Spares.
    let in_use = next.groups.len();
    let spares: Vec<String> = if in_use <= old.len() {
        let unused: Vec<String> = free.map(|index| old[index].name.clone()).collect();
        if unused.len() <= in_use + SPARE_SLACK {
            unused
        } else {
            Vec::new()
        }
    } else {
        let count = (in_use / 4).max(SPARE_MIN);
        (0..count).map(|_| fresh_name(&mut used)).collect()
    };
    next.groups.extend(spares.into_iter().map(|name| PeerGroup {
        name,
        ..PeerGroup::default()
    }));
}

// ---------------------------------------------------------------------------
// The flattened view

/// What a named set or map of the table holds (its declaration, without
/// elements). Every one is declared, also when empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetShape {
    /// The node's own addresses (`local_node_v4`, ...): an interval set.
    LocalNode {
        /// The address family.
        family: Family,
    },
    /// The isolated local pod addresses of a side (`ingress_v4_pods`, ...).
    Pods {
        /// Ingress or egress.
        direction: Direction,
        /// The address family.
        family: Family,
    },
    /// A side's verdict map from peer pod address to group chain
    /// (`ingress_v4_peers`, ...).
    Peers {
        /// Ingress or egress.
        direction: Direction,
        /// The address family.
        family: Family,
    },
    /// A side's interval verdict map from peer range to group chain
    /// (`ingress_v4_peer_ranges`, ...).
    PeerRanges {
        /// Ingress or egress.
        direction: Direction,
        /// The address family.
        family: Family,
    },
    /// One of a group chain's three sets.
    Group {
        /// Ingress or egress.
        direction: Direction,
        /// The address family.
        family: Family,
        /// Which of the three.
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
    /// A side's chain: the two peer map lookups, then `goto` group 0.
    Side {
        /// Ingress or egress.
        direction: Direction,
        /// The address family.
        family: Family,
        /// The name of group 0's chain.
        others: String,
    },
    /// A group chain: one lookup per set, in [`SetKind::ALL`] order, each
    /// returning on a match, then `drop`.
    Group {
        /// Ingress or egress.
        direction: Direction,
        /// The address family.
        family: Family,
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
    /// An address, in a hash set ([`SetShape::Pods`], [`SetKind::Any`]).
    Address(IpAddr),
    /// An address interval `first..=last` (possibly one address), in the
    /// local-node sets. Written as [`Interval::of`] writes it: address,
    /// prefix or `first-last`.
    Range {
        /// The first address.
        first: IpAddr,
        /// The last address.
        last: IpAddr,
    },
    /// `address . protocol . port`, in a hash set ([`SetKind::Port`]).
    AddressPort {
        /// The local address.
        address: IpAddr,
        /// The protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
    },
    /// `address . protocol . first port-last port`, in an interval set
    /// ([`SetKind::PortRange`]).
    AddressPortRange {
        /// The local address.
        address: IpAddr,
        /// The protocol.
        protocol: Protocol,
        /// The first port.
        low: u16,
        /// The last port.
        high: u16,
    },
    /// A peer map entry: `address : goto chain`.
    Goto {
        /// The peer address.
        address: IpAddr,
        /// The group chain (shared: a map holds many entries per chain).
        chain: Arc<str>,
    },
    /// A peer range map entry: `range : goto chain`.
    RangeGoto {
        /// The first peer address.
        first: IpAddr,
        /// The last peer address.
        last: IpAddr,
        /// The group chain.
        chain: Arc<str>,
    },
}

/// A ruleset as its structure and the elements of each named set and map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatRuleset {
    /// The structure.
    pub skeleton: Skeleton,
    /// The elements of every set and map of the skeleton, by name (an empty
    /// set for one without elements).
    pub elements: BTreeMap<String, BTreeSet<Element>>,
}

/// The elements of a group's set of `kind`.
fn group_set(group: &PeerGroup, kind: SetKind) -> BTreeSet<Element> {
    match kind {
        SetKind::Any => group.any.iter().map(|&a| Element::Address(a)).collect(),
        SetKind::Port => group
            .ports
            .iter()
            .map(|&(address, protocol, port)| Element::AddressPort {
                address,
                protocol,
                port,
            })
            .collect(),
        SetKind::PortRange => group
            .port_ranges
            .iter()
            .map(
                |&(address, protocol, low, high)| Element::AddressPortRange {
                    address,
                    protocol,
                    low,
                    high,
                },
            )
            .collect(),
    }
}

/// The ruleset as [`crate::text::render`] declares it: its skeleton and the
/// elements of its sets and maps.
pub fn flatten(ruleset: &NodeRuleset) -> FlatRuleset {
    let mut sets = BTreeMap::new();
    let mut elements: BTreeMap<String, BTreeSet<Element>> = BTreeMap::new();
    let mut chains = BTreeMap::new();
    for hook in BASE_CHAINS {
        chains.insert(hook.to_string(), ChainShape::Base { hook });
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
    for side in &ruleset.sides {
        let (direction, family) = (side.direction, side.family);
        let chain_names: Vec<Arc<str>> = (side.groups.iter())
            .map(|group| Arc::from(group.name.as_str()))
            .collect();
        sets.insert(side.pods_set(), SetShape::Pods { direction, family });
        elements.insert(
            side.pods_set(),
            side.isolated_addresses()
                .into_iter()
                .map(Element::Address)
                .collect(),
        );
        sets.insert(side.peers_map(), SetShape::Peers { direction, family });
        elements.insert(
            side.peers_map(),
            side.peer_addresses
                .iter()
                .map(|&(address, group)| Element::Goto {
                    address,
                    chain: Arc::clone(&chain_names[group]),
                })
                .collect(),
        );
        sets.insert(
            side.peer_ranges_map(),
            SetShape::PeerRanges { direction, family },
        );
        elements.insert(
            side.peer_ranges_map(),
            side.peer_ranges
                .iter()
                .map(|&(first, last, group)| Element::RangeGoto {
                    first,
                    last,
                    chain: Arc::clone(&chain_names[group]),
                })
                .collect(),
        );
        chains.insert(
            side.chain_name(),
            ChainShape::Side {
                direction,
                family,
                others: side.groups[0].name.clone(),
            },
        );
        for group in &side.groups {
            for kind in SetKind::ALL {
                let name = group.set_name(kind);
                sets.insert(
                    name.clone(),
                    SetShape::Group {
                        direction,
                        family,
                        kind,
                    },
                );
                elements.insert(name, group_set(group, kind));
            }
            chains.insert(group.name.clone(), ChainShape::Group { direction, family });
        }
    }
    FlatRuleset {
        skeleton: Skeleton { sets, chains },
        elements,
    }
}

/// The base chains.
const BASE_CHAINS: [&str; 2] = ["forward", "input"];

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
        Element::AddressPortRange {
            address,
            protocol,
            low,
            high,
        } => format!(
            "{address} . {} . {}",
            protocol_keyword(*protocol),
            port_range(*low, *high)
        ),
        Element::Goto { address, .. } if deletion => address.to_string(),
        Element::Goto { address, chain } => format!("{address} : goto {chain}"),
        Element::RangeGoto { first, last, .. } if deletion => {
            Interval::of(*first, *last).to_string()
        }
        Element::RangeGoto { first, last, chain } => {
            format!("{} : goto {chain}", Interval::of(*first, *last))
        }
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

/// An element's key as [`crate::json`] writes it (a map entry's key alone).
fn element_expression(element: &Element) -> Expression<'static> {
    match element {
        Element::Address(address) | Element::Goto { address, .. } => {
            address_expression(*address, *address)
        }
        Element::Range { first, last } | Element::RangeGoto { first, last, .. } => {
            address_expression(*first, *last)
        }
        Element::AddressPort {
            address,
            protocol,
            port,
        } => port_element(*address, *protocol, *port, *port),
        Element::AddressPortRange {
            address,
            protocol,
            low,
            high,
        } => port_element(*address, *protocol, *low, *high),
    }
}

fn element_command<'a>(name: &str, elements: &'a BTreeSet<Element>, deletion: bool) -> Command<'a> {
    let target = |element: &'a Element| match element {
        Element::Goto { chain, .. } | Element::RangeGoto { chain, .. } => Some(chain),
        _ => None,
    };
    if !deletion && elements.iter().any(|e| target(e).is_some()) {
        // Verdict map entries: [key, verdict], as crate::json writes them.
        // (A map holds only such entries.)
        let entries = elements
            .iter()
            .filter_map(|element| {
                Some(json::goto_element(
                    element_expression(element),
                    target(element)?,
                ))
            })
            .collect();
        return json::add_goto_elements(name.to_string(), entries);
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

fn document(delta: &ElementDelta) -> Document<'_> {
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
    use crate::ruleset::IsolatedClass;
    use serde_json::json;

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

    /// What a side allows, names aside: its isolated addresses, and per
    /// peer address, peer range and group 0, the contents of its group.
    type Meaning = (
        Vec<IpAddr>,
        BTreeMap<IpAddr, PeerGroup>,
        BTreeMap<(IpAddr, IpAddr), PeerGroup>,
        PeerGroup,
    );

    fn meaning(side: &Side) -> Meaning {
        let contents = |group: usize| PeerGroup {
            name: String::new(),
            ..side.groups[group].clone()
        };
        (
            side.isolated_addresses(),
            side.peer_addresses
                .iter()
                .map(|&(address, group)| (address, contents(group)))
                .collect(),
            side.peer_ranges
                .iter()
                .map(|&(first, last, group)| ((first, last), contents(group)))
                .collect(),
            contents(0),
        )
    }

    /// What stabilization promises: unique, valid names, group 0's name
    /// fixed, spare groups empty and unused, and the same meaning.
    fn check_stabilized(before: &NodeRuleset, after: &NodeRuleset) -> Result<(), TestCaseError> {
        prop_assert_eq!(&before.local_node_addresses, &after.local_node_addresses);
        prop_assert_eq!(before.sides.len(), after.sides.len());
        for (b, a) in before.sides.iter().zip(&after.sides) {
            prop_assert_eq!(&b.isolated, &a.isolated);
            prop_assert_eq!(meaning(b), meaning(a));
            prop_assert_eq!(&a.groups[0].name, &a.others_name());
            let names: HashSet<&str> = a.groups.iter().map(|g| g.name.as_str()).collect();
            prop_assert_eq!(names.len(), a.groups.len(), "duplicate group names");
            for group in &a.groups {
                prop_assert!(
                    group.name.starts_with(&a.chain_name())
                        && group
                            .name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{} is no group name",
                    group.name
                );
            }
            // Groups past the compiled ones are empty spares.
            for spare in &a.groups[b.groups.len()..] {
                prop_assert!(spare.is_empty());
            }
            prop_assert_eq!(&b.peer_addresses, &a.peer_addresses);
            prop_assert_eq!(&b.peer_ranges, &a.peer_ranges);
        }
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
                "stabilizing a ruleset against itself changed it"
            );

            let mut next = compiled.clone();
            stabilize_names(committed, &mut next);
            check_stabilized(&compiled, &next)?;
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
        // case), typically about 630 are element updates and 80 replacements
        // (a side that gains peer groups beyond its spares).
        let outcomes = outcomes.into_inner();
        eprintln!("{outcomes:?}");
        assert!(
            outcomes.elements >= 100,
            "too few element updates: {outcomes:?}"
        );
        assert!(outcomes.replace >= 40, "too few replacements: {outcomes:?}");
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
        // The same chains: a group chain has one lookup per set, then drop;
        // a side's chain its two map lookups, then goto group 0.
        let chains = text_chains(&text);
        assert_eq!(
            chains.keys().collect::<Vec<_>>(),
            flat.skeleton.chains.keys().collect::<Vec<_>>()
        );
        for (name, shape) in &flat.skeleton.chains {
            let lines = &chains[name];
            match shape {
                ChainShape::Group { .. } => {
                    assert_eq!(lines.len(), SetKind::ALL.len() + 1, "{name}: {lines:?}");
                    for (line, kind) in lines.iter().zip(SetKind::ALL) {
                        assert!(line.contains(&format!("@{name}_{} return", kind.suffix())));
                    }
                    assert_eq!(lines.last().unwrap(), "drop");
                }
                ChainShape::Side { others, .. } => {
                    assert_eq!(lines.len(), 3, "{name}: {lines:?}");
                    assert!(lines[0].ends_with(&format!("vmap @{name}_peers")));
                    assert!(lines[1].ends_with(&format!("vmap @{name}_peer_ranges")));
                    assert_eq!(lines[2], format!("goto {others}"));
                }
                ChainShape::Base { .. } => {}
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn empty_ruleset() -> NodeRuleset {
        NodeRuleset {
            node: "n".into(),
            local_node_addresses: IpSet::empty(),
            sides: Side::ORDER
                .iter()
                .map(|&(direction, family)| Side::empty(direction, family))
                .collect(),
        }
    }

    /// Group `name` allowing TCP `port` to each of `locals`.
    fn group(name: &str, locals: &[&str], port: u16) -> PeerGroup {
        PeerGroup {
            name: name.into(),
            ports: locals
                .iter()
                .map(|l| (ip(l), Protocol::Tcp, port))
                .collect(),
            ..PeerGroup::default()
        }
    }

    /// An ingress IPv4 side isolating 10.0.0.1 and 10.0.0.2, with these
    /// groups after group 0 and these peers (address, group index).
    fn ingress_side(groups: Vec<PeerGroup>, peers: &[(&str, usize)]) -> NodeRuleset {
        let mut ruleset = empty_ruleset();
        let side = &mut ruleset.sides[0];
        side.isolated.push(IsolatedClass {
            class: 0,
            members: vec!["x/a".into(), "x/b".into()],
            addresses: vec![ip("10.0.0.1"), ip("10.0.0.2")],
            policies: vec!["x/deny".into()],
        });
        side.groups.extend(groups);
        side.peer_addresses = peers.iter().map(|&(a, g)| (ip(a), g)).collect();
        side.peer_addresses.sort();
        ruleset
    }

    fn group_names(ruleset: &NodeRuleset) -> Vec<&str> {
        ruleset.sides[0]
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect()
    }

    #[test]
    fn every_map_set_and_chain_is_declared_even_when_empty() {
        let ruleset = empty_ruleset();
        let flat = flatten(&ruleset);
        let sets: Vec<&String> = flat.skeleton.sets.keys().collect();
        assert_eq!(sets.len(), 2 + 4 * (3 + 3));
        for name in [
            "local_node_v4",
            "ingress_v4_pods",
            "ingress_v4_peers",
            "ingress_v4_peer_ranges",
            "ingress_v4_others_ports",
            "ingress_v4_others_any",
            "egress_v6_others_port_ranges",
        ] {
            assert!(flat.skeleton.sets.contains_key(name), "{name}: {sets:?}");
        }
        assert!(flat.elements.values().all(BTreeSet::is_empty));
        assert_eq!(
            flat.skeleton.chains["ingress_v4"],
            ChainShape::Side {
                direction: Direction::Ingress,
                family: Family::V4,
                others: "ingress_v4_others".into(),
            }
        );
        assert_eq!(flat.skeleton.chains.len(), 2 + 4 * 2);
        check_flatten_agrees_with_text_and_json(&ruleset);
        // A pod isolated and a peer allowed: elements of sets already there.
        let mut allowing = ingress_side(vec![], &[]);
        allowing.sides[0].groups[0] = group("ingress_v4_others", &["10.0.0.1"], 80);
        check_flatten_agrees_with_text_and_json(&allowing);
        let Update::Elements(delta) = diff(&ruleset, &allowing) else {
            panic!("expected an element update")
        };
        assert_eq!(delta.len(), 3);
    }

    // ------------------------------------------------------ stable names

    #[test]
    fn groups_take_the_names_of_committed_groups_by_contents_then_by_peers() {
        let committed = ingress_side(
            vec![
                group("ingress_v4_g1", &["10.0.0.1"], 80),
                group("ingress_v4_g2", &["10.0.0.2"], 80),
                group("ingress_v4_g3", &["10.0.0.1"], 443),
            ],
            &[
                ("10.1.0.1", 1),
                ("10.1.0.2", 2),
                ("10.1.0.3", 3),
                ("10.1.0.4", 3),
            ],
        );
        // Compiled afresh: the groups are numbered otherwise, g3 now also
        // allows 10.0.0.2 (same peers), and one group is new.
        let mut next = ingress_side(
            vec![
                group("ingress_v4_g1", &["10.0.0.2"], 80),
                group("ingress_v4_g2", &["10.0.0.1", "10.0.0.2"], 443),
                group("ingress_v4_g3", &["10.0.0.1"], 80),
                group("ingress_v4_g4", &["10.0.0.1"], 22),
            ],
            &[
                ("10.1.0.2", 1),
                ("10.1.0.3", 2),
                ("10.1.0.4", 2),
                ("10.1.0.1", 3),
                ("10.1.0.5", 4),
            ],
        );
        let compiled = next.clone();
        stabilize_names(&committed, &mut next);
        // Four groups where three were: a fresh name, and four spares (a
        // quarter of the five groups, at least four) for groups to come.
        assert_eq!(
            group_names(&next),
            [
                "ingress_v4_others",
                "ingress_v4_g2",
                "ingress_v4_g3",
                "ingress_v4_g1",
                "ingress_v4_g4",
                "ingress_v4_g5",
                "ingress_v4_g6",
                "ingress_v4_g7",
                "ingress_v4_g8",
            ]
        );
        check_stabilized(&compiled, &next).unwrap();
        assert_eq!(diff(&committed, &next), Update::Replace);
        // A fifth group later takes a spare: an element update.
        let mut later = compiled.clone();
        later.sides[0]
            .groups
            .push(group("ingress_v4_g5", &["10.0.0.2"], 22));
        later.sides[0].peer_addresses.push((ip("10.1.0.6"), 5));
        let committed = next;
        let mut next = later.clone();
        stabilize_names(&committed, &mut next);
        check_stabilized(&later, &next).unwrap();
        assert_eq!(next.sides[0].groups.len(), committed.sides[0].groups.len());
        let Update::Elements(delta) = diff(&committed, &next) else {
            panic!("expected an element update")
        };
        assert_eq!(delta.len(), 2, "{delta:?}");
    }

    #[test]
    fn a_side_that_shrinks_keeps_its_unused_groups_as_spares() {
        let committed = ingress_side(
            vec![
                group("ingress_v4_g1", &["10.0.0.1"], 80),
                group("ingress_v4_g2", &["10.0.0.2"], 80),
            ],
            &[("10.1.0.1", 1), ("10.1.0.2", 2)],
        );
        let compiled = ingress_side(
            vec![group("ingress_v4_g1", &["10.0.0.2"], 80)],
            &[("10.1.0.2", 1)],
        );
        let mut next = compiled.clone();
        stabilize_names(&committed, &mut next);
        check_stabilized(&compiled, &next).unwrap();
        assert_eq!(
            group_names(&next),
            ["ingress_v4_others", "ingress_v4_g2", "ingress_v4_g1"]
        );
        let Update::Elements(delta) = diff(&committed, &next) else {
            panic!("expected an element update")
        };
        // 10.1.0.1 leaves its map, g1's set empties.
        assert_eq!(delta.len(), 2, "{delta:?}");
    }

    // ------------------------------------------------------ rendering

    fn delta() -> ElementDelta {
        let mut delta = ElementDelta::default();
        delta.sets.insert(
            "ingress_v4_peers".into(),
            SetDelta {
                delete: [Element::Goto {
                    address: ip("10.0.0.1"),
                    chain: "ingress_v4_g1".into(),
                }]
                .into(),
                add: [
                    Element::Goto {
                        address: ip("10.0.0.1"),
                        chain: "ingress_v4_g2".into(),
                    },
                    Element::Goto {
                        address: ip("10.0.0.2"),
                        chain: "ingress_v4_g2".into(),
                    },
                ]
                .into(),
            },
        );
        delta.sets.insert(
            "ingress_v4_peer_ranges".into(),
            SetDelta {
                delete: [Element::RangeGoto {
                    first: ip("192.0.2.0"),
                    last: ip("192.0.2.127"),
                    chain: "ingress_v4_g1".into(),
                }]
                .into(),
                add: [Element::RangeGoto {
                    first: ip("192.0.2.0"),
                    last: ip("192.0.2.200"),
                    chain: "ingress_v4_g1".into(),
                }]
                .into(),
            },
        );
        delta.sets.insert(
            "ingress_v4_g2_ports".into(),
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
            "egress_v6_g2_port_ranges".into(),
            SetDelta {
                delete: [Element::AddressPortRange {
                    address: ip("fd00::1"),
                    protocol: Protocol::Udp,
                    low: 5000,
                    high: 5010,
                }]
                .into(),
                add: BTreeSet::new(),
            },
        );
        delta.sets.insert(
            "ingress_v4_pods".into(),
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
            "delete element inet netpol egress_v6_g2_port_ranges { fd00::1 . udp . 5000-5010 }\n\
             delete element inet netpol ingress_v4_peer_ranges { 192.0.2.0/25 }\n\
             delete element inet netpol ingress_v4_peers { 10.0.0.1 }\n\
             delete element inet netpol ingress_v4_pods { 10.0.0.7 }\n\
             add element inet netpol ingress_v4_g2_ports { 10.0.0.9 . tcp . 80 }\n\
             add element inet netpol ingress_v4_peer_ranges { 192.0.2.0-192.0.2.200 : goto ingress_v4_g1 }\n\
             add element inet netpol ingress_v4_peers { 10.0.0.1 : goto ingress_v4_g2,\n\
             \t10.0.0.2 : goto ingress_v4_g2 }\n"
        );
        let element = |command: &str, name: &str, elem: Value| json!({command: {"element": {"family": "inet", "table": "netpol", "name": name, "elem": elem}}});
        assert_eq!(
            render_json_value(&delta),
            json!({"nftables": [
                element("delete", "egress_v6_g2_port_ranges",
                    json!([{"concat": ["fd00::1", "udp", {"range": [5000, 5010]}]}])),
                element("delete", "ingress_v4_peer_ranges",
                    json!([{"prefix": {"addr": "192.0.2.0", "len": 25}}])),
                element("delete", "ingress_v4_peers", json!(["10.0.0.1"])),
                element("delete", "ingress_v4_pods", json!(["10.0.0.7"])),
                element("add", "ingress_v4_g2_ports", json!([{"concat": ["10.0.0.9", "tcp", 80]}])),
                element("add", "ingress_v4_peer_ranges", json!([
                    [{"range": ["192.0.2.0", "192.0.2.200"]}, {"goto": {"target": "ingress_v4_g1"}}],
                ])),
                element("add", "ingress_v4_peers", json!([
                    ["10.0.0.1", {"goto": {"target": "ingress_v4_g2"}}],
                    ["10.0.0.2", {"goto": {"target": "ingress_v4_g2"}}],
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
            | Element::AddressPortRange { address: a, .. }
            | Element::Goto { address: a, .. } => *a == address,
            Element::Range { first, last } | Element::RangeGoto { first, last, .. } => {
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
                // The pod's own isolation entries moved.
                assert!(delta.sets.contains_key("ingress_v4_pods"));
            }
            assert_eq!(apply(&flatten(&committed), &delta), flatten(&next));
        }
    }
}
