//! Whole-cluster answers: the truth table for one port, and the allowed
//! connection set of every pair.

use std::collections::HashMap;

use super::{ClassId, Model};
use crate::bitset::{BitMatrix, BitSet};
use crate::cluster::EndpointId;
use crate::config::SelfTraffic;
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
            // Traffic between a pod and its own node is always allowed.
            return true;
        }
        self.allowed
            .get(model.endpoint_class[source], destination_class)
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
    /// Computed at class level: a destination × source matrix for ingress, a
    /// source × destination matrix for egress, and one transpose to combine
    /// them. Each row is a union of precompiled peer bitsets.
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

        // Ingress: row = destination class, columns = sources it accepts.
        let mut ingress = BitMatrix::new(class_count, class_count);
        for destination in 0..class_count {
            let policies = self.class_policies(Direction::Ingress, destination);
            if policies.is_empty() || !self.classes[destination].selectable {
                ingress.fill_row(destination);
                continue;
            }
            for &policy in policies {
                for rule in self.rules_of(policy, Direction::Ingress) {
                    if !matching_destinations[rule.ports].contains(destination) {
                        continue;
                    }
                    if rule.peers.everyone {
                        ingress.fill_row(destination);
                    } else {
                        ingress.union_row(destination, &rule.peers.classes);
                    }
                }
            }
        }

        // Egress: row = source class, columns = destinations it may reach.
        let mut allowed = BitMatrix::new(class_count, class_count);
        let mut scratch = BitSet::new(class_count);
        for source in 0..class_count {
            let policies = self.class_policies(Direction::Egress, source);
            if policies.is_empty() || !self.classes[source].selectable {
                allowed.fill_row(source);
                continue;
            }
            for &policy in policies {
                for rule in self.rules_of(policy, Direction::Egress) {
                    let destinations = &matching_destinations[rule.ports];
                    if rule.peers.everyone {
                        allowed.union_row(source, destinations);
                    } else {
                        scratch.clone_from(&rule.peers.classes);
                        scratch.intersect_with(destinations);
                        allowed.union_row(source, &scratch);
                    }
                }
            }
        }

        allowed.intersect_with(&ingress.transpose());
        allowed.retain_columns(&has_port);
        PortMatrix {
            model: self,
            protocol,
            port: port.clone(),
            allowed,
            has_port,
        }
    }

    /// Every port and protocol `source` may use to reach `destination`.
    pub fn connections(&self, source: EndpointId, destination: EndpointId) -> PortSet {
        if source == destination && self.config.self_traffic == SelfTraffic::Allow {
            return PortSet::all();
        }
        if self.local_node_traffic(source, destination) {
            return PortSet::all();
        }
        self.class_connections(
            self.endpoint_class[source],
            self.endpoint_class[destination],
        )
    }

    pub(crate) fn class_connections(&self, source: ClassId, destination: ClassId) -> PortSet {
        let egress = self.side_ports(Direction::Egress, source, source, destination);
        if egress.is_empty() {
            return egress;
        }
        let ingress = self.side_ports(Direction::Ingress, destination, source, destination);
        egress.intersection(&ingress)
    }

    /// The ports the policies selecting `subject` allow between `source` and
    /// `destination` (classes) in `direction`.
    pub(crate) fn side_ports(
        &self,
        direction: Direction,
        subject: ClassId,
        source: ClassId,
        destination: ClassId,
    ) -> PortSet {
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
        if (source == destination && model.config.self_traffic == SelfTraffic::Allow)
            || model.local_node_traffic(source, destination)
        {
            return PortSet::all();
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
