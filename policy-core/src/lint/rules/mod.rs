//! The rule registry. Each rule is one file; add new ones to [`RULES`].

mod admin_tiers;
mod np001_invalid_manifest;
mod np002_unknown_field;
mod np003_questionable_manifest;
mod np004_dead_policy;
mod np005_dead_peer;
mod np006_unresolved_named_port;
mod np007_redundant;
mod np008_dns_blocked;
mod np009_unprotected_pod;
mod np010_internet_exposure;
mod np011_portability;
mod np012_deny_all;
mod np013_ignored_rules;
mod np014_service_selects_nothing;
mod np015_missing_target_port;
mod np016_ip_block_on_service_address;
mod np017_intermittent_service;
mod np018_ingress_refused;
mod np019_hidden_client_ip_block;
mod np020_ambiguous_admin_priority;
mod np021_shadowed_admin_rule;
mod np022_admin_pass_to_nothing;
mod np023_dead_admin_accept;
mod np024_admin_network_covers_pods;
mod np025_admin_selects_nothing;
mod np026_dead_admin_peer;

pub use np001_invalid_manifest::InvalidManifest;
pub use np002_unknown_field::UnknownField;
pub use np003_questionable_manifest::QuestionableManifest;
pub use np004_dead_policy::DeadPolicy;
pub use np005_dead_peer::DeadPeer;
pub use np006_unresolved_named_port::UnresolvedNamedPort;
pub use np007_redundant::Redundant;
pub use np008_dns_blocked::DnsBlocked;
pub use np009_unprotected_pod::UnprotectedPod;
pub use np010_internet_exposure::InternetExposure;
pub use np011_portability::Portability;
pub use np012_deny_all::DenyAll;
pub use np013_ignored_rules::IgnoredRules;
pub use np014_service_selects_nothing::ServiceSelectsNothing;
pub use np015_missing_target_port::MissingTargetPort;
pub use np016_ip_block_on_service_address::IpBlockOnServiceAddress;
pub use np017_intermittent_service::IntermittentService;
pub use np018_ingress_refused::IngressRefused;
pub use np019_hidden_client_ip_block::HiddenClientIpBlock;
pub use np020_ambiguous_admin_priority::AmbiguousAdminPriority;
pub use np021_shadowed_admin_rule::ShadowedAdminRule;
pub use np022_admin_pass_to_nothing::AdminPassToNothing;
pub use np023_dead_admin_accept::DeadAdminAccept;
pub use np024_admin_network_covers_pods::AdminNetworkCoversPods;
pub use np025_admin_selects_nothing::AdminSelectsNothing;
pub use np026_dead_admin_peer::DeadAdminPeer;

use super::Rule;

/// Every rule, in code order.
pub static RULES: &[&dyn Rule] = &[
    &InvalidManifest,
    &UnknownField,
    &QuestionableManifest,
    &DeadPolicy,
    &DeadPeer,
    &UnresolvedNamedPort,
    &Redundant,
    &DnsBlocked,
    &UnprotectedPod,
    &InternetExposure,
    &Portability,
    &DenyAll,
    &IgnoredRules,
    &ServiceSelectsNothing,
    &MissingTargetPort,
    &IpBlockOnServiceAddress,
    &IntermittentService,
    &IngressRefused,
    &HiddenClientIpBlock,
    &AmbiguousAdminPriority,
    &ShadowedAdminRule,
    &AdminPassToNothing,
    &DeadAdminAccept,
    &AdminNetworkCoversPods,
    &AdminSelectsNothing,
    &DeadAdminPeer,
];

use crate::diagnostic::{ObjectRef, SourceLocation};
use crate::model::{Model, PolicyId};
use crate::path::FieldPath;
use crate::policy::Direction;

/// The object reference of a policy.
pub(super) fn policy_object(model: &Model, policy: PolicyId) -> ObjectRef {
    let policy = &model.cluster().policies[policy];
    ObjectRef {
        kind: "NetworkPolicy".into(),
        namespace: policy.namespace.clone(),
        name: policy.name.clone(),
    }
}

/// The object reference of an endpoint (a Pod, or the workload standing for its pods).
pub(super) fn endpoint_object(model: &Model, endpoint: usize) -> ObjectRef {
    let endpoint = &model.cluster().endpoints[endpoint];
    ObjectRef {
        kind: endpoint.kind.as_str().into(),
        namespace: endpoint.namespace.clone(),
        name: endpoint.name.clone(),
    }
}

/// Where a rule is written, and its path.
pub(super) fn rule_location(
    model: &Model,
    policy: PolicyId,
    direction: Direction,
    rule: usize,
) -> (Option<SourceLocation>, FieldPath) {
    let source = model.cluster().policies[policy]
        .rules(direction)
        .and_then(|rules| rules.iter().find(|r| r.index == rule))
        .and_then(|r| r.source.clone());
    (
        source,
        FieldPath::root()
            .key("spec")
            .key(direction.field())
            .index(rule),
    )
}

/// A short list of names: the first few, then how many more.
pub(super) fn short_list(names: impl IntoIterator<Item = String>, limit: usize) -> String {
    let names: Vec<String> = names.into_iter().collect();
    if names.len() <= limit {
        names.join(", ")
    } else {
        format!(
            "{}, and {} more",
            names[..limit].join(", "),
            names.len() - limit
        )
    }
}
