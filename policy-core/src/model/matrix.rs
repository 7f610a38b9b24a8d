//! Whole-cluster answers: the truth table for one port, and the allowed
//! connection set of every pair.

use std::cell::OnceCell;
use std::collections::HashMap;

use super::{ClassId, CompiledRule, Model};
use crate::bitset::{BitMatrix, BitSet};
use crate::cluster::EndpointId;
use crate::config::{HostNetworkMode, SelfTraffic};
use crate::policy::Direction;
use crate::ports::{PortSet, Protocol};

use super::query::PortQuery;

/// Which endpoint pairs may connect on one port. See [`Model::port_matrix`].
pub struct PortMatrix<'m> {
    model: &'m Model,
    protocol: Protocol,
    port: PortQuery,
    /// `allowed[source class][destination class]`.
    allowed: BitMatrix,
    /// Destination classes that have the port (all, for a numeric port).
    has_port: BitSet,
    /// Endpoints per node, for traffic between a pod and its node; built on
    /// first use.
    endpoints_by_node: OnceCell<HashMap<&'m str, Vec<EndpointId>>>,
}

impl<'m> PortMatrix<'m> {
    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The port asked about.
    pub fn port(&self) -> &PortQuery {
        &self.port
    }

    /// True if `source` may connect to `destination` on the port.
    ///
    /// A named port that the destination does not define is never allowed.
    pub fn allowed(&self, source: EndpointId, destination: EndpointId) -> bool {
        let model = self.model;
        let destination_class = model.endpoint_class[destination];
        if !self.has_port.contains(destination_class) {
            return false;
        }
        if source == destination && model.config.self_traffic == SelfTraffic::Allow {
            return true;
        }
        if model.local_node_traffic(source, destination) {
            // Traffic between a pod and its own node: NetworkPolicy always
            // allows it, the Admin tier may still decide it.
            let port = match &self.port {
                PortQuery::Number(number) => *number,
                PortQuery::Name(name) => {
                    let class = &model.classes[destination_class];
                    match class.named_port(name, self.protocol) {
                        Some(number) => number,
                        None => return false,
                    }
                }
            };
            return model
                .connections(source, destination)
                .contains(self.protocol, port);
        }
        self.allowed
            .get(model.endpoint_class[source], destination_class)
    }

    /// The endpoints `source` may connect to on the port, in increasing
    /// order: exactly those `d` for which [`PortMatrix::allowed`] holds, found
    /// from the source's class row instead of asking about every endpoint.
    pub fn destinations(&self, source: EndpointId) -> Vec<EndpointId> {
        let model = self.model;
        let mut found: Vec<EndpointId> = self
            .allowed
            .row_ones(model.endpoint_class[source])
            .flat_map(|class| model.classes[class].members.iter().copied())
            .collect();
        let has_port =
            |endpoint: EndpointId| self.has_port.contains(model.endpoint_class[endpoint]);
        if model.config.self_traffic == SelfTraffic::Allow && has_port(source) {
            found.push(source);
        }
        let endpoints = &model.cluster.endpoints;
        if model.config.host_network == HostNetworkMode::Node
            && let Some(node) = &endpoints[source].node
        {
            let on_node = self
                .endpoints_by_node
                .get_or_init(|| {
                    let mut by_node: HashMap<&'m str, Vec<EndpointId>> = HashMap::new();
                    for (id, endpoint) in endpoints.iter().enumerate() {
                        if let Some(node) = &endpoint.node {
                            by_node.entry(node.as_str()).or_default().push(id);
                        }
                    }
                    by_node
                })
                .get(node.as_str())
                .map_or(&[][..], Vec::as_slice);
            found.extend(on_node.iter().copied().filter(|&destination| {
                model.local_node_traffic(source, destination) && self.allowed(source, destination)
            }));
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The class-level matrix: `[source class][destination class]`.
    pub fn class_matrix(&self) -> &BitMatrix {
        &self.allowed
    }

    /// Number of allowed ordered pairs of distinct endpoints.
    pub fn count_allowed(&self) -> usize {
        let endpoints = self.model.cluster.endpoints.len();
        (0..endpoints)
            .map(|s| {
                (0..endpoints)
                    .filter(|&d| d != s && self.allowed(s, d))
                    .count()
            })
            .sum()
    }
}

impl Model {
    /// The truth table for one port: which endpoint may connect to which.
    ///
    /// Computed at class level, one source class at a time: the union of its
    /// egress rules' peer sets (where the port matches), kept where the
    /// destination's ingress rules accept the source. Rows are sparse or
    /// dense by size ([`BitSet`]).
    pub fn port_matrix(&self, protocol: Protocol, port: &PortQuery) -> PortMatrix<'_> {
        let class_count = self.classes.len();
        // The port number at each destination class (named ports resolve there).
        let port_at: Vec<Option<u16>> = self
            .classes
            .iter()
            .map(|class| match port {
                PortQuery::Number(number) => Some(*number),
                PortQuery::Name(name) => class.named_port(name, protocol),
            })
            .collect();
        let empty = BitSet::new(class_count);
        let mut has_port = BitSet::new(class_count);
        for (class, number) in port_at.iter().enumerate() {
            if number.is_some() {
                has_port.insert(class);
            }
        }

        // For each distinct port list, the destination classes where it matches.
        let matching_destinations: Vec<BitSet> = self
            .distinct_ports
            .iter()
            .map(|ports| {
                if ports.all {
                    return has_port.clone();
                }
                // A numeric port either matches a rule's numbers everywhere or
                // needs the rule's named ports resolved per destination.
                if let PortQuery::Number(number) = port {
                    if ports.numeric.contains(protocol, *number) {
                        return has_port.clone();
                    }
                    if !ports.named.iter().any(|(p, _)| *p == protocol) {
                        return BitSet::new(class_count);
                    }
                }
                let mut set = BitSet::new(class_count);
                for (class_id, class) in self.classes.iter().enumerate() {
                    if let Some(number) = port_at[class_id]
                        && ports.allows(Some(class), protocol, number)
                    {
                        set.insert(class_id);
                    }
                }
                set
            })
            .collect();

        // Per destination class, the ingress rules that match the port there;
        // `None` when nothing isolates it for ingress.
        let ingress_rules: Vec<Option<Vec<&CompiledRule>>> = (0..class_count)
            .map(|destination| {
                let policies = self.class_policies(Direction::Ingress, destination);
                if policies.is_empty() || !self.classes[destination].selectable {
                    return None;
                }
                Some(
                    policies
                        .iter()
                        .flat_map(|&policy| self.rules_of(policy, Direction::Ingress))
                        .filter(|rule| matching_destinations[rule.ports].contains(destination))
                        .collect(),
                )
            })
            .collect();
        // What a rule matches on the port, over peer classes; the tiers
        // decide over these sets, first match (`SideRules::decide`).
        let rule_classes =
            |peers: &super::PeerSet, ports: &super::RulePorts, destination: Option<ClassId>| {
                let id = self.ports_id(ports);
                if destination.is_some_and(|d| !matching_destinations[id].contains(d)) {
                    return BitSet::new(class_count);
                }
                let mut classes = if peers.everyone {
                    BitSet::full(class_count)
                } else {
                    peers.classes.clone()
                };
                if destination.is_none() {
                    classes.intersect_with(&matching_destinations[id]);
                }
                classes
            };
        // Destinations an admin-tier policy applies to: the sources their
        // side accepts, all at once.
        let tiered_ingress: Vec<Option<BitSet>> = (0..class_count)
            .map(|destination| {
                if !self.has_tier_rules(Direction::Ingress, destination) {
                    return None;
                }
                let side = self.side_rules(Direction::Ingress, destination);
                Some(
                    side.decide(BitSet::full(class_count), false, |peers, ports| {
                        rule_classes(peers, ports, Some(destination))
                    }),
                )
            })
            .collect();
        let ingress_accepts = |destination: ClassId, source: ClassId| {
            if let Some(sources) = &tiered_ingress[destination] {
                return sources.contains(source);
            }
            match &ingress_rules[destination] {
                None => true,
                Some(rules) => rules.iter().any(|rule| rule.peers.contains_class(source)),
            }
        };

        // Row by row: the destinations a source's egress allows, kept where
        // their ingress accepts the source. No class × class table is ever
        // built, so memory follows the allowed pairs (and the cost the
        // egress candidates), not the square of the class count.
        let mut rows = Vec::with_capacity(class_count);
        let mut candidates = BitSet::new(class_count);
        // A rule's peers that have its port, computed once per rule: a policy
        // selecting many classes would otherwise redo it for each of them.
        let full_destinations: Vec<bool> =
            matching_destinations.iter().map(BitSet::is_full).collect();
        let mut reachable_by_rule: Vec<Option<BitSet>> = vec![None; self.rules.len()];
        for source in 0..class_count {
            if self.has_tier_rules(Direction::Egress, source) {
                let side = self.side_rules(Direction::Egress, source);
                let candidates = side.decide(has_port.clone(), false, |peers, ports| {
                    rule_classes(peers, ports, None)
                });
                rows.push(BitSet::from_sorted(
                    class_count,
                    candidates
                        .ones()
                        .filter(|&destination| ingress_accepts(destination, source)),
                ));
                continue;
            }
            let policies = self.class_policies(Direction::Egress, source);
            let egress_open = policies.is_empty() || !self.classes[source].selectable;
            candidates.clone_from(if egress_open { &has_port } else { &empty });
            if !egress_open {
                for &policy in policies {
                    for rule_id in self.rule_ids(policy, Direction::Egress) {
                        let rule = &self.rules[rule_id];
                        let destinations = &matching_destinations[rule.ports];
                        if rule.peers.everyone {
                            candidates.union_with(destinations);
                        } else if full_destinations[rule.ports] {
                            candidates.union_with(&rule.peers.classes);
                        } else {
                            let reachable = reachable_by_rule[rule_id].get_or_insert_with(|| {
                                let mut reachable = rule.peers.classes.clone();
                                reachable.intersect_with(destinations);
                                reachable
                            });
                            candidates.union_with(reachable);
                        }
                    }
                }
            }
            rows.push(BitSet::from_sorted(
                class_count,
                candidates
                    .ones()
                    .filter(|&destination| ingress_accepts(destination, source)),
            ));
        }
        let allowed = BitMatrix::from_rows(class_count, rows);
        PortMatrix {
            model: self,
            protocol,
            port: port.clone(),
            allowed,
            has_port,
            endpoints_by_node: OnceCell::new(),
        }
    }

    /// Every port and protocol `source` may use to reach `destination`.
    pub fn connections(&self, source: EndpointId, destination: EndpointId) -> PortSet {
        if source == destination && self.config.self_traffic == SelfTraffic::Allow {
            return PortSet::all();
        }
        let (source_class, destination_class) = (
            self.endpoint_class[source],
            self.endpoint_class[destination],
        );
        if self.local_node_traffic(source, destination) {
            // NetworkPolicy always allows it; only the Admin tier can refuse.
            return self.tiered_connections(source_class, destination_class, true);
        }
        self.class_connections(source_class, destination_class)
    }

    pub(crate) fn class_connections(&self, source: ClassId, destination: ClassId) -> PortSet {
        self.tiered_connections(source, destination, false)
    }

    /// Both sides of a class pair; `exempt`: the NetworkPolicy tier allows
    /// it whatever its rules say (a pod and its own node).
    fn tiered_connections(&self, source: ClassId, destination: ClassId, exempt: bool) -> PortSet {
        let egress = self.exempt_side_ports(Direction::Egress, source, source, destination, exempt);
        if egress.is_empty() {
            return egress;
        }
        let ingress =
            self.exempt_side_ports(Direction::Ingress, destination, source, destination, exempt);
        egress.intersection(&ingress)
    }

    fn exempt_side_ports(
        &self,
        direction: Direction,
        subject: ClassId,
        source: ClassId,
        destination: ClassId,
        exempt: bool,
    ) -> PortSet {
        if !self.has_tier_rules(direction, subject) {
            return if exempt {
                PortSet::all()
            } else {
                self.side_ports(direction, subject, source, destination)
            };
        }
        let peer = match direction {
            Direction::Ingress => source,
            Direction::Egress => destination,
        };
        let destination_class = &self.classes[destination];
        self.side_rules(direction, subject)
            .allowed(exempt, |peers, ports| {
                if peers.contains_class(peer) {
                    ports.resolve(Some(destination_class))
                } else {
                    PortSet::empty()
                }
            })
    }

    /// The ports the policies selecting `subject` allow between `source` and
    /// `destination` (classes) in `direction`, tiers included.
    pub(crate) fn side_ports(
        &self,
        direction: Direction,
        subject: ClassId,
        source: ClassId,
        destination: ClassId,
    ) -> PortSet {
        if self.has_tier_rules(direction, subject) {
            return self.exempt_side_ports(direction, subject, source, destination, false);
        }
        let policies = self.class_policies(direction, subject);
        if policies.is_empty() || !self.classes[subject].selectable {
            return PortSet::all();
        }
        let peer = match direction {
            Direction::Ingress => source,
            Direction::Egress => destination,
        };
        let destination_class = &self.classes[destination];
        let mut ports = PortSet::empty();
        for &policy in policies {
            for rule in self.rules_of(policy, direction) {
                if rule.peers.contains_class(peer) {
                    ports.union_with(&self.ports_of(rule).resolve(Some(destination_class)));
                    if ports.is_all() {
                        return ports;
                    }
                }
            }
        }
        ports
    }

    /// The allowed connection set of every ordered pair, computed per class
    /// pair on demand.
    pub fn connection_matrix(&self) -> ConnectionMatrix<'_> {
        ConnectionMatrix {
            model: self,
            cache: HashMap::new(),
        }
    }
}

/// The allowed connection set of every pair. See [`Model::connection_matrix`].
pub struct ConnectionMatrix<'m> {
    model: &'m Model,
    cache: HashMap<(ClassId, ClassId), PortSet>,
}

impl ConnectionMatrix<'_> {
    /// Every port and protocol `source` may use to reach `destination`.
    pub fn get(&mut self, source: EndpointId, destination: EndpointId) -> PortSet {
        let model = self.model;
        if source == destination && model.config.self_traffic == SelfTraffic::Allow {
            return PortSet::all();
        }
        if model.local_node_traffic(source, destination) {
            return model.connections(source, destination);
        }
        let key = (
            model.endpoint_class[source],
            model.endpoint_class[destination],
        );
        self.cache
            .entry(key)
            .or_insert_with(|| model.class_connections(key.0, key.1))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HostNetworkMode, SelfTraffic};
    use crate::load::Loader;

    /// Host-network pods (node traffic with their own node), a pod reaching
    /// itself and an isolated pod: `destinations` lists exactly what
    /// `allowed` says, under each self-traffic and host-network choice.
    #[test]
    fn destinations_are_exactly_the_allowed_pairs() {
        let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, image: i, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: a, labels: {app: agent}}
spec: {nodeName: n1, hostNetwork: true, containers: [{name: c, image: i}]}
status: {podIP: 192.168.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec: {nodeName: n2, containers: [{name: c, image: i}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: a, labels: {app: other}}
spec: {nodeName: n2, hostNetwork: true, containers: [{name: c, image: i}]}
status: {podIP: 192.168.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: a}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
"#;
        for self_traffic in [SelfTraffic::Allow, SelfTraffic::Evaluate] {
            for host_network in [HostNetworkMode::Node, HostNetworkMode::Pod] {
                let mut loader = Loader::new();
                loader.load_str("test.yaml", text);
                let loaded = loader.finish();
                assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
                let config = Config {
                    self_traffic,
                    host_network,
                    ..Config::default()
                };
                let model = Model::new(loaded.cluster, config);
                let endpoints = model.cluster().endpoints.len();
                for port in [PortQuery::Number(80), PortQuery::Name("http".to_string())] {
                    let matrix = model.port_matrix(Protocol::Tcp, &port);
                    let mut some_allowed = false;
                    for source in 0..endpoints {
                        let expected: Vec<EndpointId> = (0..endpoints)
                            .filter(|&destination| matrix.allowed(source, destination))
                            .collect();
                        some_allowed |= !expected.is_empty();
                        assert_eq!(
                            matrix.destinations(source),
                            expected,
                            "{self_traffic:?} {host_network:?} {port} from {}",
                            model.cluster().endpoint_name(source)
                        );
                    }
                    assert!(some_allowed);
                }
            }
        }
    }
}
