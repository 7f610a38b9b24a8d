use std::collections::BTreeSet;

use super::{policy_object, rule_location};
use crate::bitset::BitSet;
use crate::ipset::IpSet;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::{ClassId, Model, PolicyId};
use crate::path::FieldPath;
use crate::policy::{Direction, Policy, Rule as PolicyRule};
use crate::ports::{PortSet, Protocol};

declare_rule! {
    /// ## What it does
    /// Reports a rule, or a whole policy, whose removal would change no allowed
    /// connection. This is decided on the model: for every pod the policy
    /// selects, every peer and every port the rule allows is also allowed by
    /// other rules that apply to that pod. A policy is redundant when all its
    /// rules are and every pod it isolates is isolated by another policy too.
    /// Identical policies under different names are reported as such. Of two
    /// rules that cover each other, the later one is reported.
    ///
    /// ## Why it matters
    /// Redundant rules make policies harder to review, and hide intent: when
    /// the broader rule is later narrowed, the narrower one silently becomes
    /// load-bearing.
    ///
    /// ## Example
    /// ```yaml
    /// ingress:
    /// - from: [{namespaceSelector: {}}]          # every pod in the cluster
    /// - from: [{podSelector: {matchLabels: {app: web}}}]
    ///   ports: [{port: 80}]                      # already covered by the first rule
    /// ```
    ///
    /// ## Use instead
    /// Remove the covered rule, or narrow the broad one.
    pub struct Redundant {
        code: "NP007",
        name: "redundant",
        severity: Warning,
        summary: "a rule or policy whose removal changes no allowed connection",
    }
}

impl Rule for Redundant {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let cluster = model.cluster();
        let policy_count = cluster.policies.len();
        let selected: Vec<Vec<ClassId>> = model.classes_selected_by_each_policy();

        // Identical policies first: the later of two is reported as a copy.
        // Only policies of one namespace and selector can be copies, so each
        // is compared with the earlier ones of its group, not all of them.
        let mut copies = BTreeSet::new();
        let mut groups: std::collections::HashMap<(&str, String), Vec<PolicyId>> =
            std::collections::HashMap::new();
        for later in 0..policy_count {
            let policy = &cluster.policies[later];
            let group = groups
                .entry((policy.namespace.as_str(), policy.pod_selector.to_string()))
                .or_default();
            let original = group
                .iter()
                .copied()
                .find(|&earlier| same_meaning(&cluster.policies[earlier], policy));
            group.push(later);
            if let Some(earlier) = original {
                copies.insert(later);
                let original = &cluster.policies[earlier];
                let policy = &cluster.policies[later];
                let at = original
                    .source
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "this policy is identical to {}{at}: removing either changes nothing",
                            original.reference()
                        ),
                    )
                    .with_help("delete one of the two")
                    .at(
                        policy.source.clone(),
                        Some(policy_object(model, later)),
                        FieldPath::root(),
                    ),
                );
            }
        }

        // Rules, narrowest first, each judged against the rules still kept:
        // of two rules that cover each other, the narrower one is reported.
        let mut order: Vec<(PolicyId, Direction, usize)> = Vec::new();
        for (policy, classes) in selected.iter().enumerate() {
            // Copies are reported whole and cover nothing; dead policies are NP004's.
            if copies.contains(&policy) || classes.is_empty() {
                continue;
            }
            for direction in [Direction::Ingress, Direction::Egress] {
                for id in model.rule_ids(policy, direction) {
                    order.push((policy, direction, id));
                }
            }
        }
        let breadth = |id: usize| {
            let rule = model.compiled_rule(id);
            let peers = if rule.peers.everyone {
                usize::MAX
            } else {
                rule.peers.classes.count()
            };
            let ports = model.ports_of(rule);
            let port_count: usize = if ports.all {
                usize::MAX
            } else {
                Protocol::ALL
                    .iter()
                    .flat_map(|&p| ports.numeric.ranges(p))
                    .map(|&(first, last)| usize::from(last - first) + 1)
                    .sum::<usize>()
                    + ports.named.len()
            };
            (peers, !rule.peers.addresses.is_empty(), port_count)
        };
        order.sort_by(|a, b| breadth(a.2).cmp(&breadth(b.2)).then(b.2.cmp(&a.2)));
        let mut removed: BTreeSet<usize> = copies
            .iter()
            .flat_map(|&policy| {
                model
                    .rule_ids(policy, Direction::Ingress)
                    .chain(model.rule_ids(policy, Direction::Egress))
            })
            .collect();
        let mut redundant_rules: Vec<(PolicyId, Direction, usize)> = Vec::new();
        for (policy, direction, id) in order {
            let covered = selected[policy]
                .iter()
                .all(|&class| rule_is_covered(model, id, class, direction, &removed));
            if covered {
                removed.insert(id);
                redundant_rules.push((policy, direction, model.compiled_rule(id).index));
            }
        }

        // Whole policies: every rule redundant, and every pod they isolate is
        // isolated by another policy that stays.
        let mut removed_policies = copies.clone();
        for policy in (0..policy_count).rev() {
            if selected[policy].is_empty() || copies.contains(&policy) {
                continue;
            }
            let all_rules_redundant = [Direction::Ingress, Direction::Egress]
                .iter()
                .all(|&d| model.rule_ids(policy, d).all(|id| removed.contains(&id)));
            // A default-deny (no rules at all) is a safety net for pods to
            // come: it counts as redundant only next to another default-deny,
            // not next to allow policies that happen to isolate the same pods.
            let deny_only = |p: PolicyId| {
                [Direction::Ingress, Direction::Egress]
                    .iter()
                    .all(|&d| cluster.policies[p].rules(d).is_none_or(<[_]>::is_empty))
            };
            let isolation_kept = [Direction::Ingress, Direction::Egress]
                .iter()
                .all(|&direction| {
                    !cluster.policies[policy].affects(direction)
                        || selected[policy].iter().all(|&class| {
                            model.class_policies(direction, class).iter().any(|&other| {
                                other != policy
                                    && !removed_policies.contains(&other)
                                    && (!deny_only(policy) || deny_only(other))
                            })
                        })
                });
            if all_rules_redundant && isolation_kept {
                removed_policies.insert(policy);
                let policy_ref = &cluster.policies[policy];
                findings.push(
                    Finding::new(
                        self.info(),
                        "this whole policy is redundant: other policies already isolate the pods it selects and allow everything it allows",
                    )
                    .with_help("delete it, or narrow the policies that cover it")
                    .at(policy_ref.source.clone(), Some(policy_object(model, policy)), FieldPath::root()),
                );
            }
        }

        for (policy, direction, index) in redundant_rules {
            if removed_policies.contains(&policy) {
                continue;
            }
            let (source, field) = rule_location(model, policy, direction, index);
            findings.push(
                Finding::new(
                    self.info(),
                    format!(
                        "rule {}[{index}] is redundant: for every pod this policy selects, other rules already allow everything it allows",
                        direction.field()
                    ),
                )
                .with_help("remove it, or narrow the rules that cover it")
                .at(source, Some(policy_object(model, policy)), field),
            );
        }
    }
}

/// True if two policies in one namespace have the same selector and rules.
fn same_meaning(a: &Policy, b: &Policy) -> bool {
    fn same_rules(a: Option<&[PolicyRule]>, b: Option<&[PolicyRule]>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x.peers == y.peers && x.ports == y.ports)
            }
            _ => false,
        }
    }
    a.namespace == b.namespace
        && a.pod_selector == b.pod_selector
        && same_rules(a.rules(Direction::Ingress), b.rules(Direction::Ingress))
        && same_rules(a.rules(Direction::Egress), b.rules(Direction::Egress))
}

/// True if everything rule `id` allows for pods of `class` (in `direction`)
/// is also allowed by the other rules applying to `class` that are not removed.
fn rule_is_covered(
    model: &Model,
    id: usize,
    class: ClassId,
    direction: Direction,
    removed: &BTreeSet<usize>,
) -> bool {
    let classes = model.classes();
    let others: Vec<usize> = model
        .class_policies(direction, class)
        .iter()
        .flat_map(|&policy| model.rule_ids(policy, direction))
        .filter(|other| *other != id && !removed.contains(other))
        .collect();
    let all_classes = BitSet::full(classes.len());
    let peer_classes = |rule_id: usize| {
        let peers = &model.compiled_rule(rule_id).peers;
        if peers.everyone {
            &all_classes
        } else {
            &peers.classes
        }
    };
    let ports = |rule_id: usize, destination: Option<ClassId>| {
        model
            .ports_of(model.compiled_rule(rule_id))
            .resolve(destination.map(|c| &classes[c]))
    };

    // A rule that matches no peer at all is not redundant but dead (NP005),
    // or matches peers outside the input: either way, not ours to judge.
    let own = &model.compiled_rule(id).peers;
    if !own.everyone && own.classes.is_clear() && own.addresses.is_empty() {
        return false;
    }
    // Addresses outside the cluster: named ports never resolve there.
    let addresses_of = |rule_id: usize| model.compiled_rule(rule_id).peers.addresses.clone();
    let own_addresses = addresses_of(id);
    if !own_addresses.is_empty() {
        let own_ports = ports(
            id,
            if direction == Direction::Ingress {
                Some(class)
            } else {
                None
            },
        );
        let destination = if direction == Direction::Ingress {
            Some(class)
        } else {
            None
        };
        let other_ports: Vec<PortSet> = others.iter().map(|&o| ports(o, destination)).collect();
        for atom in port_atoms(&own_ports, &other_ports) {
            let mut covered = IpSet::empty();
            for (other, other_ports) in others.iter().zip(&other_ports) {
                if atom.is_subset(other_ports) {
                    covered.union_with(&addresses_of(*other));
                }
            }
            if !own_addresses.difference(&covered).is_empty() {
                return false;
            }
        }
    }

    let own_peers = peer_classes(id);
    if own_peers.is_clear() {
        return true;
    }
    // Where ports resolve on the peer (egress named ports), compare per peer
    // class; otherwise the ports are the same for every peer.
    let any_named = std::iter::once(id)
        .chain(others.iter().copied())
        .any(|r| !model.ports_of(model.compiled_rule(r)).named.is_empty());
    if direction == Direction::Egress && any_named {
        return own_peers.ones().all(|peer| {
            let mut allowed = PortSet::empty();
            for &other in &others {
                if peer_classes(other).contains(peer) {
                    allowed.union_with(&ports(other, Some(peer)));
                }
            }
            ports(id, Some(peer)).is_subset(&allowed)
        });
    }
    let destination = if direction == Direction::Ingress {
        Some(class)
    } else {
        None
    };
    let own_ports = ports(id, destination);
    let other_ports: Vec<PortSet> = others.iter().map(|&o| ports(o, destination)).collect();
    for atom in port_atoms(&own_ports, &other_ports) {
        let mut covered = BitSet::new(classes.len());
        for (other, other_ports) in others.iter().zip(&other_ports) {
            if atom.is_subset(other_ports) {
                covered.union_with(peer_classes(*other));
            }
        }
        let mut uncovered = own_peers.clone();
        uncovered.difference_with(&covered);
        if !uncovered.is_clear() {
            return false;
        }
    }
    true
}

/// Splits `base` into pieces that each of `others` contains whole or not at all.
fn port_atoms(base: &PortSet, others: &[PortSet]) -> Vec<PortSet> {
    let mut atoms = Vec::new();
    for protocol in Protocol::ALL {
        let mut cuts: Vec<u32> = Vec::new();
        for other in others {
            for &(first, last) in other.ranges(protocol) {
                cuts.push(u32::from(first));
                cuts.push(u32::from(last) + 1);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        for &(first, last) in base.ranges(protocol) {
            let mut start = u32::from(first);
            let end = u32::from(last);
            for &cut in &cuts {
                if cut > start && cut <= end {
                    atoms.push(PortSet::range(protocol, start as u16, (cut - 1) as u16));
                    start = cut;
                }
            }
            atoms.push(PortSet::range(protocol, start as u16, end as u16));
        }
    }
    atoms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_atoms_split_at_every_boundary_inside_the_base() {
        let base = PortSet::range(Protocol::Tcp, 1, 100);
        let others = [
            PortSet::range(Protocol::Tcp, 50, 60),
            PortSet::range(Protocol::Tcp, 90, 200),
        ];
        let atoms: Vec<String> = port_atoms(&base, &others)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(atoms, ["TCP 1-49", "TCP 50-60", "TCP 61-89", "TCP 90-100"]);
    }
}
