//! Keeping a [`Model`] current as the cluster changes, without rebuilding it.
//!
//! The agent sees one pod or policy change at a time, on clusters where a
//! rebuild costs seconds. [`Model::apply`] touches only what a change
//! reaches:
//!
//! - **A pod whose class already exists** (another replica, a new IP) joins
//!   or leaves that class's member list. Selector results, peer sets and
//!   policy lists are per class, so nothing else moves.
//! - **A pod with a new class key** (new labels, a StatefulSet's own
//!   `pod-name`) appends a class. Only the rules that could match it are
//!   evaluated against it: those of policies in its namespace, and the few
//!   whose peers reach across namespaces (namespaceSelector, ipBlock, no
//!   peers). Likewise only the policies of its namespace can select it.
//! - **A class whose last member leaves** stays as an empty *tombstone*:
//!   class ids never move, so no bit set is renumbered. Its bits are cleared
//!   from the peer sets that held them, so equal peer sets stay equal.
//!   Tombstones are compacted by a rebuild once they are a quarter of all
//!   classes.
//! - **A policy change** recompiles that policy's rules only, evaluating its
//!   selectors against the classes of the namespaces they can reach.
//!
//! Endpoint and policy ids stay what a fresh [`Model::new`] would give
//! (the cluster's sorted order), so every answer is the same; class ids
//! differ, and `tests/incremental.rs` proves the answers equal on random
//! event sequences. Changes that move the class partition of many pods at
//! once rebuild instead ([`RebuildReason`]), and so does any change to the
//! admin-tier policies, which are rare.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};

use super::{
    ClassId, ClassKey, CompiledRule, Model, PeerSet, PodClass, PolicyId, RulePorts,
    direction_index, node_addresses,
};
use crate::admin::AdminPolicy;
use crate::bitset::BitSet;
use crate::cluster::{
    Cluster, Endpoint, EndpointId, EndpointKind, EndpointSlice, Ingress, IngressClass, Namespace,
    Node, Service,
};
use crate::config::{Config, IpBlockMode};
use crate::ipset::IpSet;
use crate::policy::{Direction, NamespaceScope, Peer, Policy, Rule};

/// One change to the cluster, for [`Model::apply`].
#[derive(Clone, Debug)]
pub enum Change {
    /// A pod or workload appeared or changed (the same namespace, name and
    /// kind is the same endpoint).
    UpsertEndpoint(Endpoint),
    /// A pod or workload went away.
    RemoveEndpoint {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Pod, or the workload kind.
        kind: EndpointKind,
    },
    /// A NetworkPolicy appeared or changed (by namespace and name).
    UpsertPolicy(Policy),
    /// A NetworkPolicy went away.
    RemovePolicy {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// All admin-tier policies (ANP, BANP, CNP), in
    /// [`Cluster::admin_policies`]' order. Always applied by a rebuild
    /// ([`RebuildReason::AdminPolicies`]): they change rarely.
    AdminPolicies(Vec<AdminPolicy>),
    /// All namespaces, sorted by name.
    Namespaces(Vec<Namespace>),
    /// All nodes, sorted by name.
    Nodes(Vec<Node>),
    /// The objects the model reads only when asked: Services, EndpointSlices,
    /// Ingresses and IngressClasses, each sorted as in [`Cluster`].
    ServiceObjects {
        /// Services.
        services: Vec<Service>,
        /// EndpointSlices.
        endpoint_slices: Vec<EndpointSlice>,
        /// Ingresses.
        ingresses: Vec<Ingress>,
        /// IngressClasses.
        ingress_classes: Vec<IngressClass>,
    },
}

/// Why [`Model::apply`] rebuilt the model instead of updating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebuildReason {
    /// A namespace's labels changed, or a namespace holding pods came or
    /// went: any namespaceSelector may now match differently.
    Namespaces,
    /// With ipBlocks matching pod IPs, the set of distinct ipBlocks changed:
    /// pods split or merge into classes by the blocks holding their IPs.
    IpBlocks,
    /// Empty classes had become a quarter of all classes.
    Compaction,
    /// So much changed at once that a rebuild is cheaper.
    ManyChanges,
    /// An admin-tier policy came, changed or went; or admin-tier policies
    /// exist. The tiers' subject and peer sets are not updated in place
    /// (yet): while there are any, every change rebuilds.
    AdminPolicies,
}

/// What one [`Model::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Endpoint changes applied in place.
    pub endpoints: usize,
    /// Policy changes applied in place.
    pub policies: usize,
    /// Classes created.
    pub classes_added: usize,
    /// Classes that lost their last member.
    pub classes_emptied: usize,
    /// Set when the model was rebuilt from the changed cluster instead.
    pub rebuilt: Option<RebuildReason>,
    /// Classes that gained or lost a member, or whose member was replaced
    /// in place (its addresses may differ), possibly with repeats. What a
    /// caller derived from a class's members is stale for these classes
    /// only; after a rebuild, for every class.
    pub touched_classes: Vec<ClassId>,
}

/// The indexes an update needs and a query does not: built on the first
/// [`Model::apply`], so a one-shot model never pays for them.
pub(crate) struct Incremental {
    /// Live classes, by the hash of their [`ClassKey`].
    classes_by_key: FxHashMap<u64, Vec<ClassId>>,
    /// Per endpoint, the ids of the ipBlocks holding one of its IPs (only
    /// with [`IpBlockMode::Match`]; empty otherwise).
    endpoint_blocks: Vec<Vec<usize>>,
    /// Every distinct ipBlock address set of the policies, numbered.
    block_ids: HashMap<IpSet, usize>,
    /// [`Model::distinct_ports`], inverted.
    ports_ids: HashMap<RulePorts, usize>,
    /// Rules with a peer that can match outside their policy's namespace
    /// (namespaceSelector, ipBlock, or no peers at all).
    cross_namespace_rules: Vec<usize>,
    /// Per namespace, the rules of `cross_namespace_rules` that can match a
    /// class there (filled on first use, emptied when policies change).
    cross_rules_by_namespace: FxHashMap<String, Vec<usize>>,
    /// Classes without members.
    emptied: usize,
}

/// More changes than this share of the endpoints at once rebuild instead.
const MANY_CHANGES_PER_ENDPOINT: usize = 8;

/// The sort key of [`Cluster::endpoints`].
fn endpoint_order(endpoint: &Endpoint) -> (&str, &str, EndpointKind) {
    (&endpoint.namespace, &endpoint.name, endpoint.kind)
}

/// `items` without those whose index is marked in `gone`.
fn retain_unmarked<T>(items: &mut Vec<T>, gone: &[bool]) {
    let mut index = 0;
    items.retain(|_| {
        index += 1;
        !gone[index - 1]
    });
}

/// A change that cannot be applied in place, handed back with the reason
/// (boxed: rebuilds are rare and a `Change` is large).
type Refused = Box<(RebuildReason, Change)>;

impl Model {
    /// Applies `changes` in order, updating the model in place where that is
    /// cheaper than a rebuild (see the module documentation of
    /// `model::incremental`). Afterwards every answer equals that of
    /// `Model::new` on the changed cluster; [`Model::classes`] may then hold
    /// empty classes, which no endpoint belongs to.
    pub fn apply(&mut self, changes: Vec<Change>) -> UpdateStats {
        let mut stats = UpdateStats::default();
        let mut rebuild = None;
        let tiered = !self.cluster.admin_policies.is_empty()
            || changes
                .iter()
                .any(|change| matches!(change, Change::AdminPolicies(_)));
        let shapes_the_model = |change: &Change| !matches!(change, Change::ServiceObjects { .. });
        if tiered && changes.iter().any(shapes_the_model) {
            rebuild = Some(RebuildReason::AdminPolicies);
        }
        if rebuild.is_none()
            && changes.len() > 64
            && changes.len() * MANY_CHANGES_PER_ENDPOINT > self.endpoint_class.len()
        {
            rebuild = Some(RebuildReason::ManyChanges);
        }
        // Endpoints that come or go wait to be applied together: each one
        // shifts the ids of the endpoints after it, so one pass for all of
        // them costs what one of them alone would.
        let mut arriving: Vec<Endpoint> = Vec::new();
        let mut leaving: Vec<EndpointId> = Vec::new();
        let mut waiting: HashSet<(String, String, EndpointKind)> = HashSet::new();
        for change in changes {
            if rebuild.is_none() {
                if self.incremental.is_none() {
                    self.incremental = Some(Box::new(Incremental::build(self)));
                }
                let Some(change) = self.defer(
                    change,
                    &mut arriving,
                    &mut leaving,
                    &mut waiting,
                    &mut stats,
                ) else {
                    continue;
                };
                self.settle(&mut arriving, &mut leaving, &mut waiting, &mut stats);
                match self.apply_one(change, &mut stats) {
                    Ok(()) => continue,
                    Err(refused) => {
                        let (reason, change) = *refused;
                        rebuild = Some(reason);
                        apply_to_cluster(&mut self.cluster, change);
                    }
                }
            } else {
                apply_to_cluster(&mut self.cluster, change);
            }
        }
        if rebuild.is_none() {
            self.settle(&mut arriving, &mut leaving, &mut waiting, &mut stats);
        }
        if rebuild.is_none()
            && let Some(incremental) = &self.incremental
            && incremental.emptied >= 64
            && incremental.emptied * 4 > self.classes.len()
        {
            rebuild = Some(RebuildReason::Compaction);
        }
        if let Some(reason) = rebuild {
            let cluster = std::mem::take(&mut self.cluster);
            *self = Model::new(cluster, self.config);
            stats.rebuilt = Some(reason);
        }
        stats
    }

    /// Brings the model to `cluster` by applying the differences
    /// ([`Model::apply`]). Both clusters must be in [`Cluster`]'s sorted
    /// orders, as the loader leaves them.
    pub fn update_to(&mut self, cluster: Cluster) -> UpdateStats {
        let changes = differences(&self.cluster, cluster);
        self.apply(changes)
    }

    /// Applies an endpoint change at once if it shifts no ids (a change to
    /// an endpoint in place), or sets aside an arrival or departure for
    /// [`Model::settle`]; hands back every other change, and a change to
    /// an endpoint already set aside (it must wait for the settling).
    fn defer(
        &mut self,
        change: Change,
        arriving: &mut Vec<Endpoint>,
        leaving: &mut Vec<EndpointId>,
        waiting: &mut HashSet<(String, String, EndpointKind)>,
        stats: &mut UpdateStats,
    ) -> Option<Change> {
        let (namespace, name, kind) = match &change {
            Change::UpsertEndpoint(endpoint) => {
                (&endpoint.namespace, &endpoint.name, endpoint.kind)
            }
            Change::RemoveEndpoint {
                namespace,
                name,
                kind,
            } => (namespace, name, *kind),
            _ => return Some(change),
        };
        let key = (namespace.clone(), name.clone(), kind);
        if waiting.contains(&key) {
            return Some(change);
        }
        let found = endpoint_position(&self.cluster, namespace, name, kind);
        stats.endpoints += 1;
        match (change, found) {
            (Change::UpsertEndpoint(endpoint), Ok(_)) => self.upsert_endpoint(endpoint, stats),
            (Change::UpsertEndpoint(endpoint), Err(_)) => {
                waiting.insert(key);
                arriving.push(endpoint);
            }
            (_, Ok(position)) => {
                waiting.insert(key);
                leaving.push(position);
            }
            (_, Err(_)) => {}
        }
        None
    }

    /// Applies the arrivals and departures set aside by [`Model::defer`]:
    /// one renumbering of the class members for all of them.
    fn settle(
        &mut self,
        arriving: &mut Vec<Endpoint>,
        leaving: &mut Vec<EndpointId>,
        waiting: &mut HashSet<(String, String, EndpointKind)>,
        stats: &mut UpdateStats,
    ) {
        waiting.clear();
        // One alone moves the vectors' tails in place, cheaper than a merge.
        match leaving.len() {
            0 => {}
            1 => self.remove_endpoint(leaving[0], stats),
            _ => {
                let mut positions = std::mem::take(leaving);
                positions.sort_unstable();
                self.remove_endpoints(&positions, stats);
            }
        }
        leaving.clear();
        match arriving.len() {
            0 => {}
            1 => self.upsert_endpoint(arriving.remove(0), stats),
            _ => self.insert_endpoints(std::mem::take(arriving), stats),
        }
    }

    /// Removes the endpoints at `positions` (sorted, distinct).
    fn remove_endpoints(&mut self, positions: &[EndpointId], stats: &mut UpdateStats) {
        for &position in positions {
            self.detach(position, stats);
        }
        let count = self.cluster.endpoints.len();
        let mut gone = vec![false; count];
        let mut touches_nodes = false;
        for &position in positions {
            gone[position] = true;
            touches_nodes |= self.cluster.endpoints[position].host_network;
        }
        let mut new_id = Vec::with_capacity(count);
        let mut next = 0;
        for &gone in &gone {
            new_id.push(next);
            next += usize::from(!gone);
        }
        retain_unmarked(&mut self.cluster.endpoints, &gone);
        retain_unmarked(&mut self.endpoint_class, &gone);
        retain_unmarked(&mut self.incremental().endpoint_blocks, &gone);
        self.renumber_members(&new_id);
        if touches_nodes {
            self.node_addresses = node_addresses(&self.cluster);
        }
    }

    /// Inserts endpoints none of which is in the cluster, in one merge.
    fn insert_endpoints(&mut self, mut arriving: Vec<Endpoint>, stats: &mut UpdateStats) {
        let key = |e: &Endpoint| (e.namespace.clone(), e.name.clone(), e.kind);
        arriving.sort_by_cached_key(key);
        let touches_nodes = arriving.iter().any(|e| e.host_network);
        let blocks: Vec<Vec<usize>> = arriving.iter().map(|e| self.blocks_holding(e)).collect();
        let old_endpoints = std::mem::take(&mut self.cluster.endpoints);
        let old_classes = std::mem::take(&mut self.endpoint_class);
        let old_blocks = std::mem::take(&mut self.incremental().endpoint_blocks);
        let total = old_endpoints.len() + arriving.len();
        let mut endpoints = Vec::with_capacity(total);
        let mut classes = Vec::with_capacity(total);
        let mut endpoint_blocks = Vec::with_capacity(total);
        let mut new_id = Vec::with_capacity(old_endpoints.len());
        let mut positions = Vec::with_capacity(arriving.len());
        let mut old = old_endpoints
            .into_iter()
            .zip(old_classes)
            .zip(old_blocks)
            .peekable();
        for (endpoint, blocks) in arriving.into_iter().zip(blocks) {
            while let Some(((before, _), _)) = old.peek()
                && endpoint_order(before) < endpoint_order(&endpoint)
            {
                let ((before, class), before_blocks) = old.next().expect("peeked");
                new_id.push(endpoints.len());
                endpoints.push(before);
                classes.push(class);
                endpoint_blocks.push(before_blocks);
            }
            positions.push(endpoints.len());
            endpoints.push(endpoint);
            classes.push(ClassId::MAX);
            endpoint_blocks.push(blocks);
        }
        for ((before, class), before_blocks) in old {
            new_id.push(endpoints.len());
            endpoints.push(before);
            classes.push(class);
            endpoint_blocks.push(before_blocks);
        }
        self.cluster.endpoints = endpoints;
        self.endpoint_class = classes;
        self.incremental().endpoint_blocks = endpoint_blocks;
        self.renumber_members(&new_id);
        for position in positions {
            self.attach(position, stats);
        }
        if touches_nodes {
            self.node_addresses = node_addresses(&self.cluster);
        }
    }

    /// Gives every class member its new id (`new_id[old id]`).
    fn renumber_members(&mut self, new_id: &[EndpointId]) {
        for class in &mut self.classes {
            for member in &mut class.members {
                *member = new_id[*member];
            }
        }
    }

    fn apply_one(&mut self, change: Change, stats: &mut UpdateStats) -> Result<(), Refused> {
        match change {
            Change::Namespaces(namespaces) => {
                if self.namespaces_change_selection(&namespaces) {
                    return Err(Box::new((
                        RebuildReason::Namespaces,
                        Change::Namespaces(namespaces),
                    )));
                }
                self.cluster.namespaces = namespaces;
                // A namespace without pods may have come or gone.
                self.incremental().cross_rules_by_namespace.clear();
            }
            Change::Nodes(nodes) => {
                self.cluster.nodes = nodes;
                self.node_addresses = node_addresses(&self.cluster);
            }
            Change::ServiceObjects { .. } => apply_to_cluster(&mut self.cluster, change),
            // `apply` rebuilds for every change while admin policies exist.
            Change::AdminPolicies(_) => {
                return Err(Box::new((RebuildReason::AdminPolicies, change)));
            }
            Change::UpsertEndpoint(endpoint) => {
                self.upsert_endpoint(endpoint, stats);
                stats.endpoints += 1;
            }
            Change::RemoveEndpoint {
                namespace,
                name,
                kind,
            } => {
                if let Ok(position) = endpoint_position(&self.cluster, &namespace, &name, kind) {
                    self.remove_endpoint(position, stats);
                }
                stats.endpoints += 1;
            }
            Change::UpsertPolicy(policy) => {
                let position = policy_position(&self.cluster, &policy.namespace, &policy.name);
                let old = position.ok().map(|p| &self.cluster.policies[p]);
                if let (Ok(position), Some(old)) = (position, old)
                    && same_policy_rules(old, &policy)
                {
                    // Only where it is written moved.
                    self.cluster.policies[position] = policy;
                    return Ok(());
                }
                if self.blocks_would_change(old, Some(&policy)) {
                    return Err(Box::new((
                        RebuildReason::IpBlocks,
                        Change::UpsertPolicy(policy),
                    )));
                }
                match position {
                    Ok(position) => self.replace_policy(position, policy),
                    Err(position) => self.insert_policy(position, policy),
                }
                stats.policies += 1;
            }
            Change::RemovePolicy { namespace, name } => {
                if let Ok(position) = policy_position(&self.cluster, &namespace, &name) {
                    let old = &self.cluster.policies[position];
                    if self.blocks_would_change(Some(old), None) {
                        let change = Change::RemovePolicy { namespace, name };
                        return Err(Box::new((RebuildReason::IpBlocks, change)));
                    }
                    self.remove_policy(position);
                }
                stats.policies += 1;
            }
        }
        Ok(())
    }

    fn incremental(&mut self) -> &mut Incremental {
        self.incremental.as_mut().expect("built by apply")
    }

    /// True if replacing the namespaces could change which classes a
    /// namespaceSelector matches.
    fn namespaces_change_selection(&self, namespaces: &[Namespace]) -> bool {
        let old = &self.cluster.namespaces;
        let has_endpoints = |name: &str| {
            let endpoints = &self.cluster.endpoints;
            let start = endpoints.partition_point(|e| e.namespace.as_str() < name);
            endpoints.get(start).is_some_and(|e| e.namespace == name)
        };
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < namespaces.len() {
            match (old.get(i), namespaces.get(j)) {
                (Some(a), Some(b)) if a.name == b.name => {
                    if a.labels != b.labels {
                        return true;
                    }
                    i += 1;
                    j += 1;
                }
                (Some(a), b) if b.is_none_or(|b| a.name < b.name) => {
                    if has_endpoints(&a.name) {
                        return true;
                    }
                    i += 1;
                }
                (_, Some(b)) => {
                    if has_endpoints(&b.name) {
                        return true;
                    }
                    j += 1;
                }
                (None, None) => break,
                (Some(_), None) => unreachable!("handled above"),
            }
        }
        false
    }

    /// With ipBlocks matching pod IPs, true if replacing policy `old` by
    /// `new` changes the set of distinct ipBlocks (and so the classes).
    fn blocks_would_change(&self, old: Option<&Policy>, new: Option<&Policy>) -> bool {
        if self.config.ip_block != IpBlockMode::Match {
            return false;
        }
        let has_blocks =
            |policy: Option<&Policy>| policy.is_some_and(|p| !blocks_of_policy(p).is_empty());
        if !has_blocks(old) && !has_blocks(new) {
            return false;
        }
        let mut after: std::collections::HashSet<&IpSet> = std::collections::HashSet::new();
        let old_key = old.map(|p| (p.namespace.as_str(), p.name.as_str()));
        for policy in &self.cluster.policies {
            if Some((policy.namespace.as_str(), policy.name.as_str())) != old_key {
                after.extend(blocks_of_policy(policy));
            }
        }
        if let Some(new) = new {
            after.extend(blocks_of_policy(new));
        }
        let known = &self.incremental_ref().block_ids;
        after.len() != known.len() || after.iter().any(|block| !known.contains_key(*block))
    }

    fn upsert_endpoint(&mut self, endpoint: Endpoint, stats: &mut UpdateStats) {
        let blocks = self.blocks_holding(&endpoint);
        let found = endpoint_position(
            &self.cluster,
            &endpoint.namespace,
            &endpoint.name,
            endpoint.kind,
        );
        let touches_nodes = endpoint.host_network;
        match found {
            Ok(position) => {
                let same_class = self.class_key(position)
                    == ClassKey::of(&endpoint, &blocks, &self.config, false);
                let touches_nodes = touches_nodes || self.cluster.endpoints[position].host_network;
                if same_class {
                    self.cluster.endpoints[position] = endpoint;
                    self.incremental().endpoint_blocks[position] = blocks;
                    stats.touched_classes.push(self.endpoint_class[position]);
                } else {
                    self.detach(position, stats);
                    self.cluster.endpoints[position] = endpoint;
                    self.incremental().endpoint_blocks[position] = blocks;
                    self.attach(position, stats);
                }
                if touches_nodes {
                    self.node_addresses = node_addresses(&self.cluster);
                }
            }
            Err(position) => {
                self.cluster.endpoints.insert(position, endpoint);
                self.endpoint_class.insert(position, ClassId::MAX);
                self.incremental().endpoint_blocks.insert(position, blocks);
                self.shift_members(position, |member| member + 1);
                self.attach(position, stats);
                if touches_nodes {
                    self.node_addresses = node_addresses(&self.cluster);
                }
            }
        }
    }

    fn remove_endpoint(&mut self, position: EndpointId, stats: &mut UpdateStats) {
        self.detach(position, stats);
        let removed = self.cluster.endpoints.remove(position);
        self.endpoint_class.remove(position);
        self.incremental().endpoint_blocks.remove(position);
        self.shift_members(position + 1, |member| member - 1);
        if removed.host_network {
            self.node_addresses = node_addresses(&self.cluster);
        }
    }

    /// Renumbers the class members from endpoint id `from` on (after an
    /// insertion or removal in the sorted endpoint list).
    fn shift_members(&mut self, from: EndpointId, shift: impl Fn(EndpointId) -> EndpointId) {
        for class in &mut self.classes {
            let members = &mut class.members;
            let start = members.partition_point(|&m| m < from);
            for member in &mut members[start..] {
                *member = shift(*member);
            }
        }
    }

    fn incremental_ref(&self) -> &Incremental {
        self.incremental.as_ref().expect("built by apply")
    }

    /// The ipBlocks holding one of the endpoint's addresses.
    fn blocks_holding(&self, endpoint: &Endpoint) -> Vec<usize> {
        if self.config.ip_block != IpBlockMode::Match {
            return Vec::new();
        }
        let family = self.config.address_family;
        let mut blocks: Vec<usize> = self
            .incremental_ref()
            .block_ids
            .iter()
            .filter(|(set, _)| {
                endpoint
                    .ips
                    .iter()
                    .any(|ip| family.includes(*ip) && set.contains(*ip))
            })
            .map(|(_, &id)| id)
            .collect();
        blocks.sort_unstable();
        blocks
    }

    /// The class key of endpoint `id`.
    fn class_key(&self, id: EndpointId) -> ClassKey<'_> {
        ClassKey::of(
            &self.cluster.endpoints[id],
            &self.incremental_ref().endpoint_blocks[id],
            &self.config,
            false,
        )
    }

    /// Puts endpoint `position` into its class, creating the class if needed.
    fn attach(&mut self, position: EndpointId, stats: &mut UpdateStats) {
        let key = self.class_key(position);
        let hash = key_hash(&key);
        let existing = self
            .incremental_ref()
            .classes_by_key
            .get(&hash)
            .and_then(|candidates| {
                candidates
                    .iter()
                    .copied()
                    .find(|&class| self.class_key(self.classes[class].members[0]) == key)
            });
        let class = match existing {
            Some(class) => class,
            None => {
                let class = self.add_class(position);
                self.incremental()
                    .classes_by_key
                    .entry(hash)
                    .or_default()
                    .push(class);
                stats.classes_added += 1;
                class
            }
        };
        self.endpoint_class[position] = class;
        stats.touched_classes.push(class);
        let members = &mut self.classes[class].members;
        let at = members.partition_point(|&m| m < position);
        members.insert(at, position);
    }

    /// Takes endpoint `position` out of its class; an emptied class becomes
    /// a tombstone.
    fn detach(&mut self, position: EndpointId, stats: &mut UpdateStats) {
        let class = self.endpoint_class[position];
        stats.touched_classes.push(class);
        let members = &mut self.classes[class].members;
        if let Ok(at) = members.binary_search(&position) {
            members.remove(at);
        }
        if !self.classes[class].members.is_empty() {
            return;
        }
        let hash = key_hash(&self.class_key(position));
        let incremental = self.incremental();
        if let Some(candidates) = incremental.classes_by_key.get_mut(&hash) {
            candidates.retain(|&c| c != class);
            if candidates.is_empty() {
                incremental.classes_by_key.remove(&hash);
            }
        }
        incremental.emptied += 1;
        let namespace = self.cluster.endpoints[position].namespace.clone();
        for rule_id in self.candidate_rules(&namespace) {
            let rule = &mut self.rules[rule_id];
            if !rule.peers.everyone {
                rule.peers.classes.remove(class);
            }
        }
        for per_class in &mut self.class_policies {
            per_class[class] = Vec::new();
        }
        stats.classes_emptied += 1;
    }

    /// The rules whose peers could match a class in `namespace` (rules
    /// without peers aside: they match every class).
    fn candidate_rules(&mut self, namespace: &str) -> Vec<usize> {
        let mut rules = self.cross_rules_reaching(namespace).to_vec();
        rules.extend(self.policies_in(namespace).flat_map(|policy| {
            let [ingress, egress] = &self.policy_rules[policy];
            ingress.clone().chain(egress.clone())
        }));
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    /// The ids of the policies in `namespace` (they are sorted by namespace).
    fn policies_in(&self, namespace: &str) -> std::ops::Range<PolicyId> {
        let policies = &self.cluster.policies;
        let start = policies.partition_point(|p| p.namespace.as_str() < namespace);
        let end = policies.partition_point(|p| p.namespace.as_str() <= namespace);
        start..end
    }

    /// Appends the class of endpoint `representative` and evaluates the
    /// rules and policies that can reach it.
    fn add_class(&mut self, representative: EndpointId) -> ClassId {
        let class = self.classes.len();
        let endpoint = &self.cluster.endpoints[representative];
        self.classes
            .push(PodClass::without_members(&self.class_key(representative)));
        let count = self.classes.len();
        for rule in &mut self.rules {
            rule.peers.classes.grow(count);
            if rule.peers.everyone {
                rule.peers.classes.insert(class);
            }
        }
        for per_class in &mut self.class_policies {
            per_class.push(Vec::new());
        }
        let namespace = endpoint.namespace.clone();
        let matched: Vec<usize> = self
            .candidate_rules(&namespace)
            .into_iter()
            .filter(|&rule_id| {
                let rule = &self.rules[rule_id];
                !rule.peers.everyone && self.rule_matches(rule_id, representative)
            })
            .collect();
        for rule_id in matched {
            self.rules[rule_id].peers.classes.insert(class);
        }
        if self.classes[class].selectable {
            let labels = &self.cluster.endpoints[representative].labels;
            for policy_id in self.policies_in(&namespace) {
                let policy = &self.cluster.policies[policy_id];
                if !policy.pod_selector.matches(labels) {
                    continue;
                }
                for direction in [Direction::Ingress, Direction::Egress] {
                    if policy.rules(direction).is_some() {
                        self.class_policies[direction_index(direction)][class].push(policy_id);
                    }
                }
            }
        }
        class
    }

    /// The policy rule behind compiled rule `rule_id`.
    fn source_rule(&self, rule_id: usize) -> &Rule {
        let compiled = &self.rules[rule_id];
        let policy = &self.cluster.policies[compiled.policy];
        for direction in [Direction::Ingress, Direction::Egress] {
            let range = &self.policy_rules[compiled.policy][direction_index(direction)];
            if range.contains(&rule_id) {
                let rules = policy
                    .rules(direction)
                    .expect("compiled from this direction");
                return &rules[rule_id - range.start];
            }
        }
        unreachable!("rule {rule_id} belongs to its policy's ranges")
    }

    /// True if a peer of rule `rule_id` (with peers) matches the class of
    /// endpoint `representative`.
    fn rule_matches(&self, rule_id: usize, representative: EndpointId) -> bool {
        let rule = self.source_rule(rule_id);
        let endpoint = &self.cluster.endpoints[representative];
        let selectable = ClassKey::selectable(endpoint, &self.config);
        let blocks = &self.incremental_ref().endpoint_blocks[representative];
        let block_ids = &self.incremental_ref().block_ids;
        rule.peers.iter().flatten().any(|peer| match peer {
            Peer::Pods { namespaces, pods } => {
                selectable
                    && self.scope_includes(namespaces, &endpoint.namespace)
                    && pods.matches(&endpoint.labels)
            }
            Peer::IpBlock { addresses, .. } => block_ids
                .get(addresses)
                .is_some_and(|id| blocks.binary_search(id).is_ok()),
        })
    }

    fn scope_includes(&self, scope: &NamespaceScope, namespace: &str) -> bool {
        match scope {
            NamespaceScope::Own(own) => own == namespace,
            NamespaceScope::Selected(selector) => self
                .cluster
                .namespace(namespace)
                .is_some_and(|n| selector.matches(&n.labels)),
        }
    }

    /// The live classes of the endpoints in `namespace`.
    fn classes_in(&self, namespace: &str) -> impl Iterator<Item = ClassId> + '_ {
        let endpoints = &self.cluster.endpoints;
        let start = endpoints.partition_point(|e| e.namespace.as_str() < namespace);
        let end = endpoints.partition_point(|e| e.namespace.as_str() <= namespace);
        (start..end).map(|id| self.endpoint_class[id])
    }

    /// The id of `ports` in [`Model::distinct_ports`], added if new.
    fn intern_ports(&mut self, ports: RulePorts) -> usize {
        let next = self.distinct_ports.len();
        if let Some(&id) = self.incremental_ref().ports_ids.get(&ports) {
            return id;
        }
        self.incremental().ports_ids.insert(ports.clone(), next);
        self.distinct_ports.push(ports);
        next
    }

    /// A rule's peers among the current classes.
    fn rule_peers(&self, rule: &Rule) -> PeerSet {
        let count = self.classes.len();
        match &rule.peers {
            None => PeerSet {
                everyone: true,
                classes: BitSet::full(count),
                addresses: IpSet::everything(),
            },
            Some(peers) => {
                let mut classes: Vec<ClassId> = Vec::new();
                let mut addresses = IpSet::empty();
                for peer in peers {
                    match peer {
                        Peer::Pods { namespaces, pods } => {
                            let names: Vec<&str> = match namespaces {
                                NamespaceScope::Own(namespace) => vec![namespace],
                                NamespaceScope::Selected(selector) => self
                                    .cluster
                                    .namespaces
                                    .iter()
                                    .filter(|n| selector.matches(&n.labels))
                                    .map(|n| n.name.as_str())
                                    .collect(),
                            };
                            for name in names {
                                classes.extend(self.classes_in(name).filter(|&class| {
                                    let class_info = &self.classes[class];
                                    class_info.selectable
                                        && pods.matches(
                                            &self.cluster.endpoints[class_info.members[0]].labels,
                                        )
                                }));
                            }
                        }
                        Peer::IpBlock {
                            addresses: block, ..
                        } => {
                            addresses.union_with(block);
                            if let Some(&id) = self.incremental_ref().block_ids.get(block) {
                                let blocks = &self.incremental_ref().endpoint_blocks;
                                classes.extend(
                                    (0..blocks.len())
                                        .filter(|&e| blocks[e].binary_search(&id).is_ok())
                                        .map(|e| self.endpoint_class[e]),
                                );
                            }
                        }
                    }
                }
                classes.sort_unstable();
                classes.dedup();
                PeerSet {
                    everyone: false,
                    classes: BitSet::from_sorted(count, classes),
                    addresses,
                }
            }
        }
    }

    /// Compiles `policy` (at `policy_id`) into new rules at the end of
    /// [`Model::rules`], returning its ranges.
    fn compile_policy(&mut self, policy_id: PolicyId) -> [std::ops::Range<usize>; 2] {
        let mut ranges = [0..0, 0..0];
        for direction in [Direction::Ingress, Direction::Egress] {
            let Some(rules) = self.cluster.policies[policy_id].rules(direction) else {
                continue;
            };
            let compiled: Vec<(usize, PeerSet, RulePorts)> = rules
                .iter()
                .map(|rule| {
                    (
                        rule.index,
                        self.rule_peers(rule),
                        RulePorts::from_rule(rule),
                    )
                })
                .collect();
            let start = self.rules.len();
            for (index, peers, ports) in compiled {
                let ports = self.intern_ports(ports);
                self.rules.push(CompiledRule {
                    policy: policy_id,
                    index,
                    peers,
                    ports,
                });
            }
            ranges[direction_index(direction)] = start..self.rules.len();
        }
        ranges
    }

    /// The live classes `policy` selects.
    fn classes_selected(&self, policy: &Policy) -> Vec<ClassId> {
        let mut classes: Vec<ClassId> = self
            .classes_in(&policy.namespace)
            .filter(|&class| {
                let info = &self.classes[class];
                info.selectable
                    && policy
                        .pod_selector
                        .matches(&self.cluster.endpoints[info.members[0]].labels)
            })
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }

    /// Drops the compiled rules of `policy_id`, shifting later rule ids.
    fn drop_rules(&mut self, policy_id: PolicyId) {
        let ranges = self.policy_rules[policy_id].clone();
        let non_empty: Vec<&std::ops::Range<usize>> =
            ranges.iter().filter(|r| r.start < r.end).collect();
        let Some(start) = non_empty.iter().map(|r| r.start).min() else {
            return;
        };
        let end = non_empty.iter().map(|r| r.end).max().expect("non-empty");
        let removed = end - start;
        self.rules.drain(start..end);
        for (other, other_ranges) in self.policy_rules.iter_mut().enumerate() {
            if other == policy_id {
                continue;
            }
            for range in other_ranges.iter_mut() {
                // Empty ranges move too: they must stay within `rules`.
                if range.start >= end {
                    *range = range.start - removed..range.end - removed;
                }
            }
        }
        self.policy_rules[policy_id] = [0..0, 0..0];
    }

    /// Adds policy `policy_id` to (or takes it from) the policy lists of the
    /// classes it selects.
    fn set_selection(&mut self, policy_id: PolicyId, selected: bool) {
        let policy = &self.cluster.policies[policy_id];
        let directions: Vec<Direction> = [Direction::Ingress, Direction::Egress]
            .into_iter()
            .filter(|&direction| policy.rules(direction).is_some())
            .collect();
        for class in self.classes_selected(policy) {
            for &direction in &directions {
                let list = &mut self.class_policies[direction_index(direction)][class];
                match (list.binary_search(&policy_id), selected) {
                    (Err(at), true) => list.insert(at, policy_id),
                    (Ok(at), false) => {
                        list.remove(at);
                    }
                    _ => {}
                }
            }
        }
    }

    fn replace_policy(&mut self, position: PolicyId, policy: Policy) {
        self.set_selection(position, false);
        self.drop_rules(position);
        self.cluster.policies[position] = policy;
        self.policy_rules[position] = self.compile_policy(position);
        self.set_selection(position, true);
        self.refresh_cross_namespace_rules();
    }

    fn insert_policy(&mut self, position: PolicyId, policy: Policy) {
        self.renumber_policies(|id| if id >= position { id + 1 } else { id });
        self.cluster.policies.insert(position, policy);
        self.policy_rules.insert(position, [0..0, 0..0]);
        self.policy_rules[position] = self.compile_policy(position);
        self.set_selection(position, true);
        self.refresh_cross_namespace_rules();
    }

    fn remove_policy(&mut self, position: PolicyId) {
        self.set_selection(position, false);
        self.drop_rules(position);
        self.cluster.policies.remove(position);
        self.policy_rules.remove(position);
        self.renumber_policies(|id| if id > position { id - 1 } else { id });
        self.refresh_cross_namespace_rules();
    }

    fn renumber_policies(&mut self, renumber: impl Fn(PolicyId) -> PolicyId) {
        for rule in &mut self.rules {
            rule.policy = renumber(rule.policy);
        }
        for per_class in &mut self.class_policies {
            for list in per_class.iter_mut() {
                for policy in list.iter_mut() {
                    *policy = renumber(*policy);
                }
            }
        }
    }

    fn refresh_cross_namespace_rules(&mut self) {
        let rules = cross_namespace_rules(self);
        let incremental = self.incremental();
        incremental.cross_namespace_rules = rules;
        incremental.cross_rules_by_namespace.clear();
    }

    /// The rules of other namespaces' policies (and namespaceSelector or
    /// ipBlock rules of this one) that can match a class in `namespace`.
    fn cross_rules_reaching(&mut self, namespace: &str) -> &[usize] {
        if !self
            .incremental_ref()
            .cross_rules_by_namespace
            .contains_key(namespace)
        {
            let labels = self.cluster.namespace(namespace).map(|n| &n.labels);
            let reaching: Vec<usize> = self
                .incremental_ref()
                .cross_namespace_rules
                .iter()
                .copied()
                .filter(|&rule_id| {
                    let Some(peers) = &self.source_rule(rule_id).peers else {
                        // No peers: everyone, bits kept by `add_class` itself.
                        return false;
                    };
                    peers.iter().any(|peer| match peer {
                        Peer::Pods { namespaces, .. } => match namespaces {
                            NamespaceScope::Own(own) => own == namespace,
                            NamespaceScope::Selected(selector) => {
                                labels.is_some_and(|labels| selector.matches(labels))
                            }
                        },
                        Peer::IpBlock { .. } => true,
                    })
                })
                .collect();
            self.incremental()
                .cross_rules_by_namespace
                .insert(namespace.to_string(), reaching);
        }
        &self.incremental_ref().cross_rules_by_namespace[namespace]
    }
}

impl Incremental {
    fn build(model: &Model) -> Incremental {
        let cluster = &model.cluster;
        let mut block_ids: HashMap<IpSet, usize> = HashMap::new();
        for policy in &cluster.policies {
            for block in blocks_of_policy(policy) {
                let next = block_ids.len();
                block_ids.entry(block.clone()).or_insert(next);
            }
        }
        let endpoint_blocks = if model.config.ip_block == IpBlockMode::Match {
            super::blocks_containing_endpoints(cluster, &block_ids, model.config.address_family)
        } else {
            vec![Vec::new(); cluster.endpoints.len()]
        };
        let mut classes_by_key: FxHashMap<u64, Vec<ClassId>> = FxHashMap::default();
        for (class, info) in model.classes.iter().enumerate() {
            let Some(&member) = info.members.first() else {
                continue;
            };
            let key = ClassKey::of(
                &cluster.endpoints[member],
                &endpoint_blocks[member],
                &model.config,
                false,
            );
            classes_by_key
                .entry(key_hash(&key))
                .or_default()
                .push(class);
        }
        let ports_ids = model
            .distinct_ports
            .iter()
            .enumerate()
            .map(|(id, ports)| (ports.clone(), id))
            .collect();
        let emptied = model
            .classes
            .iter()
            .filter(|c| c.members.is_empty())
            .count();
        Incremental {
            classes_by_key,
            endpoint_blocks,
            block_ids,
            ports_ids,
            cross_namespace_rules: cross_namespace_rules(model),
            cross_rules_by_namespace: FxHashMap::default(),
            emptied,
        }
    }
}

fn key_hash(key: &ClassKey<'_>) -> u64 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

fn cross_namespace_rules(model: &Model) -> Vec<usize> {
    let mut found = Vec::new();
    for (policy_id, policy) in model.cluster.policies.iter().enumerate() {
        for direction in [Direction::Ingress, Direction::Egress] {
            let range = model.policy_rules[policy_id][direction_index(direction)].clone();
            for (rule_id, rule) in range.zip(policy.rules(direction).unwrap_or_default()) {
                let crosses = match &rule.peers {
                    None => true,
                    Some(peers) => peers.iter().any(|peer| match peer {
                        Peer::Pods { namespaces, .. } => {
                            matches!(namespaces, NamespaceScope::Selected(_))
                        }
                        Peer::IpBlock { .. } => true,
                    }),
                };
                if crosses {
                    found.push(rule_id);
                }
            }
        }
    }
    found
}

fn blocks_of_policy(policy: &Policy) -> Vec<&IpSet> {
    [Direction::Ingress, Direction::Egress]
        .into_iter()
        .flat_map(|direction| policy.rules(direction).unwrap_or_default())
        .flat_map(|rule| rule.peers.iter().flatten())
        .filter_map(|peer| match peer {
            Peer::IpBlock { addresses, .. } => Some(addresses),
            Peer::Pods { .. } => None,
        })
        .collect()
}

/// True if two versions of a policy mean the same (they may be written at
/// other places).
fn same_policy_rules(a: &Policy, b: &Policy) -> bool {
    let strip = |policy: &Policy| {
        let mut policy = policy.clone();
        policy.source = None;
        policy.field_sources = Vec::new();
        for rules in [&mut policy.ingress, &mut policy.egress]
            .into_iter()
            .flatten()
        {
            for rule in rules {
                rule.source = None;
                rule.peer_sources = Vec::new();
                rule.port_sources = Vec::new();
            }
        }
        policy
    };
    strip(a) == strip(b)
}

fn endpoint_position(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    kind: EndpointKind,
) -> Result<EndpointId, EndpointId> {
    cluster.endpoints.binary_search_by(|e| {
        (e.namespace.as_str(), e.name.as_str(), e.kind).cmp(&(namespace, name, kind))
    })
}

fn policy_position(cluster: &Cluster, namespace: &str, name: &str) -> Result<PolicyId, PolicyId> {
    cluster
        .policies
        .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)))
}

/// Applies a change to the cluster alone (before a rebuild).
fn apply_to_cluster(cluster: &mut Cluster, change: Change) {
    match change {
        Change::UpsertEndpoint(endpoint) => {
            match endpoint_position(cluster, &endpoint.namespace, &endpoint.name, endpoint.kind) {
                Ok(position) => cluster.endpoints[position] = endpoint,
                Err(position) => cluster.endpoints.insert(position, endpoint),
            }
        }
        Change::RemoveEndpoint {
            namespace,
            name,
            kind,
        } => {
            if let Ok(position) = endpoint_position(cluster, &namespace, &name, kind) {
                cluster.endpoints.remove(position);
            }
        }
        Change::UpsertPolicy(policy) => {
            match policy_position(cluster, &policy.namespace, &policy.name) {
                Ok(position) => cluster.policies[position] = policy,
                Err(position) => cluster.policies.insert(position, policy),
            }
        }
        Change::RemovePolicy { namespace, name } => {
            if let Ok(position) = policy_position(cluster, &namespace, &name) {
                cluster.policies.remove(position);
            }
        }
        Change::AdminPolicies(policies) => cluster.admin_policies = policies,
        Change::Namespaces(namespaces) => cluster.namespaces = namespaces,
        Change::Nodes(nodes) => cluster.nodes = nodes,
        Change::ServiceObjects {
            services,
            endpoint_slices,
            ingresses,
            ingress_classes,
        } => {
            cluster.services = services;
            cluster.endpoint_slices = endpoint_slices;
            cluster.ingresses = ingresses;
            cluster.ingress_classes = ingress_classes;
        }
    }
}

/// The changes that turn `old` into `new` (both in [`Cluster`]'s orders).
pub fn differences(old: &Cluster, new: Cluster) -> Vec<Change> {
    let Cluster {
        namespaces,
        endpoints,
        services,
        policies,
        admin_policies,
        nodes,
        endpoint_slices,
        ingresses,
        ingress_classes,
    } = new;
    let mut changes = Vec::new();
    if admin_policies != old.admin_policies {
        changes.push(Change::AdminPolicies(admin_policies));
    }
    if namespaces != old.namespaces {
        changes.push(Change::Namespaces(namespaces));
    }
    if nodes != old.nodes {
        changes.push(Change::Nodes(nodes));
    }
    changes.push(Change::ServiceObjects {
        services,
        endpoint_slices,
        ingresses,
        ingress_classes,
    });
    merge_differences(
        &old.endpoints,
        endpoints,
        |a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)),
        Change::UpsertEndpoint,
        |e| Change::RemoveEndpoint {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            kind: e.kind,
        },
        &mut changes,
    );
    merge_differences(
        &old.policies,
        policies,
        |a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)),
        Change::UpsertPolicy,
        |p| Change::RemovePolicy {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
        },
        &mut changes,
    );
    changes
}

/// The upserts and removals between two lists sorted by `order` (which
/// compares identities: namespace and name).
fn merge_differences<T: PartialEq>(
    old: &[T],
    new: Vec<T>,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
    upsert: impl Fn(T) -> Change,
    remove: impl Fn(&T) -> Change,
    changes: &mut Vec<Change>,
) {
    let mut old = old.iter().peekable();
    for item in new {
        while let Some(gone) = old.next_if(|o| order(o, &item).is_lt()) {
            changes.push(remove(gone));
        }
        match old.next_if(|o| order(o, &item).is_eq()) {
            Some(same) if *same == item => {}
            _ => changes.push(upsert(item)),
        }
    }
    changes.extend(old.map(remove));
}

impl<'c> ClassKey<'c> {
    pub(super) fn selectable(endpoint: &Endpoint, config: &Config) -> bool {
        !(endpoint.host_network && config.host_network == crate::config::HostNetworkMode::Node)
    }

    pub(super) fn of(
        endpoint: &'c Endpoint,
        ip_blocks: &'c [usize],
        config: &Config,
        tiered: bool,
    ) -> Self {
        let mut named_ports: Vec<(&str, crate::ports::Protocol, u16)> = endpoint
            .ports
            .iter()
            .filter_map(|p| p.name.as_deref().map(|name| (name, p.protocol, p.port)))
            .collect();
        named_ports.sort_unstable();
        named_ports.dedup();
        ClassKey {
            namespace: &endpoint.namespace,
            labels: &endpoint.labels,
            named_ports,
            selectable: Self::selectable(endpoint, config),
            host_network: tiered && endpoint.host_network,
            ip_blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Loader;

    /// `pods` pods in one namespace, each its own class, each allowed in
    /// only from the pod before it.
    fn chain(pods: usize) -> Cluster {
        let mut text = String::new();
        for i in 0..pods {
            text += &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: a, labels: {{id: \"{i}\"}}}}\nspec: {{containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: 10.0.{}.{}}}\n---\n",
                i / 200,
                i % 200 + 1
            );
            if i > 0 {
                text += &format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: n{i}, namespace: a}}\nspec:\n  podSelector: {{matchLabels: {{id: \"{i}\"}}}}\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{id: \"{}\"}}}}}}]}}]\n---\n",
                    i - 1
                );
            }
        }
        let mut loader = Loader::new();
        loader.load_str("chain.yaml", &text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.cluster
    }

    fn allowed_pairs(model: &Model) -> Vec<(EndpointId, Vec<EndpointId>)> {
        let matrix = model.port_matrix(crate::Protocol::Tcp, &super::super::PortQuery::Number(80));
        (0..model.cluster().endpoints.len())
            .map(|s| (s, matrix.destinations(s)))
            .collect()
    }

    #[test]
    fn emptied_classes_are_compacted_by_a_rebuild() {
        let mut model = Model::new(chain(100), Config::default());
        let mut reasons = Vec::new();
        for i in (0..100).step_by(3).chain((1..100).step_by(3)) {
            let stats = model.apply(vec![Change::RemoveEndpoint {
                namespace: "a".into(),
                name: format!("p{i}"),
                kind: EndpointKind::Pod,
            }]);
            reasons.extend(stats.rebuilt);
            let fresh = Model::new(model.cluster().clone(), Config::default());
            assert_eq!(allowed_pairs(&model), allowed_pairs(&fresh), "after p{i}");
        }
        assert_eq!(reasons, [RebuildReason::Compaction]);
        let emptied = model
            .classes()
            .iter()
            .filter(|c| c.members.is_empty())
            .count();
        assert!(
            emptied < 64,
            "{emptied} empty classes left after compaction"
        );
    }

    /// An admin-tier policy that comes, changes or goes rebuilds the model,
    /// which then answers with it; the same policies again change nothing.
    #[test]
    fn admin_policy_changes_rebuild() {
        let with_admin = |action: &str| {
            let mut loader = Loader::new();
            loader.load_str(
                "anp.yaml",
                &format!(
                    "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: guard-p1}}\nspec:\n  priority: 10\n  subject: {{pods: {{namespaceSelector: {{}}, podSelector: {{matchLabels: {{id: \"1\"}}}}}}}}\n  ingress: [{{action: {action}, from: [{{namespaces: {{}}}}]}}]\n"
                ),
            );
            let mut cluster = chain(3);
            cluster.admin_policies = loader.finish().cluster.admin_policies;
            assert_eq!(cluster.admin_policies.len(), 1);
            cluster
        };
        let p0_reaches_p1 = |model: &Model| {
            let (p0, p1) = (
                model.cluster().find_endpoint("a/p0").unwrap(),
                model.cluster().find_endpoint("a/p1").unwrap(),
            );
            model
                .query(
                    super::super::QueryEndpoint::Endpoint(p0),
                    super::super::QueryEndpoint::Endpoint(p1),
                    &super::super::PortQuery::Number(80),
                    crate::Protocol::Tcp,
                )
                .unwrap()
                .allowed()
        };
        let mut model = Model::new(chain(3), Config::default());
        assert!(p0_reaches_p1(&model));
        let stats = model.update_to(with_admin("Deny"));
        assert_eq!(stats.rebuilt, Some(RebuildReason::AdminPolicies));
        assert_eq!(model.cluster(), &with_admin("Deny"));
        assert!(!p0_reaches_p1(&model), "the Deny rule decides");
        let stats = model.update_to(with_admin("Deny"));
        assert_eq!(stats, UpdateStats::default(), "nothing changed");
        let stats = model.update_to(with_admin("Pass"));
        assert_eq!(stats.rebuilt, Some(RebuildReason::AdminPolicies));
        assert!(p0_reaches_p1(&model), "passed on to p1's NetworkPolicy");
        let stats = model.update_to(chain(3));
        assert_eq!(stats.rebuilt, Some(RebuildReason::AdminPolicies));
        assert!(model.cluster().admin_policies.is_empty());
        assert!(p0_reaches_p1(&model));
    }

    #[test]
    fn many_changes_at_once_rebuild() {
        let mut model = Model::new(chain(100), Config::default());
        let stats = model.update_to(chain(300));
        assert_eq!(stats.rebuilt, Some(RebuildReason::ManyChanges));
        let fresh = Model::new(chain(300), Config::default());
        assert_eq!(allowed_pairs(&model), allowed_pairs(&fresh));
        // A few changes stay in place.
        let stats = model.update_to(chain(299));
        assert_eq!((stats.rebuilt, stats.endpoints), (None, 1));
        assert_eq!(
            allowed_pairs(&model),
            allowed_pairs(&Model::new(chain(299), Config::default()))
        );
    }
}
