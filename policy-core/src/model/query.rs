//! Single queries: can A reach B on port P, and why.

use std::fmt;
use std::net::IpAddr;

use super::{ClassId, Model, PodClass, PolicyId};
use crate::admin::evaluate::{AdminPeerEnd, Side};
pub use crate::admin::evaluate::{AdminRuleRef, TierMatch};
use crate::admin::{Action, Tier};
use crate::cluster::EndpointId;
use crate::config::SelfTraffic;
use crate::policy::Direction;
use crate::ports::Protocol;

/// One end of a queried connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryEndpoint {
    /// A pod or workload of the cluster.
    Endpoint(EndpointId),
    /// An address outside the cluster.
    Address(IpAddr),
}

/// The destination port of a query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortQuery {
    /// A port number.
    Number(u16),
    /// A named container port of the destination pod.
    Name(String),
}

impl fmt::Display for PortQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortQuery::Number(number) => write!(f, "{number}"),
            PortQuery::Name(name) => f.write_str(name),
        }
    }
}

impl std::str::FromStr for PortQuery {
    type Err = String;

    /// A number from 1 to 65535, or a port name.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            match text.parse::<u16>() {
                Ok(port) if port >= 1 => Ok(PortQuery::Number(port)),
                _ => Err(format!("{text} is not a port number: use 1 to 65535")),
            }
        } else {
            crate::validate::port_name(text)?;
            Ok(PortQuery::Name(text.to_string()))
        }
    }
}

/// A rule of a policy, as a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// The policy (index into [`crate::Cluster::policies`]).
    pub policy: PolicyId,
    /// Which list the rule is in.
    pub direction: Direction,
    /// Its index in that list.
    pub index: usize,
}

/// What one side (the source's egress or the destination's ingress) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideVerdict {
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    /// The endpoint is outside the cluster: no policy applies to it.
    OutsideCluster,
    /// The endpoint is a node's address: no NetworkPolicy applies to nodes.
    NodeTraffic,
    /// A host-network pod treated as node traffic: no policy applies to it.
    HostNetwork,
    /// Ingress from the destination's own node is always allowed.
    FromLocalNode,
    /// Egress to the source's own node is always allowed.
    ToLocalNode,
    /// A pod reaching itself is always allowed ([`SelfTraffic::Allow`]).
    SelfTraffic,
    /// The pod is isolated, and these rules allow the connection.
    AllowedBy(Vec<RuleRef>),
    /// The pod is isolated by these policies, and none of their rules
    /// allows the connection.
    Denied(Vec<PolicyId>),
    /// An admin-tier rule decided (AdminNetworkPolicy, or a
    /// ClusterNetworkPolicy of tier Admin): Accept or Deny, before any
    /// NetworkPolicy. See [`TierMatch::ambiguous_with`].
    Admin(TierMatch),
    /// No NetworkPolicy selects the pod for this direction, and a
    /// baseline-tier rule decided (the BaselineAdminNetworkPolicy, or a
    /// ClusterNetworkPolicy of tier Baseline): Accept or Deny.
    Baseline(TierMatch),
}

impl SideVerdict {
    /// True unless the side denies the connection.
    pub fn allowed(&self) -> bool {
        match self {
            SideVerdict::Denied(_) => false,
            SideVerdict::Admin(decision) | SideVerdict::Baseline(decision) => {
                decision.action == Action::Accept
            }
            _ => true,
        }
    }
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The source.
    pub from: QueryEndpoint,
    /// The destination.
    pub to: QueryEndpoint,
    /// The protocol.
    pub protocol: Protocol,
    /// The destination port number (a named port resolved at the destination).
    pub port: u16,
    /// The port name, when the query named the port.
    pub port_name: Option<String>,
    /// The source's egress side.
    pub egress: SideVerdict,
    /// The destination's ingress side.
    pub ingress: SideVerdict,
}

impl Verdict {
    /// True if both sides allow the connection (networking/v1: "If either
    /// side does not allow the connection, it will not happen").
    pub fn allowed(&self) -> bool {
        self.egress.allowed() && self.ingress.allowed()
    }
}

/// Why a query cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// A named port was asked of a destination outside the cluster.
    NamedPortToAddress(String),
    /// The destination has no container port of that name and protocol.
    NoSuchNamedPort {
        /// The destination.
        endpoint: EndpointId,
        /// The name.
        name: String,
        /// The protocol.
        protocol: Protocol,
    },
}

impl Model {
    /// Can `from` reach `to` on `port`/`protocol`? The verdict explains both
    /// sides. A named port is resolved against the destination's container ports.
    pub fn query(
        &self,
        from: QueryEndpoint,
        to: QueryEndpoint,
        port: &PortQuery,
        protocol: Protocol,
    ) -> Result<Verdict, QueryError> {
        let (number, port_name) = match port {
            PortQuery::Number(number) => (*number, None),
            PortQuery::Name(name) => {
                let QueryEndpoint::Endpoint(destination) = to else {
                    return Err(QueryError::NamedPortToAddress(name.clone()));
                };
                let class = &self.classes[self.endpoint_class[destination]];
                let number = class.named_port(name, protocol).ok_or_else(|| {
                    QueryError::NoSuchNamedPort {
                        endpoint: destination,
                        name: name.clone(),
                        protocol,
                    }
                })?;
                (number, Some(name.clone()))
            }
        };
        let (egress, ingress) = match (from, to) {
            (QueryEndpoint::Endpoint(s), QueryEndpoint::Endpoint(d))
                if s == d && self.config.self_traffic == SelfTraffic::Allow =>
            {
                (SideVerdict::SelfTraffic, SideVerdict::SelfTraffic)
            }
            _ => (
                self.tiered(Direction::Egress, from, to, protocol, number, || {
                    self.egress_verdict(from, to, protocol, number)
                }),
                self.tiered(Direction::Ingress, from, to, protocol, number, || {
                    self.ingress_verdict(from, to, protocol, number)
                }),
            ),
        };
        Ok(Verdict {
            from,
            to,
            protocol,
            port: number,
            port_name,
            egress,
            ingress,
        })
    }

    /// One side through the tiers: an Admin-tier Accept or Deny decides;
    /// otherwise (no match, or Pass) the NetworkPolicy side verdict
    /// `network_policy`; if no NetworkPolicy selects the pod in this
    /// direction, a Baseline-tier Accept or Deny; otherwise allowed
    /// (docs/SEMANTICS.md §18). Only pods are subjects of admin policies:
    /// an address, a node, or a host-networked pod has no admin side.
    fn tiered(
        &self,
        direction: Direction,
        from: QueryEndpoint,
        to: QueryEndpoint,
        protocol: Protocol,
        port: u16,
        network_policy: impl FnOnce() -> SideVerdict,
    ) -> SideVerdict {
        let (subject, peer) = match direction {
            Direction::Egress => (from, to),
            Direction::Ingress => (to, from),
        };
        let QueryEndpoint::Endpoint(subject) = subject else {
            return network_policy();
        };
        if self.cluster.admin_policies.is_empty() {
            return network_policy();
        }
        let side = Side {
            model: self,
            direction,
            subject,
            peer: match peer {
                QueryEndpoint::Endpoint(id) => AdminPeerEnd::Endpoint(id),
                QueryEndpoint::Address(address) => AdminPeerEnd::Address(address),
            },
            protocol,
            port,
        };
        if let Some(decision) = side.decide(Tier::Admin)
            && decision.action != Action::Pass
        {
            return SideVerdict::Admin(decision);
        }
        let verdict = network_policy();
        if verdict != SideVerdict::NotIsolated {
            return verdict;
        }
        match side.decide(Tier::Baseline) {
            // A Baseline Pass hands over to the default, which allows.
            Some(decision) if decision.action != Action::Pass => SideVerdict::Baseline(decision),
            _ => verdict,
        }
    }

    pub(super) fn egress_verdict(
        &self,
        from: QueryEndpoint,
        to: QueryEndpoint,
        protocol: Protocol,
        port: u16,
    ) -> SideVerdict {
        let QueryEndpoint::Endpoint(source) = from else {
            return match from {
                QueryEndpoint::Address(address) if self.node_of_address(address).is_some() => {
                    SideVerdict::NodeTraffic
                }
                _ => SideVerdict::OutsideCluster,
            };
        };
        let to_own_node = match to {
            QueryEndpoint::Endpoint(destination) => self.local_node_traffic(source, destination),
            QueryEndpoint::Address(address) => self.is_own_node_address(source, address),
        };
        if to_own_node && self.classes[self.endpoint_class[source]].selectable {
            return SideVerdict::ToLocalNode;
        }
        let source_class = self.endpoint_class[source];
        let destination_class = match to {
            QueryEndpoint::Endpoint(d) => Some(self.endpoint_class[d]),
            QueryEndpoint::Address(_) => None,
        };
        self.side_verdict(
            Direction::Egress,
            source_class,
            to,
            destination_class,
            protocol,
            port,
        )
    }

    pub(super) fn ingress_verdict(
        &self,
        from: QueryEndpoint,
        to: QueryEndpoint,
        protocol: Protocol,
        port: u16,
    ) -> SideVerdict {
        let QueryEndpoint::Endpoint(destination) = to else {
            return match to {
                QueryEndpoint::Address(address) if self.node_of_address(address).is_some() => {
                    SideVerdict::NodeTraffic
                }
                _ => SideVerdict::OutsideCluster,
            };
        };
        let from_own_node = match from {
            QueryEndpoint::Endpoint(source) => self.local_node_traffic(source, destination),
            QueryEndpoint::Address(address) => self.is_own_node_address(destination, address),
        };
        if from_own_node && self.classes[self.endpoint_class[destination]].selectable {
            return SideVerdict::FromLocalNode;
        }
        let destination_class = self.endpoint_class[destination];
        self.side_verdict(
            Direction::Ingress,
            destination_class,
            from,
            Some(destination_class),
            protocol,
            port,
        )
    }

    /// The verdict of the policies selecting `subject` in `direction`, for a
    /// connection with `peer` whose destination is of class `destination`.
    fn side_verdict(
        &self,
        direction: Direction,
        subject: ClassId,
        peer: QueryEndpoint,
        destination: Option<ClassId>,
        protocol: Protocol,
        port: u16,
    ) -> SideVerdict {
        if !self.classes[subject].selectable {
            return SideVerdict::HostNetwork;
        }
        let policies = self.class_policies(direction, subject);
        if policies.is_empty() {
            return SideVerdict::NotIsolated;
        }
        let destination_class: Option<&PodClass> = destination.map(|c| &self.classes[c]);
        let peer_matches = |rule: &super::CompiledRule| match peer {
            QueryEndpoint::Endpoint(endpoint) => {
                rule.peers.contains_class(self.endpoint_class[endpoint])
            }
            QueryEndpoint::Address(address) => rule.peers.contains_address(address),
        };
        let allowing: Vec<RuleRef> = policies
            .iter()
            .flat_map(|&policy| self.rules_of(policy, direction))
            .filter(|rule| {
                peer_matches(rule)
                    && self
                        .ports_of(rule)
                        .allows(destination_class, protocol, port)
            })
            .map(|rule| RuleRef {
                policy: rule.policy,
                direction,
                index: rule.index,
            })
            .collect();
        if allowing.is_empty() {
            SideVerdict::Denied(policies.to_vec())
        } else {
            SideVerdict::AllowedBy(allowing)
        }
    }

    /// Resolves a command-line endpoint: `namespace/name`, or an IP address
    /// (an address that is exactly one pod's IP means that pod).
    pub fn resolve_endpoint(&self, text: &str) -> Result<QueryEndpoint, String> {
        if let Ok(address) = text.parse::<IpAddr>() {
            return Ok(match self.cluster.endpoints_with_ip(address).as_slice() {
                [endpoint] => QueryEndpoint::Endpoint(*endpoint),
                _ => QueryEndpoint::Address(address),
            });
        }
        self.cluster
            .find_endpoint(text)
            .map(QueryEndpoint::Endpoint)
    }

    /// The display name of a query endpoint: `namespace/name`, an address,
    /// or `address (node NAME)` for a node's address.
    pub fn endpoint_label(&self, endpoint: QueryEndpoint) -> String {
        match endpoint {
            QueryEndpoint::Endpoint(id) => self.cluster.endpoint_name(id).to_string(),
            QueryEndpoint::Address(address) => match self.node_of_address(address) {
                Some(node) => format!("{address} (node {node})"),
                None => address.to_string(),
            },
        }
    }

    /// The node that holds `address`: from the Node objects' addresses,
    /// and from host-network pods (which share their node's addresses).
    pub fn node_of_address(&self, address: IpAddr) -> Option<&str> {
        self.node_addresses.get(&address).map(String::as_str)
    }

    /// True if `address` belongs to the node `endpoint` runs on.
    pub(crate) fn is_own_node_address(&self, endpoint: EndpointId, address: IpAddr) -> bool {
        self.config.host_network == crate::config::HostNetworkMode::Node
            && self.cluster.endpoints[endpoint].node.as_deref().is_some()
            && self.cluster.endpoints[endpoint].node.as_deref() == self.node_of_address(address)
    }
}
