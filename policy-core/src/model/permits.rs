//! Which rules let a connection through, for a whole port set.
//!
//! [`Model::query`] names the rules behind one port. A reviewer looking at
//! "A may reach B on TCP 80,443; UDP 53" wants the same for the whole set:
//! on each side, the rules that match the other end and the ports each of
//! them accounts for. [`Model::side_permit`] answers that for a class and a
//! counterpart (another class, or a region of outside addresses).

use super::{AdminRuleRef, ClassId, Model, PolicyId, RuleRef};
use crate::ipset::IpSet;
use crate::policy::Direction;
use crate::ports::PortSet;

/// The other end of a connection, as the policies of one side see it.
#[derive(Clone, Copy, Debug)]
pub enum Counterpart<'a> {
    /// Pods of a class.
    Class(ClassId),
    /// Addresses outside the cluster that every rule treats alike: a part of
    /// [`Model::address_partition`] (or a union of parts that allow the same).
    Addresses(&'a IpSet),
}

/// What the policies of one side of a connection allow toward one counterpart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SidePermit {
    /// No policy selects the pods for this direction: every port is allowed.
    NotIsolated,
    /// Host-network pods treated as node traffic: no policy applies to them.
    HostNetwork,
    /// The pods are isolated by `policies`. `rules` are the rules that match
    /// the counterpart, each with the ports it allows (named ports resolved
    /// at the destination), in policy then rule order. No rule: this side
    /// denies every port.
    Isolated {
        /// The policies that isolate the pods for this direction.
        policies: Vec<PolicyId>,
        /// The rules that match the counterpart, with their ports.
        rules: Vec<(RuleRef, PortSet)>,
    },
    /// Admin-tier policies apply to the pods: what the tiers, the
    /// NetworkPolicies and the default allow together, rule by rule.
    Tiered {
        /// Accept rules of the Admin or Baseline tier, with the ports each
        /// decided.
        accepted: Vec<(AdminRuleRef, PortSet)>,
        /// NetworkPolicy rules, with the ports each allows of what the
        /// Admin tier left or passed.
        rules: Vec<(RuleRef, PortSet)>,
        /// Ports no rule decided, allowed by default (no NetworkPolicy
        /// isolates the pods; the Baseline tier passed them or had no rule).
        by_default: PortSet,
    },
}

impl SidePermit {
    /// Every port this side allows.
    pub fn ports(&self) -> PortSet {
        match self {
            SidePermit::NotIsolated | SidePermit::HostNetwork => PortSet::all(),
            SidePermit::Isolated { rules, .. } => {
                let mut ports = PortSet::empty();
                for (_, rule_ports) in rules {
                    ports.union_with(rule_ports);
                }
                ports
            }
            SidePermit::Tiered {
                accepted,
                rules,
                by_default,
            } => {
                let mut ports = by_default.clone();
                for (_, rule_ports) in accepted {
                    ports.union_with(rule_ports);
                }
                for (_, rule_ports) in rules {
                    ports.union_with(rule_ports);
                }
                ports
            }
        }
    }

    /// The rules that account for a connection on `ports`: each rule's ports
    /// narrowed to `ports`, and the rules left with none dropped. Pass the
    /// connection's allowed set (both sides intersected) to learn which rule
    /// allows which part of it.
    pub fn restricted_to(self, ports: &PortSet) -> SidePermit {
        match self {
            SidePermit::Isolated { policies, rules } => SidePermit::Isolated {
                policies,
                rules: rules
                    .into_iter()
                    .map(|(rule, rule_ports)| (rule, rule_ports.intersection(ports)))
                    .filter(|(_, rule_ports)| !rule_ports.is_empty())
                    .collect(),
            },
            SidePermit::Tiered {
                accepted,
                rules,
                by_default,
            } => SidePermit::Tiered {
                accepted: narrow(accepted, ports),
                rules: narrow(rules, ports),
                by_default: by_default.intersection(ports),
            },
            open => open,
        }
    }
}

impl Model {
    /// What the policies selecting pods of `subject` allow in `direction`
    /// toward `counterpart` (ingress: from it; egress: to it), rule by rule.
    ///
    /// Agrees with the connection sets: for classes `s` and `d`,
    /// `side_permit(Egress, s, Class(d)).ports()` intersected with
    /// `side_permit(Ingress, d, Class(s)).ports()` is
    /// [`Model::connections`] of their members (distinct endpoints not on the
    /// same node as a host-network one), and for a region of addresses the
    /// ports are [`Model::address_connections`]. Named ports never match an
    /// address as the destination.
    pub fn side_permit(
        &self,
        direction: Direction,
        subject: ClassId,
        counterpart: Counterpart<'_>,
    ) -> SidePermit {
        if !self.classes[subject].selectable {
            return SidePermit::HostNetwork;
        }
        if self.has_tier_rules(direction, subject) {
            return self.tiered_permit(direction, subject, counterpart);
        }
        let policies = self.class_policies(direction, subject);
        if policies.is_empty() {
            return SidePermit::NotIsolated;
        }
        let destination = match (direction, counterpart) {
            (Direction::Ingress, _) => Some(&self.classes[subject]),
            (Direction::Egress, Counterpart::Class(class)) => Some(&self.classes[class]),
            (Direction::Egress, Counterpart::Addresses(_)) => None,
        };
        let rules = policies
            .iter()
            .flat_map(|&policy| self.rules_of(policy, direction))
            .filter(|rule| match counterpart {
                Counterpart::Class(class) => rule.peers.contains_class(class),
                Counterpart::Addresses(region) => {
                    rule.peers.everyone || rule.peers.addresses.intersects(region)
                }
            })
            .map(|rule| {
                (
                    RuleRef {
                        policy: rule.policy,
                        direction,
                        index: rule.index,
                    },
                    self.ports_of(rule).resolve(destination),
                )
            })
            .filter(|(_, ports)| !ports.is_empty())
            .collect();
        SidePermit::Isolated {
            policies: policies.to_vec(),
            rules,
        }
    }
}

/// Each rule's ports narrowed to `ports`; the rules left with none dropped.
fn narrow<R>(list: Vec<(R, PortSet)>, ports: &PortSet) -> Vec<(R, PortSet)> {
    list.into_iter()
        .map(|(rule, rule_ports)| (rule, rule_ports.intersection(ports)))
        .filter(|(_, rule_ports)| !rule_ports.is_empty())
        .collect()
}

impl Model {
    fn tiered_permit(
        &self,
        direction: Direction,
        subject: ClassId,
        counterpart: Counterpart<'_>,
    ) -> SidePermit {
        let destination = match (direction, counterpart) {
            (Direction::Ingress, _) => Some(&self.classes[subject]),
            (Direction::Egress, Counterpart::Class(class)) => Some(&self.classes[class]),
            (Direction::Egress, Counterpart::Addresses(_)) => None,
        };
        let side = self.side_rules(direction, subject);
        let account = side.account(false, |peers, ports| {
            let matches = match counterpart {
                Counterpart::Class(class) => peers.contains_class(class),
                Counterpart::Addresses(region) => {
                    peers.everyone || peers.addresses.intersects(region)
                }
            };
            if matches {
                ports.resolve(destination)
            } else {
                PortSet::empty()
            }
        });
        // The grants are the selecting policies' rules, in that order.
        let references: Vec<RuleRef> = (self.class_policies(direction, subject).iter())
            .flat_map(|&policy| self.rules_of(policy, direction))
            .map(|rule| RuleRef {
                policy: rule.policy,
                direction,
                index: rule.index,
            })
            .collect();
        SidePermit::Tiered {
            accepted: account.accepted,
            rules: (account.granted.into_iter())
                .map(|(index, ports)| (references[index], ports))
                .collect(),
            by_default: account.by_default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol;
    use crate::{Config, Loader};

    fn model(text: &str) -> Model {
        let mut loader = Loader::new();
        loader.load_str("t.yaml", text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        Model::new(loaded.cluster, Config::default())
    }

    /// web may reach db on 5432 (policy db, ingress[0]) and on the named
    /// port `metrics` (policy scrape, ingress[0]); db's egress is isolated
    /// with one rule toward web's 8080 and one toward 203.0.113.0/24.
    const SHOP: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, image: i, ports: [{name: metrics, containerPort: 9187}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 8080}]
  - to: [{ipBlock: {cidr: 203.0.113.0/24}}]
    ports: [{port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: scrape, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: metrics}]
";

    fn class(model: &Model, name: &str) -> ClassId {
        model.class_of(model.cluster().find_endpoint(name).unwrap())
    }

    fn rules(permit: &SidePermit) -> Vec<String> {
        let SidePermit::Isolated { rules, .. } = permit else {
            panic!("not isolated: {permit:?}");
        };
        rules
            .iter()
            .map(|(rule, ports)| {
                let policy = &rule.policy;
                format!(
                    "{policy} {}[{}]: {ports}",
                    rule.direction.field(),
                    rule.index
                )
            })
            .collect()
    }

    #[test]
    fn each_matching_rule_is_listed_with_the_ports_it_allows() {
        let model = model(SHOP);
        let (web, db) = (class(&model, "shop/web"), class(&model, "shop/db"));
        let ingress = model.side_permit(Direction::Ingress, db, Counterpart::Class(web));
        // Policy 0 is shop/db, 1 is shop/scrape; `metrics` resolves on db.
        assert_eq!(
            rules(&ingress),
            ["0 ingress[0]: TCP 5432", "1 ingress[0]: TCP 9187"]
        );
        assert_eq!(
            model.side_permit(Direction::Egress, web, Counterpart::Class(db)),
            SidePermit::NotIsolated
        );
    }

    #[test]
    fn side_ports_agree_with_the_connection_sets() {
        let model = model(SHOP);
        let endpoints = model.cluster().endpoints.len();
        for source in 0..endpoints {
            for destination in (0..endpoints).filter(|&d| d != source) {
                let (s, d) = (model.class_of(source), model.class_of(destination));
                let egress = model.side_permit(Direction::Egress, s, Counterpart::Class(d));
                let ingress = model.side_permit(Direction::Ingress, d, Counterpart::Class(s));
                assert_eq!(
                    egress.ports().intersection(&ingress.ports()),
                    model.connections(source, destination)
                );
            }
        }
        for region in model.address_partition() {
            for class in 0..model.classes().len() {
                for direction in [Direction::Ingress, Direction::Egress] {
                    assert_eq!(
                        model
                            .side_permit(direction, class, Counterpart::Addresses(&region))
                            .ports(),
                        model.address_connections(class, direction, &region)
                    );
                }
            }
        }
    }

    #[test]
    fn restricting_to_the_connection_keeps_the_rules_that_account_for_it() {
        let model = model(SHOP);
        let (web, db) = (class(&model, "shop/web"), class(&model, "shop/db"));
        let connection = PortSet::single(Protocol::Tcp, 5432);
        let ingress = model
            .side_permit(Direction::Ingress, db, Counterpart::Class(web))
            .restricted_to(&connection);
        assert_eq!(rules(&ingress), ["0 ingress[0]: TCP 5432"]);
    }

    #[test]
    fn address_counterparts_match_ip_blocks_and_never_named_ports() {
        let model = model(SHOP);
        let db = class(&model, "shop/db");
        let processor = IpSet::from_cidr(crate::ipset::Cidr::parse("203.0.113.0/24").unwrap().cidr);
        let egress = model.side_permit(Direction::Egress, db, Counterpart::Addresses(&processor));
        assert_eq!(rules(&egress), ["0 egress[1]: TCP 443"]);
        // From outside, only the scrape rule (no peers) matches, and its
        // named port resolves on db, the destination.
        let ingress = model.side_permit(Direction::Ingress, db, Counterpart::Addresses(&processor));
        assert_eq!(rules(&ingress), ["1 ingress[0]: TCP 9187"]);
    }
}
