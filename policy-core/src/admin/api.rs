//! The admin-tier policy kinds as they are written, for decoding.
//!
//! k8s-openapi has no types for custom resources, so these mirror the
//! schemas of kubernetes-sigs/network-policy-api: `apis/v1alpha1` (tag
//! v0.1.7/v0.1.8) and `apis/v1alpha2` (tag v0.2.0), experimental channel,
//! which is a superset of the standard one.
//!
//! Every field is optional here, even the ones the schema requires, and
//! enums are plain strings: [`super::AdminPolicy::from_object`] checks them
//! and reports each problem at its field, which a serde error cannot do as
//! well. Integers are `i64` so that an out-of-range value is reported as
//! such rather than as a type error. No type uses `#[serde(flatten)]`:
//! the spanned decoder learns the known fields of a type from
//! `deserialize_struct`, and flattening would hide them, so unknown fields
//! would go unreported. `status` (conditions the implementation writes
//! on live objects) is accepted whatever it holds and never read.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// `spec.subject`: shared by both versions (field names did not change).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Every pod of the namespaces this selects.
    pub namespaces: Option<LabelSelector>,
    /// Pods selected by namespace and pod labels.
    pub pods: Option<NamespacedPod>,
}

/// `pods` in a subject or peer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPod {
    /// Required in v1alpha1; optional (all namespaces) in v1alpha2.
    pub namespace_selector: Option<LabelSelector>,
    /// Required in both versions.
    pub pod_selector: Option<LabelSelector>,
}

/// One `from` or `to` entry, of any kind and version.
///
/// One type for ingress and egress peers, so that an egress-only field in
/// an ingress rule gets a message that says so instead of a bare "unknown
/// field".
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Every pod of the selected namespaces.
    pub namespaces: Option<LabelSelector>,
    /// Pods selected by namespace and pod labels.
    pub pods: Option<NamespacedPod>,
    /// Nodes selected by labels (egress, experimental channel).
    pub nodes: Option<LabelSelector>,
    /// CIDRs (egress).
    pub networks: Option<Vec<String>>,
    /// DNS names (egress; experimental channel; not in BANP).
    pub domain_names: Option<Vec<String>>,
}

/// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy and
/// BaselineAdminNetworkPolicy.
pub mod v1alpha1 {
    use super::*;

    /// An AdminNetworkPolicy (cluster-scoped).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AdminNetworkPolicy {
        /// `policy.networking.k8s.io/v1alpha1`.
        pub api_version: Option<String>,
        /// `AdminNetworkPolicy`.
        pub kind: Option<String>,
        /// Name and labels.
        #[serde(default)]
        pub metadata: ObjectMeta,
        /// The policy; required.
        pub spec: Option<AdminNetworkPolicySpec>,
        /// What the implementation reports (conditions); not read.
        pub status: Option<IgnoredAny>,
    }

    /// `spec` of an AdminNetworkPolicy.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AdminNetworkPolicySpec {
        /// 0..=1000, lower first; required.
        pub priority: Option<i64>,
        /// The pods the policy applies to; required.
        pub subject: Option<Subject>,
        /// Ingress rules, in precedence order.
        pub ingress: Option<Vec<IngressRule>>,
        /// Egress rules, in precedence order.
        pub egress: Option<Vec<EgressRule>>,
    }

    /// A BaselineAdminNetworkPolicy (cluster-scoped, a singleton named `default`).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct BaselineAdminNetworkPolicy {
        /// `policy.networking.k8s.io/v1alpha1`.
        pub api_version: Option<String>,
        /// `BaselineAdminNetworkPolicy`.
        pub kind: Option<String>,
        /// Name and labels.
        #[serde(default)]
        pub metadata: ObjectMeta,
        /// The policy; required.
        pub spec: Option<BaselineAdminNetworkPolicySpec>,
        /// What the implementation reports (conditions); not read.
        pub status: Option<IgnoredAny>,
    }

    /// `spec` of a BaselineAdminNetworkPolicy: no priority.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct BaselineAdminNetworkPolicySpec {
        /// The pods the policy applies to; required.
        pub subject: Option<Subject>,
        /// Ingress rules, in precedence order.
        pub ingress: Option<Vec<IngressRule>>,
        /// Egress rules, in precedence order.
        pub egress: Option<Vec<EgressRule>>,
    }

    /// One ingress rule.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct IngressRule {
        /// At most 100 characters.
        pub name: Option<String>,
        /// `Allow`, `Deny` or `Pass` (BANP: no `Pass`); required.
        pub action: Option<String>,
        /// Sources; 1..=100 entries, required.
        pub from: Option<Vec<Peer>>,
        /// Destination ports; absent means every port.
        pub ports: Option<Vec<Port>>,
    }

    /// One egress rule.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct EgressRule {
        /// At most 100 characters.
        pub name: Option<String>,
        /// `Allow`, `Deny` or `Pass` (BANP: no `Pass`); required.
        pub action: Option<String>,
        /// Destinations; 1..=100 entries, required.
        pub to: Option<Vec<Peer>>,
        /// Destination ports; absent means every port.
        pub ports: Option<Vec<Port>>,
    }

    /// One `ports` entry: exactly one field.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Port {
        /// One port.
        pub port_number: Option<PortNumber>,
        /// A container port name of the destination pod (experimental channel).
        pub named_port: Option<String>,
        /// `start..=end`.
        pub port_range: Option<PortRange>,
    }

    /// `portNumber`.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PortNumber {
        /// A free string in the schema; defaults to `TCP`.
        pub protocol: Option<String>,
        /// 1..=65535; required.
        pub port: Option<i64>,
    }

    /// `portRange`.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PortRange {
        /// A free string in the schema; defaults to `TCP`.
        pub protocol: Option<String>,
        /// 1..=65535; required.
        pub start: Option<i64>,
        /// 1..=65535; required. The schema does not check `start <= end`.
        pub end: Option<i64>,
    }
}

/// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy.
pub mod v1alpha2 {
    use super::*;

    /// A ClusterNetworkPolicy (cluster-scoped).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ClusterNetworkPolicy {
        /// `policy.networking.k8s.io/v1alpha2`.
        pub api_version: Option<String>,
        /// `ClusterNetworkPolicy`.
        pub kind: Option<String>,
        /// Name and labels.
        #[serde(default)]
        pub metadata: ObjectMeta,
        /// The policy; required.
        pub spec: Option<ClusterNetworkPolicySpec>,
        /// What the implementation reports (conditions); not read.
        pub status: Option<IgnoredAny>,
    }

    /// `spec` of a ClusterNetworkPolicy.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ClusterNetworkPolicySpec {
        /// `Admin` or `Baseline`; required.
        pub tier: Option<String>,
        /// 0..=1000 within the tier, lower first; required.
        pub priority: Option<i64>,
        /// The pods the policy applies to; required.
        pub subject: Option<Subject>,
        /// Ingress rules, in precedence order.
        pub ingress: Option<Vec<IngressRule>>,
        /// Egress rules, in precedence order.
        pub egress: Option<Vec<EgressRule>>,
    }

    /// One ingress rule.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct IngressRule {
        /// At most 100 characters.
        pub name: Option<String>,
        /// `Accept`, `Deny` or `Pass`; required.
        pub action: Option<String>,
        /// Sources; 1..=25 entries, required.
        pub from: Option<Vec<Peer>>,
        /// Destination ports; absent means every port.
        pub protocols: Option<Vec<ProtocolPort>>,
    }

    /// One egress rule.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct EgressRule {
        /// At most 100 characters.
        pub name: Option<String>,
        /// `Accept`, `Deny` or `Pass`; required.
        pub action: Option<String>,
        /// Destinations; 1..=25 entries, required.
        pub to: Option<Vec<Peer>>,
        /// Destination ports; absent means every port.
        pub protocols: Option<Vec<ProtocolPort>>,
    }

    /// One `protocols` entry: exactly one field.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ProtocolPort {
        /// TCP ports.
        pub tcp: Option<TransportPorts>,
        /// UDP ports.
        pub udp: Option<TransportPorts>,
        /// SCTP ports.
        pub sctp: Option<TransportPorts>,
        /// A container port name of the destination pod.
        pub destination_named_port: Option<String>,
    }

    /// `tcp`, `udp` or `sctp`: the schema sets `minProperties: 1`, so
    /// `destinationPort` must be written.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TransportPorts {
        /// The destination port or range.
        pub destination_port: Option<DestinationPort>,
    }

    /// `destinationPort`: exactly one field.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DestinationPort {
        /// One port, 1..=65535.
        pub number: Option<i64>,
        /// `start..=end` with `start < end`.
        pub range: Option<PortRange>,
    }

    /// `range`.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PortRange {
        /// 1..=65535; required.
        pub start: Option<i64>,
        /// 1..=65535, greater than `start`; required.
        pub end: Option<i64>,
    }
}
