//! The reachability model.
//!
//! [`Model::new`] analyses a [`Cluster`] once:
//! 1. Endpoints that no policy can tell apart are grouped into
//!    [`PodClass`]es: same namespace, same labels, same named ports, same
//!    host-network treatment, and (when ipBlocks match pod IPs) the same set
//!    of ipBlocks containing their IPs.
//! 2. Each distinct label selector is evaluated once, over classes, through
//!    an inverted label index; the results are [`BitSet`]s of classes.
//! 3. Each policy's rules are compiled into a [`PeerSet`] (classes plus
//!    external addresses) and [`RulePorts`].
//!
//! Questions are then answered at class level: a single query looks at the
//! few policies that select two classes ([`Model::query`]); the matrix for one
//! port is two class × class bit matrices and a transpose
//! ([`Model::port_matrix`]).

mod checks;
mod external;
mod incremental;
mod matrix;
mod permits;
mod query;
mod service_matrix;
mod services;
mod tiers;

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::ops::Range;

pub use checks::UnresolvedNamedPort;
pub use external::partition;
pub use incremental::{Change, RebuildReason, UpdateStats, differences};
pub use matrix::{ConnectionMatrix, PortMatrix};
pub use permits::{Counterpart, SidePermit};
pub use query::{
    AdminRuleRef, PortQuery, QueryEndpoint, QueryError, RuleRef, SideVerdict, TierMatch, Verdict,
};
pub use service_matrix::{
    CellBackend, PodOutcomes, ServiceCell, ServiceCellOutcome, ServiceMatrix, ServiceMatrixColumn,
    ServiceMatrixRow,
};
pub use services::{
    Backend, BackendTarget, BackendVerdict, Backends, ClientSets, DnsVerdict, Exclusion, ServiceId,
    ServiceOutcome, ServiceQueryError, ServiceVerdict, Target,
};
pub use tiers::{SideAccount, SideRules, TierRule};

use crate::bitset::BitSet;
use crate::cluster::{Cluster, EndpointId};
use crate::config::{AddressFamily, Config, HostNetworkMode, IpBlockMode};
use crate::ipset::IpSet;
use crate::policy::{Direction, NamespaceScope, Peer, PortSpec, Rule};
use crate::ports::{PortSet, Protocol};
use crate::selector::{Labels, Operator, Selector};

/// Index of a class in [`Model::classes`].
pub type ClassId = usize;
/// Index of a policy in [`Cluster::policies`].
pub type PolicyId = usize;

/// Endpoints that every policy treats alike.
#[derive(Clone, Debug)]
pub struct PodClass {
    /// The namespace of the members.
    pub namespace: String,
    /// The members, in endpoint order.
    pub members: Vec<EndpointId>,
    /// False for endpoints no selector can select (host-network pods in
    /// [`HostNetworkMode::Node`]).
    pub selectable: bool,
    named_ports: Vec<(String, Protocol, u16)>,
}

impl PodClass {
    /// The class of `key`, before its members are added.
    fn without_members(key: &ClassKey<'_>) -> Self {
        PodClass {
            namespace: key.namespace.to_string(),
            members: Vec::new(),
            selectable: key.selectable,
            named_ports: key
                .named_ports
                .iter()
                .map(|&(name, protocol, port)| (name.to_string(), protocol, port))
                .collect(),
        }
    }

    /// The port number of the container port `name` with `protocol`.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.named_ports
            .iter()
            .find(|(n, p, _)| n == name && *p == protocol)
            .map(|(_, _, port)| *port)
    }
}

/// The peers a rule matches.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSet {
    /// True when the rule lists no peers: it matches every source or
    /// destination, in the cluster or not.
    pub everyone: bool,
    /// The classes matched by selectors, or by ipBlocks containing their IPs.
    pub classes: BitSet,
    /// The addresses matched by ipBlocks.
    pub addresses: IpSet,
}

impl PeerSet {
    /// True if the class is matched.
    pub fn contains_class(&self, class: ClassId) -> bool {
        self.everyone || self.classes.contains(class)
    }

    /// True if an address outside the cluster is matched.
    pub fn contains_address(&self, address: IpAddr) -> bool {
        self.everyone || self.addresses.contains(address)
    }
}

/// The ports a rule matches, before named ports are resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RulePorts {
    /// True when the rule lists no ports: every port of every protocol.
    pub all: bool,
    /// The numeric entries (ports, ranges, whole protocols).
    pub numeric: PortSet,
    /// The named entries.
    pub named: Vec<(Protocol, String)>,
}

impl RulePorts {
    fn from_rule(rule: &Rule) -> Self {
        let Some(specs) = &rule.ports else {
            return RulePorts {
                all: true,
                numeric: PortSet::all(),
                named: Vec::new(),
            };
        };
        let mut numeric = PortSet::empty();
        let mut named = Vec::new();
        for spec in specs {
            match spec {
                PortSpec::Named { protocol, name } => named.push((*protocol, name.clone())),
                other => numeric.union_with(&other.numeric().expect("numeric spec")),
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

    /// True if `port`/`protocol` toward a destination of class `destination`
    /// (or an address outside the cluster, `None`) matches. Named ports
    /// resolve against the destination; toward an address they match nothing.
    pub fn allows(&self, destination: Option<&PodClass>, protocol: Protocol, port: u16) -> bool {
        self.all
            || self.numeric.contains(protocol, port)
            || destination.is_some_and(|class| {
                self.named.iter().any(|(p, name)| {
                    *p == protocol && class.named_port(name, protocol) == Some(port)
                })
            })
    }

    /// Every port this rule matches toward `destination`.
    pub fn resolve(&self, destination: Option<&PodClass>) -> PortSet {
        if self.all {
            return PortSet::all();
        }
        let mut set = self.numeric.clone();
        if let Some(class) = destination {
            for (protocol, name) in &self.named {
                if let Some(port) = class.named_port(name, *protocol) {
                    set.insert(*protocol, port, port);
                }
            }
        }
        set
    }
}

/// One rule, compiled.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    pub(crate) policy: PolicyId,
    pub(crate) index: usize,
    pub(crate) peers: PeerSet,
    /// Index into [`Model::distinct_ports`].
    pub(crate) ports: usize,
}

/// The analysed cluster. See the module documentation.
pub struct Model {
    cluster: Cluster,
    config: Config,
    classes: Vec<PodClass>,
    endpoint_class: Vec<ClassId>,
    rules: Vec<CompiledRule>,
    /// Per policy, the range of its ingress and egress rules in `rules`.
    policy_rules: Vec<[Range<usize>; 2]>,
    /// Per direction and class, the policies that select the class and
    /// affect that direction.
    class_policies: [Vec<Vec<PolicyId>>; 2],
    distinct_ports: Vec<RulePorts>,
    /// Node addresses (Node objects, host-network pods) to node names.
    node_addresses: HashMap<IpAddr, String>,
    /// The admin tiers, compiled over the classes.
    tiers: tiers::CompiledTiers,
    /// Indexes for [`Model::apply`], built on its first call.
    incremental: Option<Box<incremental::Incremental>>,
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// What makes endpoints indistinguishable to every policy. Borrowed from
/// the cluster, so grouping 100,000 endpoints copies no labels.
#[derive(PartialEq, Eq, Hash)]
struct ClassKey<'c> {
    namespace: &'c str,
    labels: &'c Labels,
    named_ports: Vec<(&'c str, Protocol, u16)>,
    selectable: bool,
    /// Host-networked, when admin tiers exist: they never select such pods.
    host_network: bool,
    /// The ipBlocks containing an address of the endpoint, then (ids from
    /// the number of ipBlocks on) the admin tiers' `networks` holding one
    /// and `nodes` selectors matching a host-networked endpoint's node.
    ip_blocks: &'c [usize],
}

impl Model {
    /// Analyses `cluster` under `config`.
    pub fn new(cluster: Cluster, config: Config) -> Model {
        // Every distinct ipBlock address set gets an id, so endpoints can be
        // told apart by which blocks contain their IPs.
        let mut block_ids: HashMap<IpSet, usize> = HashMap::new();
        for policy in &cluster.policies {
            for direction in [Direction::Ingress, Direction::Egress] {
                for rule in policy.rules(direction).unwrap_or_default() {
                    for peer in rule.peers.iter().flatten() {
                        if let Peer::IpBlock { addresses, .. } = peer {
                            let next = block_ids.len();
                            block_ids.entry(addresses.clone()).or_insert(next);
                        }
                    }
                }
            }
        }
        let mut endpoint_blocks = if config.ip_block == IpBlockMode::Match {
            blocks_containing_endpoints(&cluster, &block_ids, config.address_family)
        } else {
            vec![Vec::new(); cluster.endpoints.len()]
        };
        // The admin tiers' `networks` match pod addresses whatever the
        // ipBlock mode (API: they cover "pod-to-pod traffic as well").
        let address_peers = tiers::AddressPeers::of(&cluster);
        if address_peers.len() > 0 {
            for (endpoint, marks) in cluster.endpoints.iter().zip(&mut endpoint_blocks) {
                address_peers.marks(
                    &cluster,
                    endpoint,
                    config.address_family,
                    block_ids.len(),
                    marks,
                );
            }
        }
        let tiered = !cluster.admin_policies.is_empty();

        // Group endpoints into classes.
        let mut class_of_key: FxHashMap<ClassKey<'_>, ClassId> = FxHashMap::default();
        let mut classes: Vec<PodClass> = Vec::new();
        let mut endpoint_class = Vec::with_capacity(cluster.endpoints.len());
        for (id, endpoint) in cluster.endpoints.iter().enumerate() {
            let key = ClassKey::of(endpoint, &endpoint_blocks[id], &config, tiered);
            let next = classes.len();
            let class = *class_of_key.entry(key).or_insert_with_key(|key| {
                classes.push(PodClass::without_members(key));
                next
            });
            classes[class].members.push(id);
            endpoint_class.push(class);
        }
        let class_count = classes.len();

        let mut block_classes =
            vec![BitSet::new(class_count); block_ids.len() + address_peers.len()];
        let mut pod_network = BitSet::new(class_count);
        for (key, &class) in &class_of_key {
            for &block in key.ip_blocks {
                block_classes[block].insert(class);
            }
            if !key.host_network {
                pod_network.insert(class);
            }
        }

        let mut selectors = SelectorIndex::new(&cluster, &classes, &endpoint_class);
        let mut distinct_ports: Vec<RulePorts> = Vec::new();
        let mut ports_ids: HashMap<RulePorts, usize> = HashMap::new();
        let mut rules = Vec::new();
        let mut policy_rules = Vec::with_capacity(cluster.policies.len());
        let mut class_policies: [Vec<Vec<PolicyId>>; 2] =
            [vec![Vec::new(); class_count], vec![Vec::new(); class_count]];

        for (policy_id, policy) in cluster.policies.iter().enumerate() {
            let mut selected = selectors.pods(&policy.pod_selector).clone();
            selected.intersect_with(selectors.namespace_classes(&policy.namespace));
            selected.intersect_with(&selectors.selectable);
            let mut ranges = [0..0, 0..0];
            for direction in [Direction::Ingress, Direction::Egress] {
                let Some(policy_rules_in_direction) = policy.rules(direction) else {
                    continue;
                };
                for class in selected.ones() {
                    class_policies[direction_index(direction)][class].push(policy_id);
                }
                let start = rules.len();
                for rule in policy_rules_in_direction {
                    let ports = RulePorts::from_rule(rule);
                    let next = distinct_ports.len();
                    let ports = *ports_ids.entry(ports.clone()).or_insert_with(|| {
                        distinct_ports.push(ports);
                        next
                    });
                    let peers = compile_peers(
                        rule,
                        &mut selectors,
                        &block_ids,
                        &block_classes,
                        class_count,
                    );
                    rules.push(CompiledRule {
                        policy: policy_id,
                        index: rule.index,
                        peers,
                        ports,
                    });
                }
                ranges[direction_index(direction)] = start..rules.len();
            }
            policy_rules.push(ranges);
        }

        let node_addresses = node_addresses(&cluster);
        let tiers = if tiered {
            tiers::compile(
                tiers::TierInputs {
                    cluster: &cluster,
                    selectors: &mut selectors,
                    address_classes: &block_classes[block_ids.len()..],
                    address_peers: &address_peers,
                    pod_network: &pod_network,
                    node_addresses: &node_addresses,
                    class_count,
                },
                |ports| {
                    let next = distinct_ports.len();
                    *ports_ids.entry(ports.clone()).or_insert_with(|| {
                        distinct_ports.push(ports);
                        next
                    })
                },
            )
        } else {
            tiers::CompiledTiers::empty(class_count)
        };
        drop(selectors);
        Model {
            node_addresses,
            tiers,
            cluster,
            config,
            classes,
            endpoint_class,
            rules,
            policy_rules,
            class_policies,
            distinct_ports,
            incremental: None,
        }
    }

    /// The cluster the model was built from.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The classes of indistinguishable endpoints. After [`Model::apply`]
    /// some may be empty (no endpoint belongs to them any more).
    pub fn classes(&self) -> &[PodClass] {
        &self.classes
    }

    /// The class of an endpoint.
    pub fn class_of(&self, endpoint: EndpointId) -> ClassId {
        self.endpoint_class[endpoint]
    }

    /// The policies that select `endpoint` and affect `direction`; empty if
    /// the endpoint is not isolated in that direction.
    pub fn policies_selecting(&self, endpoint: EndpointId, direction: Direction) -> &[PolicyId] {
        &self.class_policies[direction_index(direction)][self.endpoint_class[endpoint]]
    }

    /// The endpoints a policy selects. Every valid policy affects at least
    /// one direction, so the per-direction lists hold them all.
    pub fn selected_by(&self, policy: PolicyId) -> Vec<EndpointId> {
        let mut endpoints: Vec<EndpointId> = self
            .classes_selected_by(policy)
            .into_iter()
            .flat_map(|class| self.classes[class].members.iter().copied())
            .collect();
        endpoints.sort_unstable();
        endpoints
    }

    /// What pods of `class` are allowed in `direction`, rule by rule: the
    /// peers and the ports of every rule of every policy that selects the
    /// class for that direction. `None` when the class is not isolated in
    /// that direction (every connection is allowed there). Ports are not yet
    /// resolved: named ports resolve on the destination ([`RulePorts::resolve`]).
    pub fn grants(
        &self,
        direction: Direction,
        class: ClassId,
    ) -> Option<Vec<(&PeerSet, &RulePorts)>> {
        let policies = self.class_policies(direction, class);
        if policies.is_empty() || !self.classes[class].selectable {
            return None;
        }
        Some(
            policies
                .iter()
                .flat_map(|&policy| self.rules_of(policy, direction))
                .map(|rule| (&rule.peers, self.ports_of(rule)))
                .collect(),
        )
    }

    /// A selector index over this model's classes, for evaluating selectors
    /// that are not compiled into rules (lint checks, explanations).
    pub fn selector_index(&self) -> SelectorIndex<'_> {
        SelectorIndex::new(&self.cluster, &self.classes, &self.endpoint_class)
    }

    /// The classes each policy selects, indexed by policy: one pass over
    /// the model instead of one scan of every class per policy.
    pub fn classes_selected_by_each_policy(&self) -> Vec<Vec<ClassId>> {
        let mut selected = vec![Vec::new(); self.cluster.policies.len()];
        for per_class in &self.class_policies {
            for (class, policies) in per_class.iter().enumerate() {
                for &policy in policies {
                    selected[policy].push(class);
                }
            }
        }
        for classes in &mut selected {
            classes.sort_unstable();
            classes.dedup();
        }
        selected
    }

    /// The classes a policy selects. This scans every class: for all
    /// policies, use [`Model::classes_selected_by_each_policy`].
    pub fn classes_selected_by(&self, policy: PolicyId) -> Vec<ClassId> {
        (0..self.classes.len())
            .filter(|&class| {
                self.class_policies
                    .iter()
                    .any(|per_class| per_class[class].binary_search(&policy).is_ok())
            })
            .collect()
    }

    /// The global ids of a policy's compiled rules in one direction.
    pub(crate) fn rule_ids(&self, policy: PolicyId, direction: Direction) -> Range<usize> {
        self.policy_rules[policy][direction_index(direction)].clone()
    }

    pub(crate) fn compiled_rule(&self, id: usize) -> &CompiledRule {
        &self.rules[id]
    }

    pub(crate) fn rules_of(&self, policy: PolicyId, direction: Direction) -> &[CompiledRule] {
        &self.rules[self.policy_rules[policy][direction_index(direction)].clone()]
    }

    /// The id of an interned port list (one of [`Model::distinct_ports`]).
    pub(crate) fn ports_id(&self, ports: &RulePorts) -> usize {
        let base = self.distinct_ports.as_ptr() as usize;
        let offset = std::ptr::from_ref(ports) as usize - base;
        let id = offset / std::mem::size_of::<RulePorts>();
        assert!(
            std::ptr::eq(&self.distinct_ports[id], ports),
            "port lists come from the model"
        );
        id
    }

    pub(crate) fn ports_of(&self, rule: &CompiledRule) -> &RulePorts {
        &self.distinct_ports[rule.ports]
    }

    pub(crate) fn class_policies(&self, direction: Direction, class: ClassId) -> &[PolicyId] {
        &self.class_policies[direction_index(direction)][class]
    }

    /// True when one end is a host-network pod treated as node traffic and
    /// both ends run on the same node. Such traffic is always allowed:
    /// networking/v1 `NetworkPolicySpec` allows ingress "if the traffic
    /// source is the pod's local node", and the API documentation says
    /// "traffic to and from the node where a Pod is running is always allowed".
    pub(crate) fn local_node_traffic(&self, source: EndpointId, destination: EndpointId) -> bool {
        let (s, d) = (
            &self.cluster.endpoints[source],
            &self.cluster.endpoints[destination],
        );
        self.config.host_network == HostNetworkMode::Node
            && (s.host_network || d.host_network)
            && s.node.is_some()
            && s.node == d.node
    }
}

/// Every node address the input tells: Node objects' `status.addresses`,
/// and the addresses of host-network pods with a node name.
fn node_addresses(cluster: &Cluster) -> HashMap<IpAddr, String> {
    let mut addresses = HashMap::new();
    for node in &cluster.nodes {
        for address in &node.addresses {
            addresses.insert(address.address, node.name.clone());
        }
    }
    for endpoint in &cluster.endpoints {
        if let (true, Some(node)) = (endpoint.host_network, &endpoint.node) {
            for ip in &endpoint.ips {
                addresses.entry(*ip).or_insert_with(|| node.clone());
            }
        }
    }
    addresses
}

/// For each endpoint, the ids of the ipBlocks that contain one of its IPs.
fn blocks_containing_endpoints(
    cluster: &Cluster,
    block_ids: &HashMap<IpSet, usize>,
    family: AddressFamily,
) -> Vec<Vec<usize>> {
    let mut by_address: Vec<(IpAddr, EndpointId)> = cluster
        .endpoints
        .iter()
        .enumerate()
        .flat_map(|(id, endpoint)| endpoint.ips.iter().map(move |ip| (*ip, id)))
        .filter(|(ip, _)| family.includes(*ip))
        .collect();
    by_address.sort_unstable();
    let mut blocks = vec![Vec::new(); cluster.endpoints.len()];
    for (set, &block) in block_ids {
        for family in [crate::ipset::Family::V4, crate::ipset::Family::V6] {
            for (first, last) in set.ranges(family) {
                let start = by_address.partition_point(|(ip, _)| *ip < first);
                for (ip, endpoint) in &by_address[start..] {
                    if *ip > last {
                        break;
                    }
                    blocks[*endpoint].push(block);
                }
            }
        }
    }
    for list in &mut blocks {
        list.sort_unstable();
        list.dedup();
    }
    blocks
}

fn compile_peers(
    rule: &Rule,
    selectors: &mut SelectorIndex<'_>,
    block_ids: &HashMap<IpSet, usize>,
    block_classes: &[BitSet],
    class_count: usize,
) -> PeerSet {
    let Some(peers) = &rule.peers else {
        return PeerSet {
            everyone: true,
            classes: BitSet::full(class_count),
            addresses: IpSet::everything(),
        };
    };
    let mut classes = BitSet::new(class_count);
    let mut addresses = IpSet::empty();
    for peer in peers {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let mut matched = selectors.pods(pods).clone();
                matched.intersect_with(selectors.namespaces(namespaces));
                matched.intersect_with(&selectors.selectable);
                classes.union_with(&matched);
            }
            Peer::IpBlock {
                addresses: block, ..
            } => {
                addresses.union_with(block);
                classes.union_with(&block_classes[block_ids[block]]);
            }
        }
    }
    PeerSet {
        everyone: false,
        classes,
        addresses,
    }
}

/// Evaluates selectors over classes, each distinct selector once (an
/// inverted label index with memoised results). See [`Model::selector_index`].
pub struct SelectorIndex<'a> {
    cluster: &'a Cluster,
    class_count: usize,
    /// Classes whose members selectors can select.
    selectable: BitSet,
    /// Classes per namespace.
    by_namespace: FxHashMap<&'a str, BitSet>,
    /// Per label key: classes having the key, and classes per value.
    by_label: FxHashMap<&'a str, (BitSet, FxHashMap<&'a str, BitSet>)>,
    empty: BitSet,
    pod_memo: FxHashMap<Selector, BitSet>,
    namespace_memo: FxHashMap<Selector, BitSet>,
}

impl<'a> SelectorIndex<'a> {
    /// Classes a selector can select (not host-network node traffic).
    pub fn selectable(&self) -> &BitSet {
        &self.selectable
    }

    /// The namespaces a namespace selector matches, by name.
    pub fn matching_namespaces(&self, selector: &Selector) -> Vec<&'a str> {
        self.cluster
            .namespaces
            .iter()
            .filter(|namespace| selector.matches(&namespace.labels))
            .map(|namespace| namespace.name.as_str())
            .collect()
    }

    fn new(cluster: &'a Cluster, classes: &[PodClass], endpoint_class: &[ClassId]) -> Self {
        let class_count = classes.len();
        let mut selectable = BitSet::new(class_count);
        let mut by_namespace: FxHashMap<&str, BitSet> = FxHashMap::default();
        let mut by_label: FxHashMap<&str, (BitSet, FxHashMap<&str, BitSet>)> = FxHashMap::default();
        for (class_id, class) in classes.iter().enumerate() {
            // An emptied class (after `Model::apply`) matches no selector.
            let Some(&first) = class.members.first() else {
                continue;
            };
            if class.selectable {
                selectable.insert(class_id);
            }
            let representative = &cluster.endpoints[first];
            debug_assert_eq!(endpoint_class[first], class_id);
            by_namespace
                .entry(representative.namespace.as_str())
                .or_insert_with(|| BitSet::new(class_count))
                .insert(class_id);
            for (key, value) in &representative.labels {
                let (with_key, by_value) = by_label
                    .entry(key.as_str())
                    .or_insert_with(|| (BitSet::new(class_count), FxHashMap::default()));
                with_key.insert(class_id);
                by_value
                    .entry(value.as_str())
                    .or_insert_with(|| BitSet::new(class_count))
                    .insert(class_id);
            }
        }
        SelectorIndex {
            cluster,
            class_count,
            selectable,
            by_namespace,
            by_label,
            empty: BitSet::new(class_count),
            pod_memo: FxHashMap::default(),
            namespace_memo: FxHashMap::default(),
        }
    }

    /// Classes in a namespace.
    pub fn namespace_classes(&self, namespace: &str) -> &BitSet {
        self.by_namespace.get(namespace).unwrap_or(&self.empty)
    }

    /// Classes whose pod labels match (hostNetwork node-traffic classes included;
    /// intersect with [`SelectorIndex::selectable`] for what a policy can select).
    pub fn pods(&mut self, selector: &Selector) -> &BitSet {
        if !self.pod_memo.contains_key(selector) {
            let with_values = |entry: Option<&(BitSet, FxHashMap<&str, BitSet>)>,
                               values: &[String]| {
                let mut set = BitSet::new(self.class_count);
                if let Some((_, by_value)) = entry {
                    for value in values {
                        if let Some(classes) = by_value.get(value.as_str()) {
                            set.union_with(classes);
                        }
                    }
                }
                set
            };
            // Narrow with In and Exists first: starting from the small sets
            // they give keeps every later step small too.
            let mut result: Option<BitSet> = None;
            for requirement in selector.requirements() {
                let entry = self.by_label.get(requirement.key.as_str());
                let matched = match &requirement.operator {
                    Operator::In(values) => with_values(entry, values),
                    Operator::Exists => entry.map_or_else(
                        || BitSet::new(self.class_count),
                        |(with_key, _)| with_key.clone(),
                    ),
                    Operator::NotIn(_) | Operator::DoesNotExist => continue,
                };
                match &mut result {
                    None => result = Some(matched),
                    Some(result) => result.intersect_with(&matched),
                }
            }
            let mut result = result.unwrap_or_else(|| BitSet::full(self.class_count));
            for requirement in selector.requirements() {
                let entry = self.by_label.get(requirement.key.as_str());
                match &requirement.operator {
                    Operator::NotIn(values) => result.difference_with(&with_values(entry, values)),
                    Operator::DoesNotExist => {
                        if let Some((with_key, _)) = entry {
                            result.difference_with(with_key);
                        }
                    }
                    Operator::In(_) | Operator::Exists => {}
                }
            }
            self.pod_memo.insert(selector.clone(), result);
        }
        &self.pod_memo[selector]
    }

    /// Classes in the namespaces of a peer.
    pub fn namespaces(&mut self, scope: &NamespaceScope) -> &BitSet {
        match scope {
            NamespaceScope::Own(namespace) => self
                .by_namespace
                .get(namespace.as_str())
                .unwrap_or(&self.empty),
            NamespaceScope::Selected(selector) => {
                if !self.namespace_memo.contains_key(selector) {
                    let mut result = BitSet::new(self.class_count);
                    for namespace in &self.cluster.namespaces {
                        if selector.matches(&namespace.labels)
                            && let Some(classes) = self.by_namespace.get(namespace.name.as_str())
                        {
                            result.union_with(classes);
                        }
                    }
                    self.namespace_memo.insert(selector.clone(), result);
                }
                &self.namespace_memo[selector]
            }
        }
    }
}
