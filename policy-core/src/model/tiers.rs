//! The admin tiers at class level (docs/SEMANTICS.md §18).
//!
//! [`Model::new`] compiles every admin-tier policy as it compiles
//! NetworkPolicies: its subject becomes a class set, each rule a
//! [`PeerSet`] and interned [`RulePorts`]. Classes are told apart by what
//! the tiers can see (host-networked or not, which `networks` hold their
//! addresses, which `nodes` selectors match a host-networked pod's node),
//! so every member of a class gets the same answer.
//!
//! One side of a connection is then a [`SideRules`]: the Admin-tier rules
//! that apply to the class, in precedence order; the NetworkPolicy rules
//! (or none, when no NetworkPolicy isolates the class); the Baseline-tier
//! rules. [`SideRules::allowed`] evaluates them over port sets: first match
//! per port, so one pass gives every port's answer. It is the class-level
//! twin of the per-connection reading in `crate::admin::evaluate`, which
//! the property tests compare it with.

use std::collections::HashMap;
use std::ops::Range;

use super::{ClassId, PeerSet, RulePorts, direction_index};
use crate::admin::{Action, AdminPeer, AdminPolicy, AdminPort, AdminRule, Subject, Tier};
use crate::bitset::BitSet;
use crate::cluster::{Cluster, Endpoint};
use crate::config::AddressFamily;
use crate::ipset::IpSet;
use crate::model::AdminRuleRef;
use crate::policy::Direction;
use crate::ports::{PortSet, Protocol};
use crate::selector::Selector;

/// What the tiers' `networks` and `nodes` peers can tell about an endpoint
/// by its addresses and node: each distinct network set and node selector
/// gets an id, and an endpoint's class key holds the ids that match it.
#[derive(Default)]
pub(crate) struct AddressPeers {
    pub(crate) networks: Vec<IpSet>,
    pub(crate) node_selectors: Vec<Selector>,
}

impl AddressPeers {
    pub(crate) fn of(cluster: &Cluster) -> Self {
        let mut peers = AddressPeers::default();
        let mut networks: HashMap<IpSet, usize> = HashMap::new();
        let mut selectors: HashMap<&Selector, usize> = HashMap::new();
        for policy in &cluster.admin_policies {
            for rule in policy.ingress.iter().chain(&policy.egress) {
                for peer in &rule.peers {
                    match peer {
                        AdminPeer::Networks(cidrs) => {
                            let set = network_set(cidrs);
                            let next = networks.len();
                            networks.entry(set.clone()).or_insert_with(|| {
                                peers.networks.push(set);
                                next
                            });
                        }
                        AdminPeer::Nodes(selector) => {
                            let next = selectors.len();
                            selectors.entry(selector).or_insert_with(|| {
                                peers.node_selectors.push(selector.clone());
                                next
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
        peers
    }

    pub(crate) fn len(&self) -> usize {
        self.networks.len() + self.node_selectors.len()
    }

    /// The ids (from `offset`) of the network sets holding one of the
    /// endpoint's addresses, then of the node selectors matching its node
    /// when it is host-networked (its addresses are its node's).
    pub(crate) fn marks(
        &self,
        cluster: &Cluster,
        endpoint: &Endpoint,
        family: AddressFamily,
        offset: usize,
        marks: &mut Vec<usize>,
    ) {
        for (id, set) in self.networks.iter().enumerate() {
            let inside = endpoint
                .ips
                .iter()
                .any(|&ip| family.includes(ip) && set.contains(ip));
            if inside {
                marks.push(offset + id);
            }
        }
        if !endpoint.host_network {
            return;
        }
        let Some(node) = endpoint.node.as_deref().and_then(|name| cluster.node(name)) else {
            return;
        };
        for (id, selector) in self.node_selectors.iter().enumerate() {
            if selector.matches(&node.labels) {
                marks.push(offset + self.networks.len() + id);
            }
        }
    }

    fn network_id(&self, cidrs: &[crate::ipset::Cidr]) -> usize {
        let set = network_set(cidrs);
        (self.networks.iter())
            .position(|known| *known == set)
            .expect("network sets are collected from the same policies")
    }

    fn node_selector_id(&self, selector: &Selector) -> usize {
        self.networks.len()
            + (self.node_selectors.iter())
                .position(|known| known == selector)
                .expect("node selectors are collected from the same policies")
    }
}

fn network_set(cidrs: &[crate::ipset::Cidr]) -> IpSet {
    let mut set = IpSet::empty();
    for cidr in cidrs {
        set.union_with(&IpSet::from_cidr(*cidr));
    }
    set
}

/// One admin-tier rule, compiled.
#[derive(Clone, Debug)]
pub(crate) struct CompiledAdminRule {
    pub(crate) rule: AdminRuleRef,
    pub(crate) action: Action,
    pub(crate) peers: PeerSet,
    /// Index into [`super::Model::distinct_ports`].
    pub(crate) ports: usize,
}

/// The admin tiers, compiled over the model's classes.
#[derive(Clone, Debug)]
pub(crate) struct CompiledTiers {
    pub(crate) rules: Vec<CompiledAdminRule>,
    /// Per admin policy, its subject's classes.
    pub(crate) subjects: Vec<BitSet>,
    /// Per admin policy, the range of its ingress and egress rules.
    pub(crate) policy_rules: Vec<[Range<usize>; 2]>,
    /// Per tier (Admin, Baseline), the policies in precedence order.
    pub(crate) order: [Vec<usize>; 2],
    /// Per direction, the classes some policy with rules of that
    /// direction applies to.
    pub(crate) restricted: [BitSet; 2],
    /// Classes of pod-network endpoints (possible subjects and pod peers).
    pub(crate) pod_network: BitSet,
    /// Per class, the admin policies that select it: the Admin tier's in
    /// precedence order, then the Baseline tier's.
    pub(crate) by_class: Vec<Vec<u32>>,
}

impl CompiledTiers {
    pub(crate) fn empty(class_count: usize) -> Self {
        CompiledTiers {
            rules: Vec::new(),
            subjects: Vec::new(),
            policy_rules: Vec::new(),
            order: [Vec::new(), Vec::new()],
            restricted: [BitSet::new(class_count), BitSet::new(class_count)],
            pod_network: BitSet::new(class_count),
            by_class: Vec::new(),
        }
    }
}

/// What [`compile`] needs from the model under construction.
pub(crate) struct TierInputs<'a, 'c> {
    pub(crate) cluster: &'c Cluster,
    pub(crate) selectors: &'a mut super::SelectorIndex<'c>,
    /// Classes per address-peer id (see [`AddressPeers`]).
    pub(crate) address_classes: &'a [BitSet],
    pub(crate) address_peers: &'a AddressPeers,
    /// Classes of pod-network endpoints: the only possible subjects and
    /// `namespaces`/`pods` peers.
    pub(crate) pod_network: &'a BitSet,
    /// Node addresses (Node objects and host-networked pods) with their node.
    pub(crate) node_addresses: &'a HashMap<std::net::IpAddr, String>,
    pub(crate) class_count: usize,
}

/// Compiles the cluster's admin policies. `intern` gives the id of a
/// distinct port list.
pub(crate) fn compile(
    inputs: TierInputs<'_, '_>,
    mut intern: impl FnMut(RulePorts) -> usize,
) -> CompiledTiers {
    let TierInputs {
        cluster,
        selectors,
        address_classes,
        address_peers,
        pod_network,
        node_addresses,
        class_count,
    } = inputs;
    let mut tiers = CompiledTiers::empty(class_count);
    tiers.pod_network = pod_network.clone();
    for (policy_id, policy) in cluster.admin_policies.iter().enumerate() {
        let (namespaces, pods) = match &policy.subject {
            Subject::Namespaces(namespaces) => (namespaces, None),
            Subject::Pods { namespaces, pods } => (namespaces, Some(pods)),
        };
        tiers
            .subjects
            .push(pod_classes(selectors, pod_network, namespaces, pods));
        let mut ranges = [0..0, 0..0];
        for direction in [Direction::Ingress, Direction::Egress] {
            let start = tiers.rules.len();
            for rule in policy.rules(direction) {
                let peers = compile_peers(
                    rule,
                    cluster,
                    selectors,
                    address_classes,
                    address_peers,
                    pod_network,
                    node_addresses,
                    class_count,
                );
                tiers.rules.push(CompiledAdminRule {
                    rule: AdminRuleRef {
                        policy: policy_id,
                        direction,
                        index: rule.index,
                    },
                    action: rule.action,
                    peers,
                    ports: intern(rule_ports(rule)),
                });
            }
            ranges[direction_index(direction)] = start..tiers.rules.len();
            if start < tiers.rules.len() {
                let subjects = &tiers.subjects[policy_id];
                tiers.restricted[direction_index(direction)].union_with(subjects);
            }
        }
        tiers.policy_rules.push(ranges);
    }
    for tier in [Tier::Admin, Tier::Baseline] {
        let mut order: Vec<usize> = (0..cluster.admin_policies.len())
            .filter(|&p| cluster.admin_policies[p].tier == tier)
            .collect();
        order.sort_by_key(|&p| (precedence(&cluster.admin_policies[p]), p));
        tiers.order[tier_index(tier)] = order;
    }
    tiers.by_class = vec![Vec::new(); class_count];
    for &policy in tiers.order.iter().flatten() {
        for class in tiers.subjects[policy].ones() {
            tiers.by_class[class].push(policy as u32);
        }
    }
    tiers
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Admin => 0,
        Tier::Baseline => 1,
    }
}

/// Lower first; the BANP (no priority) after every Baseline CNP, as
/// `crate::admin::evaluate` orders them (docs/SEMANTICS.md §18.9).
fn precedence(policy: &AdminPolicy) -> u64 {
    policy.priority.map_or(u64::MAX, u64::from)
}

fn pod_classes(
    selectors: &mut super::SelectorIndex<'_>,
    pod_network: &BitSet,
    namespaces: &Selector,
    pods: Option<&Selector>,
) -> BitSet {
    let mut classes = selectors
        .namespaces(&crate::policy::NamespaceScope::Selected(namespaces.clone()))
        .clone();
    if let Some(pods) = pods {
        classes.intersect_with(selectors.pods(pods));
    }
    classes.intersect_with(pod_network);
    classes
}

#[allow(clippy::too_many_arguments)]
fn compile_peers(
    rule: &AdminRule,
    cluster: &Cluster,
    selectors: &mut super::SelectorIndex<'_>,
    address_classes: &[BitSet],
    address_peers: &AddressPeers,
    pod_network: &BitSet,
    node_addresses: &HashMap<std::net::IpAddr, String>,
    class_count: usize,
) -> PeerSet {
    let mut classes = BitSet::new(class_count);
    let mut addresses = IpSet::empty();
    for peer in &rule.peers {
        match peer {
            AdminPeer::Namespaces(namespaces) => {
                classes.union_with(&pod_classes(selectors, pod_network, namespaces, None));
            }
            AdminPeer::Pods { namespaces, pods } => {
                classes.union_with(&pod_classes(selectors, pod_network, namespaces, Some(pods)));
            }
            AdminPeer::Networks(cidrs) => {
                addresses.union_with(&network_set(cidrs));
                classes.union_with(&address_classes[address_peers.network_id(cidrs)]);
            }
            AdminPeer::Nodes(selector) => {
                let mut builder = crate::ipset::IpSetBuilder::default();
                for (&address, node) in node_addresses {
                    if cluster
                        .node(node)
                        .is_some_and(|node| selector.matches(&node.labels))
                    {
                        builder.add_address(address);
                    }
                }
                addresses.union_with(&builder.build());
                classes.union_with(&address_classes[address_peers.node_selector_id(selector)]);
            }
            // Names cannot be resolved from manifests: no address is known
            // to match them (docs/SEMANTICS.md §18.9).
            AdminPeer::DomainNames(_) => {}
            // Fail closed (API): an Accept rule matches nothing, a Deny or
            // Pass rule everything.
            AdminPeer::Unknown => {
                if rule.action != Action::Accept {
                    return PeerSet {
                        everyone: true,
                        classes: BitSet::full(class_count),
                        addresses: IpSet::everything(),
                    };
                }
            }
        }
    }
    PeerSet {
        everyone: false,
        classes,
        addresses,
    }
}

/// An admin rule's ports in the model's form. A named port's protocol is
/// the container port's, so it stands for that name under every protocol.
/// An entry of an unknown protocol fails closed: it matches nothing in an
/// Accept rule and every port in a Deny or Pass rule.
fn rule_ports(rule: &AdminRule) -> RulePorts {
    let all = RulePorts {
        all: true,
        numeric: PortSet::all(),
        named: Vec::new(),
    };
    let Some(entries) = &rule.ports else {
        return all;
    };
    let mut numeric = PortSet::empty();
    let mut named = Vec::new();
    for entry in entries {
        match entry {
            AdminPort::Number { protocol, port } => numeric.insert(*protocol, *port, *port),
            AdminPort::Range {
                protocol,
                start,
                end,
            } => numeric.insert(*protocol, *start, *end),
            AdminPort::Named(name) => {
                named.extend(Protocol::ALL.map(|protocol| (protocol, name.clone())));
            }
            AdminPort::UnknownProtocol(_) => {
                if rule.action != Action::Accept {
                    return all;
                }
            }
        }
    }
    named.sort();
    named.dedup();
    RulePorts {
        all: false,
        numeric,
        named,
    }
}

/// A rule of a tier, as one side sees it.
#[derive(Clone, Copy, Debug)]
pub struct TierRule<'m> {
    /// The rule.
    pub rule: AdminRuleRef,
    /// What a match does.
    pub action: Action,
    /// Its peers.
    pub peers: &'m PeerSet,
    /// Its ports (named ports resolve on the destination).
    pub ports: &'m RulePorts,
}

/// Everything that decides one side (a direction of one class): the
/// Admin-tier rules, the NetworkPolicy rules, the Baseline-tier rules.
#[derive(Clone, Debug, Default)]
pub struct SideRules<'m> {
    /// Admin-tier rules that apply to the class, in precedence order.
    pub admin: Vec<TierRule<'m>>,
    /// The NetworkPolicy rules of the policies isolating the class; `None`
    /// when none does (then the Baseline tier decides).
    pub network_policy: Option<Vec<(&'m PeerSet, &'m RulePorts)>>,
    /// Baseline-tier rules that apply to the class, in precedence order.
    pub baseline: Vec<TierRule<'m>>,
}

impl SideRules<'_> {
    /// True when nothing restricts the side: every connection is allowed.
    pub fn is_open(&self) -> bool {
        self.admin.is_empty() && self.network_policy.is_none() && self.baseline.is_empty()
    }

    /// The ports allowed toward one peer. `matched(peers, ports)` gives the
    /// ports of a rule toward that peer: empty when `peers` does not hold
    /// it, named ports resolved on the destination. `exempt`: the
    /// NetworkPolicy tier allows the connection whatever its rules say
    /// (traffic between a pod and its own node), so only the Admin tier
    /// can refuse it.
    pub fn allowed(
        &self,
        exempt: bool,
        matched: impl FnMut(&PeerSet, &RulePorts) -> PortSet,
    ) -> PortSet {
        self.decide(PortSet::all(), exempt, matched)
    }

    /// The part of `all` the side allows, for any set algebra: ports
    /// toward one peer, peer classes on one port, addresses on one port.
    /// `matched(peers, ports)` gives the part of `all` a rule matches.
    /// Each rule of a tier decides what it matches of what is still
    /// undecided (first match); what a tier passes or leaves goes on.
    pub fn decide<S: Region>(
        &self,
        all: S,
        exempt: bool,
        mut matched: impl FnMut(&PeerSet, &RulePorts) -> S,
    ) -> S {
        let mut undecided = all;
        let mut allowed = undecided.emptied();
        let passed = first_match(&self.admin, &mut undecided, &mut allowed, &mut matched);
        undecided.union_with(&passed);
        if undecided.is_empty() {
            return allowed;
        }
        if exempt {
            allowed.union_with(&undecided);
            return allowed;
        }
        match &self.network_policy {
            Some(grants) => {
                let mut granted = undecided.emptied();
                for &(peers, ports) in grants {
                    granted.union_with(&matched(peers, ports));
                }
                undecided.intersect_with(&granted);
                allowed.union_with(&undecided);
            }
            None => {
                let passed =
                    first_match(&self.baseline, &mut undecided, &mut allowed, &mut matched);
                // A Baseline Pass, like no match, leaves it to the default: allow.
                allowed.union_with(&undecided);
                allowed.union_with(&passed);
            }
        }
        allowed
    }
}

/// Which rules account for what one side allows toward one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideAccount {
    /// Everything the side allows.
    pub allowed: PortSet,
    /// Accept rules of either tier, each with the ports it decided.
    pub accepted: Vec<(AdminRuleRef, PortSet)>,
    /// NetworkPolicy grants (indexes into [`SideRules::network_policy`]),
    /// each with the allowed ports it matches.
    pub granted: Vec<(usize, PortSet)>,
    /// Ports allowed because nothing decided them (no NetworkPolicy
    /// isolates the pods, and no rule of the Baseline tier denies them).
    pub by_default: PortSet,
}

impl SideRules<'_> {
    /// [`SideRules::allowed`], with the rules behind each allowed port.
    pub fn account(
        &self,
        exempt: bool,
        mut matched: impl FnMut(&PeerSet, &RulePorts) -> PortSet,
    ) -> SideAccount {
        let mut account = SideAccount::default();
        let mut undecided = PortSet::all();
        let mut passed = PortSet::empty();
        let run_tier =
            |rules: &[TierRule<'_>],
             undecided: &mut PortSet,
             passed: &mut PortSet,
             account: &mut SideAccount,
             matched: &mut dyn FnMut(&PeerSet, &RulePorts) -> PortSet| {
                for rule in rules {
                    let part = matched(rule.peers, rule.ports).intersection(undecided);
                    if part.is_empty() {
                        continue;
                    }
                    match rule.action {
                        Action::Accept => {
                            account.allowed.union_with(&part);
                            account.accepted.push((rule.rule, part.clone()));
                        }
                        Action::Deny => {}
                        Action::Pass => passed.union_with(&part),
                    }
                    *undecided = undecided.difference(&part);
                }
            };
        run_tier(
            &self.admin,
            &mut undecided,
            &mut passed,
            &mut account,
            &mut matched,
        );
        undecided.union_with(&passed);
        if exempt {
            account.allowed.union_with(&undecided);
            account.by_default = undecided;
            return account;
        }
        match &self.network_policy {
            Some(grants) => {
                for (index, &(peers, ports)) in grants.iter().enumerate() {
                    let part = matched(peers, ports).intersection(&undecided);
                    if !part.is_empty() {
                        account.allowed.union_with(&part);
                        account.granted.push((index, part));
                    }
                }
            }
            None => {
                let mut passed = PortSet::empty();
                run_tier(
                    &self.baseline,
                    &mut undecided,
                    &mut passed,
                    &mut account,
                    &mut matched,
                );
                undecided.union_with(&passed);
                account.allowed.union_with(&undecided);
                account.by_default = undecided;
            }
        }
        account
    }
}

/// The set operations [`SideRules::decide`] needs.
pub trait Region: Clone {
    /// An empty set of the same universe.
    fn emptied(&self) -> Self;
    /// True if empty.
    fn is_empty(&self) -> bool;
    /// Adds `other`.
    fn union_with(&mut self, other: &Self);
    /// Keeps what `other` holds too.
    fn intersect_with(&mut self, other: &Self);
    /// Removes `other`.
    fn subtract(&mut self, other: &Self);
}

impl Region for PortSet {
    fn emptied(&self) -> Self {
        PortSet::empty()
    }
    fn is_empty(&self) -> bool {
        PortSet::is_empty(self)
    }
    fn union_with(&mut self, other: &Self) {
        PortSet::union_with(self, other);
    }
    fn intersect_with(&mut self, other: &Self) {
        *self = self.intersection(other);
    }
    fn subtract(&mut self, other: &Self) {
        *self = self.difference(other);
    }
}

impl Region for IpSet {
    fn emptied(&self) -> Self {
        IpSet::empty()
    }
    fn is_empty(&self) -> bool {
        IpSet::is_empty(self)
    }
    fn union_with(&mut self, other: &Self) {
        IpSet::union_with(self, other);
    }
    fn intersect_with(&mut self, other: &Self) {
        *self = self.intersection(other);
    }
    fn subtract(&mut self, other: &Self) {
        *self = self.difference(other);
    }
}

impl Region for BitSet {
    fn emptied(&self) -> Self {
        BitSet::new(self.universe())
    }
    fn is_empty(&self) -> bool {
        self.is_clear()
    }
    fn union_with(&mut self, other: &Self) {
        BitSet::union_with(self, other);
    }
    fn intersect_with(&mut self, other: &Self) {
        BitSet::intersect_with(self, other);
    }
    fn subtract(&mut self, other: &Self) {
        self.difference_with(other);
    }
}

/// Runs one tier's rules in order over the `undecided` part: each rule
/// decides the undecided part it matches. Returns the passed part.
fn first_match<S: Region>(
    rules: &[TierRule<'_>],
    undecided: &mut S,
    allowed: &mut S,
    matched: &mut impl FnMut(&PeerSet, &RulePorts) -> S,
) -> S {
    let mut passed = undecided.emptied();
    for rule in rules {
        if undecided.is_empty() {
            break;
        }
        let mut part = matched(rule.peers, rule.ports);
        part.intersect_with(undecided);
        if part.is_empty() {
            continue;
        }
        match rule.action {
            Action::Accept => allowed.union_with(&part),
            Action::Deny => {}
            Action::Pass => passed.union_with(&part),
        }
        undecided.subtract(&part);
    }
    passed
}

impl super::Model {
    /// Everything that decides `direction` for pods of `class`, tiers
    /// included. [`SideRules::is_open`] when nothing restricts it.
    pub fn side_rules(&self, direction: Direction, class: ClassId) -> SideRules<'_> {
        SideRules {
            admin: self.tier_rules(Tier::Admin, direction, class),
            network_policy: self
                .grants(direction, class)
                .map(|grants| grants.into_iter().collect()),
            baseline: self.tier_rules(Tier::Baseline, direction, class),
        }
    }

    /// The rules of `tier` that apply to `class` in `direction`, in
    /// precedence order.
    pub fn tier_rules(
        &self,
        tier: Tier,
        direction: Direction,
        class: ClassId,
    ) -> Vec<TierRule<'_>> {
        let mut rules = Vec::new();
        for policy in self.tier_policies(tier, class) {
            let tiers = &self.tiers;
            for rule in &tiers.rules[tiers.policy_rules[policy][direction_index(direction)].clone()]
            {
                rules.push(TierRule {
                    rule: rule.rule,
                    action: rule.action,
                    peers: &rule.peers,
                    ports: &self.distinct_ports[rule.ports],
                });
            }
        }
        rules
    }

    /// The admin policies of `tier` that select `class`, in precedence order.
    pub fn tier_policies(&self, tier: Tier, class: ClassId) -> impl Iterator<Item = usize> + '_ {
        let policies = self
            .tiers
            .by_class
            .get(class)
            .map_or(&[][..], Vec::as_slice);
        let admin_policies = &self.cluster().admin_policies;
        policies
            .iter()
            .map(|&policy| policy as usize)
            .filter(move |&policy| admin_policies[policy].tier == tier)
    }

    /// True when some admin-tier policy applies to `class` in `direction`.
    pub fn has_tier_rules(&self, direction: Direction, class: ClassId) -> bool {
        self.tiers.restricted[direction_index(direction)].contains(class)
    }

    /// A compiled admin rule.
    pub fn tier_rule(&self, reference: AdminRuleRef) -> Option<TierRule<'_>> {
        let tiers = &self.tiers;
        let range =
            tiers.policy_rules.get(reference.policy)?[direction_index(reference.direction)].clone();
        let rule = tiers.rules[range]
            .iter()
            .find(|rule| rule.rule.index == reference.index)?;
        Some(TierRule {
            rule: rule.rule,
            action: rule.action,
            peers: &rule.peers,
            ports: &self.distinct_ports[rule.ports],
        })
    }

    /// The compiled rules of one admin policy in one direction, in order.
    pub fn admin_policy_rules(&self, policy: usize, direction: Direction) -> Vec<TierRule<'_>> {
        let tiers = &self.tiers;
        let Some(ranges) = tiers.policy_rules.get(policy) else {
            return Vec::new();
        };
        tiers.rules[ranges[direction_index(direction)].clone()]
            .iter()
            .map(|rule| TierRule {
                rule: rule.rule,
                action: rule.action,
                peers: &rule.peers,
                ports: &self.distinct_ports[rule.ports],
            })
            .collect()
    }

    /// Classes whose members are on the pod network (not host-networked):
    /// the only possible subjects and `namespaces`/`pods` peers of the
    /// admin tiers. Empty when the cluster has no admin policy.
    pub fn pod_network_classes(&self) -> &BitSet {
        &self.tiers.pod_network
    }

    /// The classes each admin policy selects, indexed like
    /// [`Cluster::admin_policies`].
    pub fn admin_subjects(&self) -> &[BitSet] {
        &self.tiers.subjects
    }
}
