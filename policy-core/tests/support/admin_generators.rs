//! Random admin-tier policies as API objects (ANPs, a BANP, CNPs of both
//! tiers), for the property tests: `policy-core/tests/admin_property.rs`
//! compares the model with a naive reading of them, and
//! `policy-nft/tests/kernel.rs` the kernel with the model. Needs the
//! `common` test module next to it.

#![allow(dead_code)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::common::{self, PORT_NAMES, PORT_NUMBERS, PROTOCOLS};

pub const NETWORKS: [&str; 5] = [
    "10.0.0.0/24",
    "10.0.0.0/27",
    "10.0.0.32/27",
    "192.168.0.0/16",
    // The kernel tests' outside host.
    "203.0.113.0/24",
];

/// One generated admin policy: its JSON object, and what the naive side
/// needs to order it.
#[derive(Clone, Debug)]
pub struct Generated {
    pub object: Json,
    /// 0 Admin, 1 Baseline.
    pub tier: u8,
    /// Lower first; the BANP last in its tier.
    pub precedence: u64,
    /// AdminNetworkPolicy < BaselineAdminNetworkPolicy < ClusterNetworkPolicy, then name.
    pub order: (u8, String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Version {
    V1alpha1,
    V1alpha2,
}

fn pod_selector() -> impl Strategy<Value = LabelSelector> {
    common::selector(&["app", "tier", "role"], &["web", "db", "api"])
}

fn namespace_selector() -> impl Strategy<Value = LabelSelector> {
    common::selector(
        &["team", "env", "kubernetes.io/metadata.name"],
        &["web", "db", "prod", "alpha", "beta"],
    )
}

pub fn selector_json(selector: &LabelSelector) -> Json {
    serde_json::to_value(selector).unwrap()
}

fn subject() -> impl Strategy<Value = Json> {
    prop_oneof![
        namespace_selector().prop_map(|n| json!({"namespaces": selector_json(&n)})),
        (namespace_selector(), pod_selector()).prop_map(|(n, p)| json!({"pods": {
            "namespaceSelector": selector_json(&n), "podSelector": selector_json(&p)}})),
    ]
}

fn peer(egress: bool) -> BoxedStrategy<Json> {
    let selectors = prop_oneof![
        namespace_selector().prop_map(|n| json!({"namespaces": selector_json(&n)})),
        (namespace_selector(), pod_selector()).prop_map(|(n, p)| json!({"pods": {
            "namespaceSelector": selector_json(&n), "podSelector": selector_json(&p)}})),
    ];
    if egress {
        let networks = proptest::sample::subsequence(&NETWORKS[..], 1..3)
            .prop_map(|cidrs| json!({"networks": cidrs}));
        prop_oneof![3 => selectors, 1 => networks].boxed()
    } else {
        selectors.boxed()
    }
}

fn port(version: Version) -> BoxedStrategy<Json> {
    let protocol = proptest::sample::select(&PROTOCOLS[..]);
    let number = proptest::sample::select(&PORT_NUMBERS[..]);
    let name = proptest::sample::select(&PORT_NAMES[..]);
    match version {
        Version::V1alpha1 => prop_oneof![
            (protocol.clone(), number.clone())
                .prop_map(|(p, n)| json!({"portNumber": {"protocol": p, "port": n}})),
            (protocol, number, 1..30u16).prop_map(|(p, n, w)| json!({"portRange": {
                "protocol": p, "start": n, "end": n + w}})),
            name.prop_map(|n| json!({"namedPort": n})),
        ]
        .boxed(),
        Version::V1alpha2 => prop_oneof![
            (protocol.clone(), number.clone()).prop_map(|(p, n)| json!({
                p.to_lowercase(): {"destinationPort": {"number": n}}})),
            (protocol, number, 1..30u16).prop_map(|(p, n, w)| json!({
                p.to_lowercase(): {"destinationPort": {"range": {"start": n, "end": n + w}}}})),
            name.prop_map(|n| json!({"destinationNamedPort": n})),
        ]
        .boxed(),
    }
}

fn rule(
    version: Version,
    egress: bool,
    actions: &'static [&'static str],
) -> impl Strategy<Value = Json> {
    let ports_field = match version {
        Version::V1alpha1 => "ports",
        Version::V1alpha2 => "protocols",
    };
    (
        proptest::sample::select(actions),
        proptest::collection::vec(peer(egress), 1..3),
        proptest::option::of(proptest::collection::vec(port(version), 1..3)),
    )
        // A named port with a `networks` peer is rejected (v1alpha1) or
        // matches nothing the API defines (v1alpha2): not generated.
        .prop_filter("no named port with networks", |(_, peers, ports)| {
            let networks = peers.iter().any(|p| p.get("networks").is_some());
            let named = ports
                .iter()
                .flatten()
                .any(|p| p.get("namedPort").is_some() || p.get("destinationNamedPort").is_some());
            !(networks && named)
        })
        .prop_map(move |(action, peers, ports)| {
            let mut rule = json!({"action": action});
            rule[if egress { "to" } else { "from" }] = json!(peers);
            if let Some(ports) = ports {
                rule[ports_field] = json!(ports);
            }
            rule
        })
}

fn rules(
    version: Version,
    actions: &'static [&'static str],
) -> impl Strategy<Value = (Vec<Json>, Vec<Json>)> {
    (
        proptest::collection::vec(rule(version, false, actions), 0..3),
        proptest::collection::vec(rule(version, true, actions), 0..3),
    )
}

fn anp(index: usize) -> impl Strategy<Value = Generated> {
    (1..4u64, subject(), rules(Version::V1alpha1, &["Allow", "Deny", "Pass"])).prop_map(
        move |(priority, subject, (ingress, egress))| {
            let name = format!("anp-{index}");
            Generated {
                object: json!({
                    "apiVersion": "policy.networking.k8s.io/v1alpha1",
                    "kind": "AdminNetworkPolicy",
                    "metadata": {"name": name},
                    "spec": {"priority": priority, "subject": subject, "ingress": ingress, "egress": egress},
                }),
                tier: 0,
                precedence: priority,
                order: (0, name),
            }
        },
    )
}

fn banp() -> impl Strategy<Value = Generated> {
    (subject(), rules(Version::V1alpha1, &["Allow", "Deny"])).prop_map(
        |(subject, (ingress, egress))| Generated {
            object: json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha1",
                "kind": "BaselineAdminNetworkPolicy",
                "metadata": {"name": "default"},
                "spec": {"subject": subject, "ingress": ingress, "egress": egress},
            }),
            tier: 1,
            precedence: u64::MAX,
            order: (1, "default".into()),
        },
    )
}

fn cnp(index: usize) -> impl Strategy<Value = Generated> {
    (
        any::<bool>(),
        1..4u64,
        subject(),
        rules(Version::V1alpha2, &["Accept", "Deny", "Pass"]),
    )
        .prop_map(move |(admin, priority, subject, (ingress, egress))| {
            let name = format!("cnp-{index}");
            Generated {
                object: json!({
                    "apiVersion": "policy.networking.k8s.io/v1alpha2",
                    "kind": "ClusterNetworkPolicy",
                    "metadata": {"name": name},
                    "spec": {"tier": if admin { "Admin" } else { "Baseline" }, "priority": priority,
                        "subject": subject, "ingress": ingress, "egress": egress},
                }),
                tier: if admin { 0 } else { 1 },
                precedence: priority,
                order: (2, name),
            }
        })
}

pub fn admin_policies() -> impl Strategy<Value = Vec<Generated>> {
    (
        (0usize..4).prop_flat_map(|n| (0..n).map(anp).collect::<Vec<_>>()),
        proptest::option::of(banp()),
        (0usize..4).prop_flat_map(|n| (0..n).map(cnp).collect::<Vec<_>>()),
    )
        .prop_map(|(mut all, banp, cnps)| {
            all.extend(banp);
            all.extend(cnps);
            all
        })
}

pub fn manifests(policies: &[Generated]) -> String {
    (policies.iter())
        .map(|p| p.object.to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
}
