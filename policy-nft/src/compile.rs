//! Lowering the model to one node's ruleset.
//!
//! The kernel identifies a peer by its address alone, so every peer set of
//! the model stands for addresses: the addresses of the pods of each peer
//! class, plus the ipBlocks (minus pod addresses when ipBlocks must not match
//! pods). Ports resolve on the destination: for ingress that is the local
//! pod's class; for egress each destination class in turn.
//!
//! Each address family is compiled from a model of its own (see
//! [`AddressFamily`]): a packet is IPv4 or IPv6, and a dual-stack pod matches
//! an IPv4 ipBlock only over IPv4.
//!
//! Per direction and family, the compiler sorts peer addresses into **peer
//! groups**: two addresses share a group when every isolated local pod of
//! the node allows them the same ports. A group is what Cilium calls an
//! identity, except that it is computed per node from the rules of the
//! node's pods, so it is as coarse as those rules allow. The work touches
//! only the node's local classes, the rules that select them, and the peer
//! classes and ipBlocks those rules name:
//!
//! 1. every rule of every isolated local class is an *entry* keyed by its
//!    peer set (rules without peers go to group 0, which every peer gets);
//! 2. each peer class gets its *signature*, the entries naming it; the
//!    ipBlocks of the entries are cut into disjoint parts by membership;
//! 3. a pod address's allowed (local class, ports) pairs follow from its
//!    class's signature, and from the ipBlock part it lies in, if any;
//!    an ipBlock part's from its entries. Equal answers are one group.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use policy_core::cluster::{Endpoint, EndpointId};
use policy_core::config::{AddressFamily, HostNetworkMode, IpBlockMode, SelfTraffic};
use policy_core::ipset::{Family, IpSet, IpSetBuilder, overlay};
use policy_core::model::{ClassId, Model, PeerSet, RulePorts, SideRules};
use policy_core::{Config, Direction, PortSet, Protocol};

use crate::ruleset::{IsolatedClass, NodeRuleset, PeerGroup, Side};

/// Why a model cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// The model treats host-network pods as ordinary pods, which the kernel
    /// cannot tell from their node.
    HostNetworkAsPods,
    /// The model evaluates a pod reaching itself, which never crosses the
    /// node's filter.
    SelfTrafficEvaluated,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::HostNetworkAsPods => f.write_str(
                "the kernel cannot enforce --host-network pod: a host-network pod's traffic is its node's; compile with --host-network node",
            ),
            CompileError::SelfTrafficEvaluated => f.write_str(
                "the kernel cannot enforce --self-traffic evaluate: a pod's traffic to itself never leaves it; compile with --self-traffic allow",
            ),
        }
    }
}

impl std::error::Error for CompileError {}

/// Endpoints on a node that the ruleset cannot cover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unenforceable {
    /// Endpoints placed on the node that have no IP address (workload
    /// templates, pods without `status.podIPs`).
    pub without_address: Vec<String>,
    /// Peer addresses that pods with different permissions share (an
    /// address reused before the old pod is gone): the kernel cannot tell
    /// them apart, so the ruleset allows such an address only what every
    /// one of those pods is allowed (fail closed). Sorted.
    pub shared_addresses: Vec<IpAddr>,
}

/// One family's view: its model, and the addresses of that family.
struct FamilyView<'m> {
    family: Family,
    model: ModelRef<'m>,
    /// Per class, the addresses (of this family) of its members, computed
    /// when a node's rules first name the class: a node's compile touches
    /// only its own classes and their peers (the agent compiles one node).
    /// Sorted, without duplicates: a class is usually one or a few pods,
    /// and a plain slice costs one allocation where an `IpSet` costs several.
    class_addresses: Vec<OnceLock<Box<[IpAddr]>>>,
    /// Every pod address of this family; ipBlocks exclude them when they
    /// must not match pods. Computed when first needed.
    endpoint_addresses: OnceLock<IpSet>,
    /// The whole address space of this family.
    universe: IpSet,
    /// The ipBlock addresses of each peer set, computed once for all nodes.
    /// Keyed by the peer set's address in the model, which outlives the compiler.
    block_addresses: Mutex<HashMap<usize, Arc<IpSet>>>,
}

/// The caller's model, or one built for a single address family.
enum ModelRef<'m> {
    Borrowed(&'m Model),
    Owned(Box<Model>),
}

impl std::ops::Deref for ModelRef<'_> {
    type Target = Model;

    fn deref(&self) -> &Model {
        match self {
            ModelRef::Borrowed(model) => model,
            ModelRef::Owned(model) => model,
        }
    }
}

impl FamilyView<'_> {
    fn class_addresses(&self, class: ClassId) -> &[IpAddr] {
        self.class_addresses[class].get_or_init(|| {
            let endpoints = &self.model.cluster().endpoints;
            let mut addresses: Vec<IpAddr> = (self.model.classes()[class].members.iter())
                .flat_map(|&member| endpoints[member].ips.iter().copied())
                .filter(|ip| in_family(*ip, self.family))
                .collect();
            addresses.sort_unstable();
            addresses.dedup();
            addresses.into_boxed_slice()
        })
    }

    fn endpoint_addresses(&self) -> &IpSet {
        self.endpoint_addresses.get_or_init(|| {
            let mut builder = IpSetBuilder::default();
            for endpoint in &self.model.cluster().endpoints {
                for &ip in endpoint
                    .ips
                    .iter()
                    .filter(|ip| in_family(**ip, self.family))
                {
                    builder.add_address(ip);
                }
            }
            builder.build()
        })
    }
}

/// Everything about the cluster the compiler needs, shared by all nodes
/// and computed as the nodes need it.
pub struct Compiler<'m> {
    views: Vec<FamilyView<'m>>,
}

/// The addresses of a model's classes, kept from one compile to the next
/// while the model changes in place (the agent): gathering them touches
/// every member pod of every peer class, scattered over the cluster's
/// memory, and was the largest part of a node's compile at 100,000 pods.
///
/// After [`Model::apply`], call [`ClassAddresses::forget`] with the
/// update's `touched_classes`, or [`ClassAddresses::clear`] when it
/// rebuilt the model: a stale entry would put a pod's old address in the
/// ruleset.
#[derive(Default)]
pub struct ClassAddresses {
    /// Per family (IPv4, IPv6), per class.
    families: [Vec<OnceLock<Box<[IpAddr]>>>; 2],
}

impl ClassAddresses {
    /// Forgets the addresses of these classes.
    pub fn forget(&mut self, classes: &[ClassId]) {
        for family in &mut self.families {
            for &class in classes {
                if let Some(slot) = family.get_mut(class) {
                    slot.take();
                }
            }
        }
    }

    /// Forgets everything (the model was rebuilt: class ids changed).
    pub fn clear(&mut self) {
        self.families = Default::default();
    }
}

fn universe(family: Family) -> IpSet {
    let whole = IpSet::everything();
    let other = match family {
        Family::V4 => IpSet::from_range(
            "::".parse().expect("address"),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .expect("address"),
        ),
        Family::V6 => IpSet::from_range(
            "0.0.0.0".parse().expect("address"),
            "255.255.255.255".parse().expect("address"),
        ),
    };
    whole.difference(&other)
}

/// True if the endpoint has both IPv4 and IPv6 addresses: then the answers
/// of ipBlocks that match pods depend on the family, and each family is
/// compiled from a model of its own.
pub fn is_dual_stack(endpoint: &Endpoint) -> bool {
    endpoint.ips.iter().any(IpAddr::is_ipv4) && endpoint.ips.iter().any(IpAddr::is_ipv6)
}

fn in_family(address: IpAddr, family: Family) -> bool {
    address.is_ipv4() == (family == Family::V4)
}

fn number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl<'m> Compiler<'m> {
    /// Prepares to compile rulesets for the nodes of `model`. When the
    /// model's answers depend on the address family (dual-stack pods and
    /// ipBlocks that match pods), a model per family is built from its cluster.
    pub fn new(model: &'m Model) -> Result<Self, CompileError> {
        Compiler::with_class_addresses(model, ClassAddresses::default(), None)
    }

    /// [`Compiler::new`], starting from the class addresses of an earlier
    /// compiler of the same model (see [`ClassAddresses`]); take them back
    /// with [`Compiler::into_class_addresses`]. `dual_stack`, when the
    /// caller knows it, says whether some endpoint of the model is
    /// [`is_dual_stack`] (else every endpoint is looked at).
    pub fn with_class_addresses(
        model: &'m Model,
        mut known: ClassAddresses,
        dual_stack: Option<bool>,
    ) -> Result<Self, CompileError> {
        let config = *model.config();
        if config.host_network == HostNetworkMode::Pod {
            return Err(CompileError::HostNetworkAsPods);
        }
        if config.self_traffic == SelfTraffic::Evaluate {
            return Err(CompileError::SelfTrafficEvaluated);
        }
        let cluster = model.cluster();
        let dual_stack = dual_stack.unwrap_or_else(|| cluster.endpoints.iter().any(is_dual_stack));
        // Each family's chains need that family's exact answers, whatever
        // --family the caller's model was built with.
        let family_matters =
            dual_stack && (config.ip_block == IpBlockMode::Match || has_admin_networks(cluster));
        let mut views = Vec::new();
        for (index, (family, scope)) in [
            (Family::V4, AddressFamily::Ipv4),
            (Family::V6, AddressFamily::Ipv6),
        ]
        .into_iter()
        .enumerate()
        {
            let model = if family_matters && config.address_family != scope {
                ModelRef::Owned(Box::new(Model::new(
                    cluster.clone(),
                    Config {
                        address_family: scope,
                        ..config
                    },
                )))
            } else {
                ModelRef::Borrowed(model)
            };
            let universe = universe(family);
            // A model built for this family alone numbers its classes
            // afresh: what is known is for the caller's model only.
            let mut class_addresses = match model {
                ModelRef::Borrowed(_) => std::mem::take(&mut known.families[index]),
                ModelRef::Owned(_) => Vec::new(),
            };
            class_addresses.resize_with(model.classes().len(), OnceLock::new);
            views.push(FamilyView {
                family,
                model,
                class_addresses,
                endpoint_addresses: OnceLock::new(),
                universe,
                block_addresses: Mutex::default(),
            });
        }
        Ok(Compiler { views })
    }

    /// The class addresses gathered so far, for the next compiler of the
    /// same model.
    pub fn into_class_addresses(self) -> ClassAddresses {
        let mut kept = ClassAddresses::default();
        for (index, view) in self.views.into_iter().enumerate() {
            if let ModelRef::Borrowed(_) = view.model {
                kept.families[index] = view.class_addresses;
            }
        }
        kept
    }

    /// The ruleset of one node, and what on that node cannot be enforced.
    pub fn compile(&self, node: &str) -> (NodeRuleset, Unenforceable) {
        let cluster = self.views[0].model.cluster();
        let local: Vec<EndpointId> = (cluster.endpoints.iter().enumerate())
            .filter(|(_, endpoint)| endpoint.node.as_deref() == Some(node))
            .map(|(id, _)| id)
            .collect();
        self.compile_endpoints(node, &local)
    }

    /// [`Compiler::compile`] for a caller that knows which endpoints are on
    /// the node (`local`: every endpoint whose `node` is `node`, in id
    /// order), sparing a look at every endpoint of the cluster.
    pub fn compile_endpoints(
        &self,
        node: &str,
        local: &[EndpointId],
    ) -> (NodeRuleset, Unenforceable) {
        let mut unenforceable = Unenforceable::default();
        let cluster = self.views[0].model.cluster();
        // The node's own addresses: traffic between a pod and its node is
        // always allowed (docs/SEMANTICS.md §17.7).
        let mut local_node_addresses: Vec<IpAddr> = cluster
            .nodes
            .iter()
            .filter(|n| n.name == node)
            .flat_map(|n| n.addresses.iter().map(|a| a.address))
            .collect();
        let mut sides = Vec::new();
        for view in &self.views {
            let model = &view.model;
            let cluster = model.cluster();
            let mut local_classes: BTreeMap<ClassId, Vec<EndpointId>> = BTreeMap::new();
            for &id in local {
                let endpoint = &cluster.endpoints[id];
                if endpoint.ips.is_empty() {
                    if view.family == Family::V4 {
                        unenforceable
                            .without_address
                            .push(cluster.endpoint_name(id).to_string());
                    }
                    continue;
                }
                let addresses: Vec<IpAddr> = endpoint
                    .ips
                    .iter()
                    .copied()
                    .filter(|ip| in_family(*ip, view.family))
                    .collect();
                if addresses.is_empty() {
                    continue;
                }
                if endpoint.host_network {
                    local_node_addresses.extend(addresses);
                    continue;
                }
                local_classes
                    .entry(model.class_of(id))
                    .or_default()
                    .push(id);
            }
            let own_addresses: Vec<IpAddr> = (local_node_addresses.iter().copied())
                .filter(|ip| in_family(*ip, view.family))
                .collect();
            for direction in [Direction::Ingress, Direction::Egress] {
                sides.push(self.side(
                    view,
                    direction,
                    &local_classes,
                    &own_addresses,
                    &mut unenforceable.shared_addresses,
                ));
            }
        }
        unenforceable.shared_addresses.sort_unstable();
        unenforceable.shared_addresses.dedup();
        sides.sort_by_key(|side| {
            Side::ORDER
                .iter()
                .position(|&(d, f)| d == side.direction && f == side.family)
        });
        let ruleset = NodeRuleset {
            node: node.to_string(),
            local_node_addresses: local_node_addresses.into_iter().collect(),
            sides,
        };
        (ruleset, unenforceable)
    }

    /// The ipBlock addresses of a peer set (not `everyone`).
    fn block_addresses(&self, view: &FamilyView<'_>, peers: &PeerSet) -> Arc<IpSet> {
        let key = std::ptr::from_ref(peers) as usize;
        if let Some(addresses) = lock(&view.block_addresses).get(&key) {
            return Arc::clone(addresses);
        }
        let addresses = if peers.addresses.is_empty() {
            IpSet::empty()
        } else {
            let addresses = match view.model.config().ip_block {
                IpBlockMode::Match => peers.addresses.clone(),
                // ipBlocks match only addresses outside the cluster.
                IpBlockMode::Ignore => peers.addresses.difference(view.endpoint_addresses()),
            };
            addresses.intersection(&view.universe)
        };
        let addresses = Arc::new(addresses);
        lock(&view.block_addresses).insert(key, Arc::clone(&addresses));
        addresses
    }

    /// One direction and family of the node: its isolated local classes and
    /// their peers, sorted into groups.
    fn side(
        &self,
        view: &FamilyView<'_>,
        direction: Direction,
        local_classes: &BTreeMap<ClassId, Vec<EndpointId>>,
        own_addresses: &[IpAddr],
        shared_addresses: &mut Vec<IpAddr>,
    ) -> Side {
        let model = &view.model;
        let cluster = model.cluster();
        let classes = model.classes();
        let mut side = Side::empty(direction, view.family);
        let mut isolated_rules: Vec<SideRules<'_>> = Vec::new();
        for (&class, members) in local_classes {
            let rules = model.side_rules(direction, class);
            if rules.is_open() {
                continue;
            }
            let admin_policies = (rules.admin.iter().chain(&rules.baseline))
                .map(|rule| rule.rule.policy)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|policy| cluster.admin_policies[policy].reference());
            let mut addresses: Vec<IpAddr> = members
                .iter()
                .flat_map(|&m| cluster.endpoints[m].ips.iter().copied())
                .filter(|ip| in_family(*ip, view.family))
                .collect();
            addresses.sort();
            addresses.dedup();
            side.isolated.push(IsolatedClass {
                class,
                members: members
                    .iter()
                    .map(|&m| cluster.endpoint_name(m).to_string())
                    .collect(),
                addresses,
                policies: admin_policies
                    .chain(
                        model
                            .policies_selecting(members[0], direction)
                            .iter()
                            .map(|&p| cluster.policies[p].reference()),
                    )
                    .collect(),
            });
            isolated_rules.push(rules);
        }
        if side.isolated.is_empty() {
            return side;
        }
        let mut grouping = Grouping {
            direction,
            classes,
            isolated: &side.isolated,
            entries: Vec::new(),
            base: vec![PortSet::empty(); side.isolated.len()],
            everyone_named: Vec::new(),
            tiered: Vec::new(),
            entry_of: HashMap::new(),
            tiered_entries: Vec::new(),
            tiered_base: Vec::new(),
        };
        // Classes with admin-tier rules are answered by evaluating their
        // rules in order (`SideRules`); the others by the union of their
        // NetworkPolicy grants.
        grouping.tiered = (isolated_rules.iter())
            .map(|rules| (!rules.admin.is_empty() || !rules.baseline.is_empty()).then_some(rules))
            .collect();
        // 1. Entries: the rules of the isolated classes, by peer set. Rules
        // of different policies often name the same peers (a namespace, the
        // monitoring pods): equal peer sets are one entry.
        let mut by_digest: HashMap<u64, Vec<usize>> = HashMap::new();
        for (local, rules) in isolated_rules.iter().enumerate() {
            let tier_rules =
                (rules.admin.iter().chain(&rules.baseline)).map(|rule| (rule.peers, rule.ports));
            let grants = rules.network_policy.iter().flatten().copied();
            for (peers, ports) in grants.chain(tier_rules) {
                if peers.everyone {
                    // Every address: ports toward addresses (ingress: on the
                    // local class) for everyone, and named ports of each
                    // destination class on top (egress).
                    let resolved = grouping.resolve(local, ports, None);
                    grouping.base[local].union_with(&resolved);
                    if direction == Direction::Egress && !ports.all && !ports.named.is_empty() {
                        grouping.everyone_named.push((local, ports));
                    }
                    continue;
                }
                let key = std::ptr::from_ref(peers) as usize;
                let entry = match grouping.entry_of.get(&key) {
                    Some(&entry) => entry,
                    None => {
                        let same = by_digest.entry(digest(peers)).or_default();
                        let entry = match same.iter().find(|&&e| grouping.entries[e].peers == peers)
                        {
                            Some(&entry) => entry,
                            None => {
                                grouping.entries.push(Entry {
                                    peers,
                                    grants: Vec::new(),
                                });
                                same.push(grouping.entries.len() - 1);
                                grouping.entries.len() - 1
                            }
                        };
                        grouping.entry_of.insert(key, entry);
                        entry
                    }
                };
                let grant = grouping.grant(local, ports);
                grouping.entries[entry].grants.push(grant);
            }
        }
        grouping.prepare_tiered();
        // 2. Signatures of peer classes; ipBlock parts.
        let mut signatures: BTreeMap<ClassId, Vec<usize>> = BTreeMap::new();
        for (index, entry) in grouping.entries.iter().enumerate() {
            for class in entry.peers.classes.ones() {
                if !view.class_addresses(class).is_empty() {
                    signatures.entry(class).or_default().push(index);
                }
            }
        }
        if !grouping.everyone_named.is_empty() {
            // Named ports toward everyone resolve on every destination class.
            for class in 0..classes.len() {
                if !view.class_addresses(class).is_empty() {
                    signatures.entry(class).or_default();
                }
            }
        }
        let blocks: Vec<(usize, Arc<IpSet>)> = grouping
            .entries
            .iter()
            .enumerate()
            .map(|(index, entry)| (index, self.block_addresses(view, entry.peers)))
            .filter(|(_, addresses)| !addresses.is_empty())
            .collect();
        let block_sets: Vec<&IpSet> = blocks.iter().map(|(_, set)| set.as_ref()).collect();
        let parts: Vec<(Vec<usize>, IpSet)> = overlay(&block_sets)
            .into_iter()
            .map(|(membership, part)| {
                let entries = membership.into_iter().map(|b| blocks[b].0).collect();
                (entries, part)
            })
            .collect();
        // Every range of every part, sorted, to find the part of an address.
        let mut part_ranges: Vec<(u128, u128, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(index, (_, part))| {
                part.ranges(view.family)
                    .map(move |(first, last)| (number(first), number(last), index))
            })
            .collect();
        part_ranges.sort_unstable();
        let part_of = |address: IpAddr| -> Option<usize> {
            let n = number(address);
            let position = part_ranges.partition_point(|&(first, _, _)| first <= n);
            position
                .checked_sub(1)
                .map(|p| part_ranges[p])
                .filter(|&(_, last, _)| n <= last)
                .map(|(_, _, part)| part)
        };
        // 3. Answers, and the groups they make.
        let mut answers = Answers::new(grouping.answer(&[], None, &[]));
        // ipBlock parts first: a pod address whose group is that of its
        // part needs no entry of its own.
        let part_groups: Vec<Option<usize>> = parts
            .iter()
            .map(|(entries, _)| answers.group_of(grouping.answer(&[], None, entries)))
            .collect();
        // Classes with the same signature and named port numbers answer
        // alike: one answer per such kind (and ipBlock part), not per pod.
        let mut kinds: HashMap<(&[usize], Vec<Option<u16>>), usize> = HashMap::new();
        let mut answered: HashMap<(usize, Option<usize>), Option<usize>> = HashMap::new();
        // Every pod address with its group, and its part's group.
        let mut claims: Vec<(IpAddr, Option<usize>, Option<usize>)> = Vec::new();
        for (&class, signature) in &signatures {
            let numbers = grouping.named_numbers(signature, class);
            let next = kinds.len();
            let kind = *kinds.entry((signature, numbers)).or_insert(next);
            for &address in view.class_addresses(class) {
                let part = part_of(address);
                let group = *answered.entry((kind, part)).or_insert_with(|| {
                    let blocks = part.map_or(&[][..], |p| parts[p].0.as_slice());
                    answers.group_of(grouping.answer(signature, Some(class), blocks))
                });
                claims.push((address, group, part.and_then(|p| part_groups[p])));
            }
        }
        // The node's own addresses (egress, reached in `input`): NetworkPolicy
        // always allows them, the Admin tier may still refuse them
        // (docs/SEMANTICS.md §18.9). Their answer replaces any pod's.
        if direction == Direction::Egress {
            claims.retain(|claim| !own_addresses.contains(&claim.0));
            for &address in own_addresses {
                let group = answers.group_of(grouping.own_node_answer(address));
                let part_group = part_of(address).and_then(|part| part_groups[part]);
                claims.push((address, group, part_group));
            }
        }
        claims.sort_unstable();
        let mut peer_addresses = Vec::new();
        for claims in claims.chunk_by(|a, b| a.0 == b.0) {
            let (address, mut group, part_group) = claims[0];
            if claims.iter().any(|claim| claim.1 != group) {
                // Pods of different answers share this address (an address
                // reused before the old pod is gone): the kernel cannot tell
                // them apart. Fail closed: allow only what every one of
                // them is allowed.
                let answer = (claims[1..].iter())
                    .fold(answers.get(group).clone(), |common, claim| {
                        intersect(&common, answers.get(claim.1))
                    });
                group = answers.group_of(answer);
                shared_addresses.push(address);
            }
            if group != part_group {
                // (A pod's answer includes its part's, so a pod in group 0
                // never lies in a part of another group.)
                peer_addresses.push((address, group.unwrap_or(0)));
            }
        }
        let mut peer_ranges: Vec<(IpAddr, IpAddr, usize)> = Vec::new();
        for ((_, part), group) in parts.iter().zip(&part_groups) {
            if let Some(group) = *group {
                peer_ranges.extend(part.ranges(view.family).map(|(f, l)| (f, l, group)));
            }
        }
        peer_addresses.sort_unstable();
        peer_ranges.sort_unstable();
        // Adjacent ranges of one group are one range.
        let mut merged: Vec<(IpAddr, IpAddr, usize)> = Vec::with_capacity(peer_ranges.len());
        for (first, last, group) in peer_ranges {
            if let Some(previous) = merged.last_mut()
                && previous.2 == group
                && number(previous.1).checked_add(1) == Some(number(first))
            {
                previous.1 = last;
                continue;
            }
            merged.push((first, last, group));
        }
        // Number groups in order of their first peer: pods, then ranges.
        let mut renumber = vec![usize::MAX; answers.list.len()];
        renumber[0] = 0;
        let mut order = vec![0];
        for group in peer_addresses
            .iter()
            .map(|&(_, g)| g)
            .chain(merged.iter().map(|&(_, _, g)| g))
        {
            if renumber[group] == usize::MAX {
                renumber[group] = order.len();
                order.push(group);
            }
        }
        side.peer_addresses = peer_addresses
            .into_iter()
            .map(|(address, group)| (address, renumber[group]))
            .collect();
        side.peer_ranges = merged
            .into_iter()
            .map(|(first, last, group)| (first, last, renumber[group]))
            .collect();
        side.groups = order
            .iter()
            .enumerate()
            .map(|(index, &group)| {
                let name = if index == 0 {
                    side.others_name()
                } else {
                    side.group_name(index)
                };
                expand(name, &answers.list[group], &side.isolated)
            })
            .collect();
        side
    }
}

/// The rules of the isolated classes that name one peer set.
struct Entry<'a> {
    peers: &'a PeerSet,
    grants: Vec<Grant<'a>>,
}

/// One rule of an isolated class, its ports resolved as far as they can be
/// before knowing the peer.
struct Grant<'a> {
    /// The isolated class (index into the side's `isolated`).
    local: usize,
    /// The ports toward a pod of the peer set, when they do not depend on
    /// which (ingress, or egress without named ports).
    pods: Option<PortSet>,
    /// The rule, to resolve named egress ports on each destination class.
    rule: &'a RulePorts,
    /// The ports toward an address of the peer set's ipBlocks.
    blocks: PortSet,
}

/// A cheap digest of a peer set, to find equal ones without comparing
/// every pair.
fn digest(peers: &PeerSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    peers.everyone.hash(&mut hasher);
    peers.classes.count().hash(&mut hasher);
    for class in peers.classes.ones().take(8) {
        class.hash(&mut hasher);
    }
    peers.addresses.hash(&mut hasher);
    hasher.finish()
}

/// What a peer address may do with the isolated local classes: (isolated
/// class index, ports), sorted by index, ports never empty.
type Answer = Vec<(usize, PortSet)>;

/// What every isolated class allows a peer in both answers (sorted by
/// isolated class, as [`Grouping::answer`] leaves them).
fn intersect(a: &Answer, b: &Answer) -> Answer {
    a.iter()
        .filter_map(|(local, ports)| {
            let (_, other) = b.iter().find(|(l, _)| l == local)?;
            let common = ports.intersection(other);
            (!common.is_empty()).then_some((*local, common))
        })
        .collect()
}

/// The distinct answers of a side, numbered: the base answer (what every
/// address gets) is 0 and has no group of its own.
struct Answers {
    base: Answer,
    list: Vec<Answer>,
    index: HashMap<Answer, usize>,
}

impl Answers {
    fn new(base: Answer) -> Self {
        Answers {
            list: vec![base.clone()],
            base,
            index: HashMap::new(),
        }
    }

    /// The group of `answer`; `None` for the base answer.
    fn group_of(&mut self, answer: Answer) -> Option<usize> {
        if answer == self.base {
            return None;
        }
        if let Some(&group) = self.index.get(&answer) {
            return Some(group);
        }
        let group = self.list.len();
        self.list.push(answer.clone());
        self.index.insert(answer, group);
        Some(group)
    }

    /// The answer of a group (`None`: the base answer).
    fn get(&self, group: Option<usize>) -> &Answer {
        group.map_or(&self.base, |group| &self.list[group])
    }
}

struct Grouping<'a> {
    direction: Direction,
    classes: &'a [policy_core::model::PodClass],
    isolated: &'a [IsolatedClass],
    entries: Vec<Entry<'a>>,
    /// Per isolated class, the ports every address gets (rules without peers).
    base: Vec<PortSet>,
    /// Egress rules without peers but with named ports: (isolated class
    /// index, ports); these resolve on each destination class.
    everyone_named: Vec<(usize, &'a RulePorts)>,
    /// Per isolated class, its rules when admin tiers apply to it.
    tiered: Vec<Option<&'a SideRules<'a>>>,
    /// The entry of each peer set, by address.
    entry_of: HashMap<usize, usize>,
    /// Per tiered isolated class, the entries its rules name, sorted.
    tiered_entries: Vec<Vec<usize>>,
    /// Per tiered isolated class, its answer toward a peer no entry of it
    /// holds, when that does not depend on the peer's class.
    tiered_base: Vec<Option<PortSet>>,
}

impl<'a> Grouping<'a> {
    /// The ports `ports` allows to or from a peer of class `peer` (`None`:
    /// an address outside the cluster) for isolated class `local`. Named
    /// ports resolve on the destination: the local class for ingress.
    fn resolve(&self, local: usize, ports: &RulePorts, peer: Option<ClassId>) -> PortSet {
        match self.direction {
            Direction::Ingress => ports.resolve(Some(&self.classes[self.isolated[local].class])),
            Direction::Egress => ports.resolve(peer.map(|class| &self.classes[class])),
        }
    }

    /// A rule of isolated class `local`, resolved as far as it can be.
    fn grant(&self, local: usize, rule: &'a RulePorts) -> Grant<'a> {
        let blocks = self.resolve(local, rule, None);
        let per_destination =
            self.direction == Direction::Egress && !rule.all && !rule.named.is_empty();
        Grant {
            local,
            pods: (!per_destination).then(|| blocks.clone()),
            rule,
            blocks,
        }
    }

    /// The numbers the named egress ports of a signature resolve to on
    /// `class`: peers of one signature with equal numbers answer alike.
    fn named_numbers(&self, signature: &[usize], class: ClassId) -> Vec<Option<u16>> {
        if self.direction == Direction::Ingress {
            return Vec::new();
        }
        let everyone = self.everyone_named.iter().map(|(_, ports)| *ports);
        signature
            .iter()
            .flat_map(|&entry| self.entries[entry].grants.iter())
            .filter(|grant| grant.pods.is_none())
            .map(|grant| grant.rule)
            .chain(everyone)
            .flat_map(|ports| ports.named.iter())
            .map(|(protocol, name)| self.classes[class].named_port(name, *protocol))
            .collect()
    }

    /// What an address may do: the rules without peers, the rules of the
    /// entries that name its class (`class_entries`, for a pod of class
    /// `class`) and those whose ipBlocks hold it (`block_entries`).
    fn answer(
        &self,
        class_entries: &[usize],
        class: Option<ClassId>,
        block_entries: &[usize],
    ) -> Answer {
        let mut contributions: Vec<(usize, std::borrow::Cow<'_, PortSet>)> = self
            .base
            .iter()
            .enumerate()
            .filter(|(_, ports)| !ports.is_empty())
            .map(|(local, ports)| (local, std::borrow::Cow::Borrowed(ports)))
            .collect();
        if class.is_some() {
            for &(local, rule) in &self.everyone_named {
                let ports = self.resolve(local, rule, class);
                contributions.push((local, std::borrow::Cow::Owned(ports)));
            }
        }
        for &entry in class_entries {
            for grant in &self.entries[entry].grants {
                let ports = match &grant.pods {
                    Some(ports) => std::borrow::Cow::Borrowed(ports),
                    None => std::borrow::Cow::Owned(self.resolve(grant.local, grant.rule, class)),
                };
                contributions.push((grant.local, ports));
            }
        }
        for &entry in block_entries {
            for grant in &self.entries[entry].grants {
                contributions.push((grant.local, std::borrow::Cow::Borrowed(&grant.blocks)));
            }
        }
        contributions.retain(|(local, ports)| !ports.is_empty() && self.tiered[*local].is_none());
        for (local, rules) in self.tiered.iter().enumerate() {
            let Some(rules) = rules else {
                continue;
            };
            // Most tiered classes name none of this peer's entries: their
            // answer is the one toward any other peer, computed once.
            if let Some(base) = &self.tiered_base[local] {
                let named = |entries: &[usize]| {
                    (self.tiered_entries[local].iter()).any(|e| entries.binary_search(e).is_ok())
                };
                let blocks_named =
                    (self.tiered_entries[local].iter()).any(|e| block_entries.contains(e));
                let peer_named = blocks_named || (class.is_some() && named(class_entries));
                if !peer_named {
                    if !base.is_empty() {
                        contributions.push((local, std::borrow::Cow::Borrowed(base)));
                    }
                    continue;
                }
            }
            let ports = rules.allowed(false, |peers, ports| {
                if peers.everyone {
                    return self.resolve(local, ports, class);
                }
                let entry = self.entry_of[&(std::ptr::from_ref(peers) as usize)];
                if class.is_some() && class_entries.binary_search(&entry).is_ok() {
                    self.resolve(local, ports, class)
                } else if block_entries.contains(&entry) {
                    self.resolve(local, ports, None)
                } else {
                    PortSet::empty()
                }
            });
            if !ports.is_empty() {
                contributions.push((local, std::borrow::Cow::Owned(ports)));
            }
        }
        contributions.sort_by_key(|(local, _)| *local);
        let mut answer: Answer = Vec::new();
        for (local, ports) in contributions {
            match answer.last_mut() {
                Some((last, merged)) if *last == local => merged.union_with(&ports),
                _ => answer.push((local, ports.into_owned())),
            }
        }
        answer
    }
}

impl Grouping<'_> {
    /// The entries each tiered class names, and its answer toward a peer
    /// none of them holds (when rules without peers do not resolve named
    /// ports on the peer's class).
    fn prepare_tiered(&mut self) {
        let mut entries = Vec::with_capacity(self.tiered.len());
        let mut bases = Vec::with_capacity(self.tiered.len());
        for (local, rules) in self.tiered.iter().enumerate() {
            let Some(rules) = rules else {
                entries.push(Vec::new());
                bases.push(None);
                continue;
            };
            let tier_rules =
                (rules.admin.iter().chain(&rules.baseline)).map(|rule| (rule.peers, rule.ports));
            let all = rules
                .network_policy
                .iter()
                .flatten()
                .copied()
                .chain(tier_rules);
            let mut named: Vec<usize> = Vec::new();
            let mut class_free = true;
            for (peers, ports) in all {
                if peers.everyone {
                    class_free &=
                        self.direction == Direction::Ingress || ports.all || ports.named.is_empty();
                } else {
                    named.push(self.entry_of[&(std::ptr::from_ref(peers) as usize)]);
                }
            }
            named.sort_unstable();
            named.dedup();
            let base = class_free.then(|| {
                rules.allowed(false, |peers, ports| {
                    if peers.everyone {
                        self.resolve(local, ports, None)
                    } else {
                        PortSet::empty()
                    }
                })
            });
            entries.push(named);
            bases.push(base);
        }
        self.tiered_entries = entries;
        self.tiered_base = bases;
    }

    /// What the node's own address `address` may do: everything, for the
    /// classes no admin tier applies to (NetworkPolicy always allows a pod
    /// and its node); for the others, what the Admin tier leaves.
    fn own_node_answer(&self, address: IpAddr) -> Answer {
        (0..self.isolated.len())
            .filter_map(|local| {
                let ports = match self.tiered[local] {
                    None => PortSet::all(),
                    Some(rules) => rules.allowed(true, |peers, ports| {
                        if peers.contains_address(address) {
                            self.resolve(local, ports, None)
                        } else {
                            PortSet::empty()
                        }
                    }),
                };
                (!ports.is_empty()).then_some((local, ports))
            })
            .collect()
    }
}

/// A group's set elements: its answer, over the local addresses.
fn expand(name: String, answer: &Answer, isolated: &[IsolatedClass]) -> PeerGroup {
    let mut group = PeerGroup {
        name,
        ..PeerGroup::default()
    };
    for (local, ports) in answer {
        for &address in &isolated[*local].addresses {
            if ports.is_all() {
                group.any.push(address);
                continue;
            }
            for protocol in Protocol::ALL {
                for &(low, high) in ports.ranges(protocol) {
                    if low == high {
                        group.ports.push((address, protocol, low));
                    } else {
                        group.port_ranges.push((address, protocol, low, high));
                    }
                }
            }
        }
    }
    group.any.sort_unstable();
    group.ports.sort_unstable();
    group.port_ranges.sort_unstable();
    group
}

/// The cache's lock; a panic elsewhere cannot leave the cache inconsistent
/// (entries are inserted whole), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True if an admin-tier rule has a `networks` peer: those match pod
/// addresses whatever the ipBlock mode, so a dual-stack pod's answer
/// depends on the packet's family.
fn has_admin_networks(cluster: &policy_core::Cluster) -> bool {
    (cluster.admin_policies.iter())
        .flat_map(|policy| policy.ingress.iter().chain(&policy.egress))
        .flat_map(|rule| &rule.peers)
        .any(|peer| matches!(peer, policy_core::admin::AdminPeer::Networks(_)))
}

/// The nodes the cluster's pods run on, sorted.
pub fn nodes(model: &Model) -> Vec<String> {
    let mut nodes: Vec<String> = model
        .cluster()
        .endpoints
        .iter()
        .filter_map(|e| e.node.clone())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}
