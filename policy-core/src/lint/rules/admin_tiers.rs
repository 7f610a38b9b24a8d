//! What the admin-tier rules (NP020–NP026) share: object references and
//! field paths of admin policies, and which admin rules earlier rules leave
//! nothing to decide.
//!
//! Reachability is decided per subject class on the class model: walking a
//! tier's rules in precedence order, a *coverage map* partitions the ports
//! into regions and records, per region, the peer classes and outside
//! addresses earlier rules already decide. A rule is unreachable for a
//! class when, in every region of its ports, its peers are inside what is
//! already decided. Where the answer depends on named ports resolved per
//! destination (egress), the rule counts as reachable and earlier named
//! ports as deciding nothing: a finding is then never wrong, only missed.

use std::collections::{BTreeSet, HashSet};

use crate::admin::{Action, AdminPolicy, Tier};
use crate::bitset::BitSet;
use crate::diagnostic::ObjectRef;
use crate::ipset::IpSet;
use crate::model::{AdminRuleRef, Model, PeerSet, PodClass, RulePorts, TierRule};
use crate::path::FieldPath;
use crate::policy::Direction;
use crate::ports::PortSet;

/// The object reference of an admin policy (cluster-scoped).
pub(super) fn admin_object(policy: &AdminPolicy) -> ObjectRef {
    ObjectRef {
        kind: policy.kind.to_string(),
        namespace: String::new(),
        name: policy.name.clone(),
    }
}

/// `spec.ingress[i]` / `spec.egress[i]`.
pub(super) fn rule_field(direction: Direction, index: usize) -> FieldPath {
    let list = match direction {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    };
    FieldPath::root().key("spec").key(list).index(index)
}

/// The ports of a rule toward one destination: exact for ingress (named
/// ports resolve on the subject); for egress, `None` when named ports would
/// resolve per destination (`exact`), else the numeric ports only.
fn rule_ports(
    ports: &RulePorts,
    direction: Direction,
    subject: &PodClass,
    exact: bool,
) -> Option<PortSet> {
    if ports.all {
        return Some(PortSet::all());
    }
    match direction {
        Direction::Ingress => Some(ports.resolve(Some(subject))),
        Direction::Egress if exact && !ports.named.is_empty() => None,
        Direction::Egress => Some(ports.numeric.clone()),
    }
}

/// The classes and outside addresses of a peer set.
fn peer_parts(peers: &PeerSet, classes: usize, pod_addresses: &IpSet) -> (BitSet, IpSet) {
    if peers.everyone {
        return (
            BitSet::full(classes),
            IpSet::everything().difference(pod_addresses),
        );
    }
    (
        peers.classes.clone(),
        peers.addresses.difference(pod_addresses),
    )
}

/// One region of the coverage map: ports, and what earlier rules decide
/// there (all of them; Deny rules alone).
#[derive(Clone)]
struct Region {
    ports: PortSet,
    classes: BitSet,
    addresses: IpSet,
    deny_classes: BitSet,
    deny_addresses: IpSet,
}

/// Why a rule is never reached.
#[derive(Clone, Debug, Default)]
pub(super) struct Unreachable {
    /// Earlier rules that decide its traffic (for one subject class).
    pub(super) by: BTreeSet<AdminRuleRef>,
    /// Earlier Deny rules alone decide all of it, for every subject class.
    pub(super) by_deny: bool,
    /// A Baseline rule whose subjects NetworkPolicies isolate (for some
    /// subject classes): the Baseline tier is never consulted for them.
    pub(super) behind_network_policy: bool,
}

/// The admin rules that can never decide a connection, with why. Policies
/// that select nothing are left to NP025.
pub(super) fn unreachable_rules(model: &Model) -> Vec<(AdminRuleRef, Unreachable)> {
    let cluster = model.cluster();
    let classes = model.classes();
    let mut builder = crate::ipset::IpSetBuilder::default();
    for endpoint in &cluster.endpoints {
        for &ip in &endpoint.ips {
            builder.add_address(ip);
        }
    }
    let pod_addresses = builder.build();
    let mut found = Vec::new();
    for (policy_id, policy) in cluster.admin_policies.iter().enumerate() {
        let subjects = &model.admin_subjects()[policy_id];
        for direction in [Direction::Ingress, Direction::Egress] {
            let own = model.admin_policy_rules(policy_id, direction);
            if own.is_empty() || subjects.is_clear() {
                continue;
            }
            let mut live = vec![false; own.len()];
            let mut why = vec![
                Unreachable {
                    by_deny: true,
                    ..Unreachable::default()
                };
                own.len()
            ];
            let mut seen: HashSet<(Vec<usize>, usize, bool)> = HashSet::new();
            for class in subjects.ones() {
                let list = model.tier_rules(policy.tier, direction, class);
                let Some(start) = list.iter().position(|r| r.rule.policy == policy_id) else {
                    continue;
                };
                let mut earlier_policies: Vec<usize> =
                    list[..start].iter().map(|r| r.rule.policy).collect();
                earlier_policies.dedup();
                let isolated = model.grants(direction, class).is_some();
                // Classes with the same earlier policies (and, for ingress,
                // the same named ports) get the same answer.
                let port_key = if direction == Direction::Ingress {
                    class
                } else {
                    usize::MAX
                };
                let behind = policy.tier == Tier::Baseline && isolated;
                if !seen.insert((earlier_policies, port_key, behind)) {
                    continue;
                }
                if behind {
                    for reason in &mut why {
                        reason.behind_network_policy = true;
                        reason.by_deny = false;
                    }
                    continue;
                }
                walk(
                    &list[..start + own.len()],
                    start,
                    direction,
                    &classes[class],
                    classes.len(),
                    &pod_addresses,
                    &mut live,
                    &mut why,
                );
            }
            for (index, rule) in own.iter().enumerate() {
                if !live[index] {
                    found.push((rule.rule, why[index].clone()));
                }
            }
        }
    }
    found
}

/// Walks `list` (the tier's rules for one subject class, ending with the
/// policy's own rules from `start`), marking which own rules stay
/// reachable.
#[allow(clippy::too_many_arguments)]
fn walk(
    list: &[TierRule<'_>],
    start: usize,
    direction: Direction,
    subject: &PodClass,
    class_count: usize,
    pod_addresses: &IpSet,
    live: &mut [bool],
    why: &mut [Unreachable],
) {
    let mut regions = vec![Region {
        ports: PortSet::all(),
        classes: BitSet::new(class_count),
        addresses: IpSet::empty(),
        deny_classes: BitSet::new(class_count),
        deny_addresses: IpSet::empty(),
    }];
    for (position, rule) in list.iter().enumerate() {
        let (classes, addresses) = peer_parts(rule.peers, class_count, pod_addresses);
        if let Some(own) = position.checked_sub(start)
            && !live[own]
        {
            match rule_ports(rule.ports, direction, subject, true) {
                // Named egress ports, or ports the subject lacks: not
                // judged (a rule that matches nothing is another matter).
                None => live[own] = true,
                Some(ports) if ports.is_empty() => live[own] = true,
                Some(ports) => {
                    let mut reached = false;
                    let mut by_deny = true;
                    for region in &regions {
                        if region.ports.intersection(&ports).is_empty() {
                            continue;
                        }
                        let covered = classes.is_subset(&region.classes)
                            && addresses.difference(&region.addresses).is_empty();
                        if !covered {
                            reached = true;
                            break;
                        }
                        by_deny &= classes.is_subset(&region.deny_classes)
                            && addresses.difference(&region.deny_addresses).is_empty();
                    }
                    if reached {
                        live[own] = true;
                    } else {
                        why[own].by_deny &= by_deny;
                        if why[own].by.is_empty() {
                            why[own].by = deciding_rules(
                                &list[..position],
                                &classes,
                                &addresses,
                                &ports,
                                direction,
                                subject,
                                class_count,
                                pod_addresses,
                            );
                        }
                    }
                }
            }
        }
        // Record what this rule decides.
        let Some(ports) = rule_ports(rule.ports, direction, subject, false) else {
            continue;
        };
        let mut next = Vec::with_capacity(regions.len() + 1);
        for region in regions {
            let inside = region.ports.intersection(&ports);
            if inside.is_empty() {
                next.push(region);
                continue;
            }
            let outside = region.ports.difference(&ports);
            if !outside.is_empty() {
                next.push(Region {
                    ports: outside,
                    ..region.clone()
                });
            }
            let mut decided = Region {
                ports: inside,
                ..region
            };
            decided.classes.union_with(&classes);
            decided.addresses.union_with(&addresses);
            if rule.action == Action::Deny {
                decided.deny_classes.union_with(&classes);
                decided.deny_addresses.union_with(&addresses);
            }
            next.push(decided);
        }
        regions = next;
    }
}

/// The earlier rules that take part of a rule's traffic: their ports meet
/// its ports and their peers meet its peers.
#[allow(clippy::too_many_arguments)]
fn deciding_rules(
    earlier: &[TierRule<'_>],
    classes: &BitSet,
    addresses: &IpSet,
    ports: &PortSet,
    direction: Direction,
    subject: &PodClass,
    class_count: usize,
    pod_addresses: &IpSet,
) -> BTreeSet<AdminRuleRef> {
    earlier
        .iter()
        .filter(|rule| {
            let Some(their_ports) = rule_ports(rule.ports, direction, subject, false) else {
                return false;
            };
            let (their_classes, their_addresses) =
                peer_parts(rule.peers, class_count, pod_addresses);
            !their_ports.intersection(ports).is_empty()
                && (their_classes.intersects(classes) || their_addresses.intersects(addresses))
        })
        .map(|rule| rule.rule)
        .collect()
}

/// Up to three rules in words, then how many more.
pub(super) fn rule_list(model: &Model, rules: &BTreeSet<AdminRuleRef>) -> String {
    let mut named: Vec<String> = rules
        .iter()
        .take(3)
        .map(|rule| rule.label(model.cluster()))
        .collect();
    if rules.len() > 3 {
        named.push(format!("{} more", rules.len() - 3));
    }
    named.join("; ")
}
