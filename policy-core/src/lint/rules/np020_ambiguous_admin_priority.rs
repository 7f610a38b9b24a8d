use super::admin_tiers::admin_object;
use crate::bitset::BitSet;
use crate::lint::{Finding, LintContext, Rule, RuleInfo, declare_rule};
use crate::model::{Model, TierRule};
use crate::policy::Direction;

declare_rule! {
    /// ## What it does
    /// Reports two admin-tier policies of one tier with the same priority
    /// whose rules could match the same connection with different actions:
    /// they select a common pod, and a rule of each, in the same direction,
    /// names a common peer on a common port. AdminNetworkPolicies and Admin
    /// ClusterNetworkPolicies share the Admin tier's priorities; the
    /// BaselineAdminNetworkPolicy has none.
    ///
    /// ## Why it matters
    /// The API leaves the order of equal priorities to the implementation
    /// ("there is no way for the user to reliably determine which one"), so
    /// the connection is allowed on one CNI and denied on another, or after
    /// an upgrade. `netpol query` answers with netpol's order and marks the
    /// answer AMBIGUOUS.
    ///
    /// ## Example
    /// ```yaml
    /// # both priority 5, both selecting the `db` namespace
    /// ingress: [{action: Deny, from: [{namespaces: {}}]}]
    /// ingress: [{action: Allow, from: [{namespaces: {matchLabels: {team: app}}}]}]
    /// ```
    ///
    /// ## Use instead
    /// Give every policy of a tier its own priority.
    pub struct AmbiguousAdminPriority {
        code: "NP020",
        name: "ambiguous-admin-priority",
        severity: Warning,
        summary: "same-priority admin policies disagree about a connection",
    }
}

impl Rule for AmbiguousAdminPriority {
    fn info(&self) -> &'static RuleInfo {
        &Self::INFO
    }

    fn check(&self, context: &LintContext<'_>, findings: &mut Vec<Finding>) {
        let model = context.model;
        let policies = &model.cluster().admin_policies;
        let subjects = model.admin_subjects();
        for (second, policy) in policies.iter().enumerate() {
            let Some(priority) = policy.priority else {
                continue;
            };
            for first in 0..second {
                let other = &policies[first];
                if other.tier != policy.tier || other.priority != Some(priority) {
                    continue;
                }
                let mut common = subjects[first].clone();
                common.intersect_with(&subjects[second]);
                if common.is_clear() {
                    continue;
                }
                let Some((theirs, ours)) = conflict(model, first, second, &common) else {
                    continue;
                };
                let cluster = model.cluster();
                findings.push(
                    Finding::new(
                        self.info(),
                        format!(
                            "{} and {} have the same priority ({priority}) and disagree about some connections: {} and {} both match them; the API lets an implementation apply either",
                            policy.reference(),
                            other.reference(),
                            ours.label(cluster),
                            theirs.label(cluster),
                        ),
                    )
                    .with_help("give each policy of a tier its own priority")
                    .at(
                        policy.source.clone(),
                        Some(admin_object(policy)),
                        crate::path::FieldPath::root().key("spec").key("priority"),
                    ),
                );
            }
        }
    }
}

/// A rule of each policy that can match a common connection of the
/// `common` subject classes with a different action.
fn conflict(
    model: &Model,
    first: usize,
    second: usize,
    common: &BitSet,
) -> Option<(crate::model::AdminRuleRef, crate::model::AdminRuleRef)> {
    for direction in [Direction::Ingress, Direction::Egress] {
        let theirs = model.admin_policy_rules(first, direction);
        let ours = model.admin_policy_rules(second, direction);
        for a in &theirs {
            for b in &ours {
                if a.action != b.action && could_meet(model, a, b, direction, common) {
                    return Some((a.rule, b.rule));
                }
            }
        }
    }
    None
}

/// True if some connection of a `common` subject matches both rules.
fn could_meet(
    model: &Model,
    a: &TierRule<'_>,
    b: &TierRule<'_>,
    direction: Direction,
    common: &BitSet,
) -> bool {
    let classes = model.classes();
    let peer_classes = |rule: &TierRule<'_>| {
        if rule.peers.everyone {
            BitSet::full(classes.len())
        } else {
            rule.peers.classes.clone()
        }
    };
    let mut shared = peer_classes(a);
    shared.intersect_with(&peer_classes(b));
    let shared_addresses =
        (a.peers.everyone || b.peers.everyone) || a.peers.addresses.intersects(&b.peers.addresses);
    let meet = |destination: Option<&crate::model::PodClass>| {
        !a.ports
            .resolve(destination)
            .intersection(&b.ports.resolve(destination))
            .is_empty()
    };
    match direction {
        // Named ports resolve on the subject.
        Direction::Ingress => {
            !shared.is_clear() && common.ones().any(|class| meet(Some(&classes[class])))
        }
        // Named ports resolve on the peer; addresses have none.
        Direction::Egress => {
            shared.ones().any(|class| meet(Some(&classes[class])))
                || (shared_addresses && meet(None))
        }
    }
}
