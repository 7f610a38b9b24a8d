//! Cluster-wide admin network policies, normalised and validated.
//!
//! Three kinds of the `policy.networking.k8s.io` group
//! (kubernetes-sigs/network-policy-api) put cluster-scoped policy tiers
//! around NetworkPolicy:
//!
//! - `v1alpha1` **AdminNetworkPolicy** (ANP): the Admin tier, evaluated
//!   before NetworkPolicy, ordered by `priority`;
//! - `v1alpha1` **BaselineAdminNetworkPolicy** (BANP): the Baseline tier,
//!   evaluated after NetworkPolicy; a singleton named `default`;
//! - `v1alpha2` **ClusterNetworkPolicy** (CNP): either tier, chosen by
//!   `spec.tier`, ordered by `priority` within it. It replaces the other two
//!   (`Allow` became `Accept`, `ports` became `protocols`).
//!
//! [`AdminPolicy::from_object`] turns any of them into one [`AdminPolicy`],
//! and reports what the API server would reject (CRD schema and CEL rules;
//! docs/SEMANTICS.md, "Admin tiers"). Rules keep their written order: the
//! first matching rule of a policy decides.
//!
//! [`evaluate`] reads them exactly for one connection at a time, which
//! [`crate::Model::query`] uses; the per-class model (matrix, diff, lint,
//! the nftables lowering) does not use them yet.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::diagnostic::{Severity, SourceLocation};
use crate::ipset::Cidr;
use crate::path::FieldPath;
use crate::policy::{Direction, Problem};
use crate::ports::Protocol;
use crate::selector::Selector;
use crate::validate;

pub mod api;
pub mod evaluate;

#[cfg(test)]
mod tests;

/// The API group of the admin-tier kinds.
pub const API_GROUP: &str = "policy.networking.k8s.io";

/// Which kind an admin policy was written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminKind {
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy.
    ClusterNetworkPolicy,
}

impl AdminKind {
    /// All three, in declaration order.
    pub const ALL: [AdminKind; 3] = [
        AdminKind::AdminNetworkPolicy,
        AdminKind::BaselineAdminNetworkPolicy,
        AdminKind::ClusterNetworkPolicy,
    ];

    /// The kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            AdminKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            AdminKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
        }
    }

    /// The one `apiVersion` that serves the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            AdminKind::AdminNetworkPolicy | AdminKind::BaselineAdminNetworkPolicy => {
                "policy.networking.k8s.io/v1alpha1"
            }
            AdminKind::ClusterNetworkPolicy => "policy.networking.k8s.io/v1alpha2",
        }
    }

    /// Parses a kind name.
    pub fn from_kind(kind: &str) -> Option<AdminKind> {
        AdminKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    fn limits(self) -> Limits {
        match self {
            // v1alpha1 markers: MaxItems=100 on rules, peers and ports.
            AdminKind::AdminNetworkPolicy | AdminKind::BaselineAdminNetworkPolicy => Limits {
                rules: 100,
                peers: 100,
                ports: 100,
                ports_field: "ports",
            },
            // v1alpha2 lowered them to 25 (network-policy-api CHANGELOG v0.2.0).
            AdminKind::ClusterNetworkPolicy => Limits {
                rules: 25,
                peers: 25,
                ports: 25,
                ports_field: "protocols",
            },
        }
    }

    fn is_v1alpha1(self) -> bool {
        self != AdminKind::ClusterNetworkPolicy
    }
}

impl fmt::Display for AdminKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Limits {
    rules: usize,
    peers: usize,
    ports: usize,
    ports_field: &'static str,
}

/// CIDRs per `networks` peer and names per `domainNames` peer, both versions.
const MAX_NETWORKS: usize = 25;
const MAX_DOMAIN_NAMES: usize = 25;
/// `maxLength` of one `networks` entry.
const MAX_CIDR_LENGTH: usize = 43;
/// `maxLength` of a rule name.
const MAX_RULE_NAME: usize = 100;
/// `spec.priority` bounds.
const MAX_PRIORITY: i64 = 1000;

/// The tier a policy belongs to. Evaluation order: Admin, then
/// NetworkPolicy, then Baseline, then the default (allow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Before NetworkPolicy: ANPs and `tier: Admin` CNPs.
    Admin,
    /// After NetworkPolicy, only for pods no NetworkPolicy selects in that
    /// direction: the BANP and `tier: Baseline` CNPs.
    Baseline,
}

impl Tier {
    /// `Admin` or `Baseline`, as in `spec.tier`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// v1alpha2 `Accept`, v1alpha1 `Allow`: allowed in this direction,
    /// whatever lower tiers say.
    Accept,
    /// Denied, whatever lower tiers say.
    Deny,
    /// Skip the rest of this tier; the next tier decides.
    Pass,
}

impl Action {
    /// `Accept`, `Deny` or `Pass` (the v1alpha2 spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "Accept",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        }
    }
}

/// The pods a policy applies to. Host-networked pods are never selected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Every pod of the namespaces the selector matches.
    Namespaces(Selector),
    /// The pods `pods` matches in the namespaces `namespaces` matches.
    Pods {
        /// Namespace selector; `{}` (all namespaces) when a v1alpha2
        /// policy leaves it out.
        namespaces: Selector,
        /// Pod selector.
        pods: Selector,
    },
}

/// One `from` / `to` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AdminPeer {
    /// Every pod (not host-networked) of the matching namespaces.
    Namespaces(Selector),
    /// Matching pods (not host-networked) of matching namespaces.
    Pods {
        /// Namespace selector; `{}` when v1alpha2 leaves it out.
        namespaces: Selector,
        /// Pod selector.
        pods: Selector,
    },
    /// The addresses of the matching Nodes (egress only), which includes
    /// host-networked pods on them.
    Nodes(Selector),
    /// Addresses (egress only). Pod and node addresses inside them match
    /// too: the API says a `0.0.0.0/0` rule covers pod-to-pod traffic.
    Networks(Vec<Cidr>),
    /// DNS names, exact or `*.` wildcards (egress only). Not statically
    /// resolvable.
    DomainNames(Vec<String>),
    /// A peer that sets no field netpol knows, as when the installed CRD is
    /// newer. The API asks implementations to fail closed: such an Accept
    /// rule matches nothing, such a Deny or Pass rule denies everything.
    Unknown,
}

/// One `ports` (v1alpha1) or `protocols` (v1alpha2) entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminPort {
    /// One destination port.
    Number {
        /// Protocol.
        protocol: Protocol,
        /// Port, 1..=65535.
        port: u16,
    },
    /// Destination ports `start..=end`. Empty when `end < start`, which
    /// only v1alpha1 accepts.
    Range {
        /// Protocol.
        protocol: Protocol,
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
    /// A container port name, resolved against the destination pod; the
    /// protocol is the container port's.
    Named(String),
    /// A v1alpha1 entry whose `protocol` is not TCP, UDP or SCTP. The
    /// schema takes any string there, so the API server stores it, but no
    /// traffic is known to match it: later phases must fail closed on it,
    /// as on [`AdminPeer::Unknown`].
    UnknownProtocol(String),
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminRule {
    /// Direction of the rule.
    pub direction: Direction,
    /// Position in `spec.ingress` / `spec.egress`: earlier rules win.
    pub index: usize,
    /// `name`, when written.
    pub name: Option<String>,
    /// What a match does.
    pub action: Action,
    /// `from` / `to`: at least one entry; the rule matches if any does.
    pub peers: Vec<AdminPeer>,
    /// `ports` / `protocols`; `None` when absent, which matches every port
    /// and protocol. Never empty: the schema requires at least one entry.
    pub ports: Option<Vec<AdminPort>>,
    /// Where the rule is written.
    pub source: Option<SourceLocation>,
}

impl AdminRule {
    /// `ingress[0]` / `egress[2]`, with the name when there is one.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{}[{}] {name:?}", self.direction.field(), self.index),
            None => format!("{}[{}]", self.direction.field(), self.index),
        }
    }
}

/// An ANP, BANP or CNP, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminPolicy {
    /// The kind it was written as.
    pub kind: AdminKind,
    /// The name (cluster-scoped: no namespace).
    pub name: String,
    /// ANP: Admin; BANP: Baseline; CNP: `spec.tier`.
    pub tier: Tier,
    /// `spec.priority`, 0..=1000, lower first within the tier; `None` for
    /// the BANP, which has none (there is only one).
    pub priority: Option<u32>,
    /// The pods it applies to.
    pub subject: Subject,
    /// Ingress rules in precedence order; empty leaves ingress alone
    /// (no implicit isolation, unlike NetworkPolicy).
    pub ingress: Vec<AdminRule>,
    /// Egress rules in precedence order; empty leaves egress alone.
    pub egress: Vec<AdminRule>,
    /// Where the object is: its `metadata.name`, or its start.
    pub source: Option<SourceLocation>,
}

impl AdminPolicy {
    /// `AdminNetworkPolicy name`.
    pub fn reference(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }

    /// The rules of one direction.
    pub fn rules(&self, direction: Direction) -> &[AdminRule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// The order of [`crate::Cluster::admin_policies`]: by tier, then
    /// priority, then kind and name.
    pub fn cluster_order(&self, other: &AdminPolicy) -> std::cmp::Ordering {
        (self.tier, self.priority, self.kind, &self.name).cmp(&(
            other.tier,
            other.priority,
            other.kind,
            &other.name,
        ))
    }
}

/// An admin policy as decoded, before validation.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum AdminObject {
    AdminNetworkPolicy(api::v1alpha1::AdminNetworkPolicy),
    BaselineAdminNetworkPolicy(api::v1alpha1::BaselineAdminNetworkPolicy),
    ClusterNetworkPolicy(api::v1alpha2::ClusterNetworkPolicy),
}

impl AdminObject {
    /// Its kind.
    pub fn kind(&self) -> AdminKind {
        match self {
            AdminObject::AdminNetworkPolicy(_) => AdminKind::AdminNetworkPolicy,
            AdminObject::BaselineAdminNetworkPolicy(_) => AdminKind::BaselineAdminNetworkPolicy,
            AdminObject::ClusterNetworkPolicy(_) => AdminKind::ClusterNetworkPolicy,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            AdminObject::AdminNetworkPolicy(o) => &o.metadata,
            AdminObject::BaselineAdminNetworkPolicy(o) => &o.metadata,
            AdminObject::ClusterNetworkPolicy(o) => &o.metadata,
        }
    }

    /// Its name, empty when missing.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }
}

/// A rule of either version, borrowed: the checks are the same but for
/// the port list.
struct RawRule<'a> {
    name: Option<&'a str>,
    action: Option<&'a str>,
    peers: Option<&'a [api::Peer]>,
    ports: RawPorts<'a>,
}

enum RawPorts<'a> {
    V1alpha1(Option<&'a [api::v1alpha1::Port]>),
    V1alpha2(Option<&'a [api::v1alpha2::ProtocolPort]>),
}

impl RawPorts<'_> {
    fn len(&self) -> Option<usize> {
        match self {
            RawPorts::V1alpha1(ports) => ports.map(<[_]>::len),
            RawPorts::V1alpha2(ports) => ports.map(<[_]>::len),
        }
    }
}

impl AdminPolicy {
    /// Normalises and validates a decoded admin policy.
    ///
    /// Returns the policy (unless some problem is an error, since the API
    /// server would not store it, or an implementation could not enforce
    /// it) and every problem found, sorted by field path.
    /// `unknown_fields` are the paths of the keys the decoder did not
    /// know: a peer whose only keys are unknown is [`AdminPeer::Unknown`]
    /// rather than an empty peer. `locate` maps a field path to its place
    /// in the source.
    pub fn from_object(
        object: &AdminObject,
        unknown_fields: &[FieldPath],
        locate: &dyn Fn(&FieldPath) -> Option<SourceLocation>,
    ) -> (Option<AdminPolicy>, Vec<Problem>) {
        let kind = object.kind();
        let mut checker = Checker {
            kind,
            unknown_fields,
            locate,
            problems: Vec::new(),
        };
        let name = object.name().to_string();
        checker.check_name(&name);
        let spec_path = FieldPath::root().key("spec");

        // With no spec, only its absence is reported.
        let (tier, priority, subject, (ingress_rules, egress_rules)) = match object {
            AdminObject::AdminNetworkPolicy(o) => {
                let spec = checker.required(o.spec.as_ref(), &spec_path);
                let priority =
                    spec.and_then(|s| checker.priority(s.priority, &spec_path.key("priority")));
                (
                    Some(Tier::Admin),
                    priority,
                    spec.map(|s| s.subject.as_ref()),
                    v1alpha1_rules(
                        spec.and_then(|s| s.ingress.as_deref()),
                        spec.and_then(|s| s.egress.as_deref()),
                    ),
                )
            }
            AdminObject::BaselineAdminNetworkPolicy(o) => {
                // A CEL rule on the object: `self.metadata.name == 'default'`.
                if !name.is_empty() && name != "default" {
                    checker.error(
                        FieldPath::parse("metadata.name"),
                        format!(
                            "a BaselineAdminNetworkPolicy must be named \"default\", not {name:?}: only one can exist in a cluster"
                        ),
                    );
                }
                let spec = checker.required(o.spec.as_ref(), &spec_path);
                (
                    Some(Tier::Baseline),
                    None,
                    spec.map(|s| s.subject.as_ref()),
                    v1alpha1_rules(
                        spec.and_then(|s| s.ingress.as_deref()),
                        spec.and_then(|s| s.egress.as_deref()),
                    ),
                )
            }
            AdminObject::ClusterNetworkPolicy(o) => {
                let spec = checker.required(o.spec.as_ref(), &spec_path);
                let tier =
                    spec.and_then(|s| checker.tier(s.tier.as_deref(), &spec_path.key("tier")));
                let priority =
                    spec.and_then(|s| checker.priority(s.priority, &spec_path.key("priority")));
                (
                    tier,
                    priority,
                    spec.map(|s| s.subject.as_ref()),
                    v1alpha2_rules(
                        spec.and_then(|s| s.ingress.as_deref()),
                        spec.and_then(|s| s.egress.as_deref()),
                    ),
                )
            }
        };
        let subject =
            subject.and_then(|subject| checker.subject(subject, &spec_path.key("subject")));
        let ingress = checker.rules(Direction::Ingress, ingress_rules.as_deref(), &spec_path);
        let egress = checker.rules(Direction::Egress, egress_rules.as_deref(), &spec_path);

        let mut problems = checker.problems;
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        let valid = !problems.iter().any(|p| p.severity == Severity::Error);
        let needs_priority = kind != AdminKind::BaselineAdminNetworkPolicy;
        let policy = match (valid, tier, subject, priority.is_some() || !needs_priority) {
            (true, Some(tier), Some(subject), true) => Some(AdminPolicy {
                kind,
                name,
                tier,
                priority,
                subject,
                ingress,
                egress,
                source: locate(&FieldPath::parse("metadata.name")),
            }),
            _ => None,
        };
        (policy, problems)
    }
}

fn v1alpha1_rules<'a>(
    ingress: Option<&'a [api::v1alpha1::IngressRule]>,
    egress: Option<&'a [api::v1alpha1::EgressRule]>,
) -> (Option<Vec<RawRule<'a>>>, Option<Vec<RawRule<'a>>>) {
    (
        ingress.map(|rules| {
            rules
                .iter()
                .map(|r| RawRule {
                    name: r.name.as_deref(),
                    action: r.action.as_deref(),
                    peers: r.from.as_deref(),
                    ports: RawPorts::V1alpha1(r.ports.as_deref()),
                })
                .collect()
        }),
        egress.map(|rules| {
            rules
                .iter()
                .map(|r| RawRule {
                    name: r.name.as_deref(),
                    action: r.action.as_deref(),
                    peers: r.to.as_deref(),
                    ports: RawPorts::V1alpha1(r.ports.as_deref()),
                })
                .collect()
        }),
    )
}

fn v1alpha2_rules<'a>(
    ingress: Option<&'a [api::v1alpha2::IngressRule]>,
    egress: Option<&'a [api::v1alpha2::EgressRule]>,
) -> (Option<Vec<RawRule<'a>>>, Option<Vec<RawRule<'a>>>) {
    (
        ingress.map(|rules| {
            rules
                .iter()
                .map(|r| RawRule {
                    name: r.name.as_deref(),
                    action: r.action.as_deref(),
                    peers: r.from.as_deref(),
                    ports: RawPorts::V1alpha2(r.protocols.as_deref()),
                })
                .collect()
        }),
        egress.map(|rules| {
            rules
                .iter()
                .map(|r| RawRule {
                    name: r.name.as_deref(),
                    action: r.action.as_deref(),
                    peers: r.to.as_deref(),
                    ports: RawPorts::V1alpha2(r.protocols.as_deref()),
                })
                .collect()
        }),
    )
}

/// Collects the problems of one object.
struct Checker<'a> {
    kind: AdminKind,
    unknown_fields: &'a [FieldPath],
    locate: &'a dyn Fn(&FieldPath) -> Option<SourceLocation>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn error(&mut self, path: FieldPath, message: impl Into<String>) {
        self.problems.push(Problem::error(path, message));
    }

    fn warning(&mut self, path: FieldPath, message: impl Into<String>) {
        self.problems.push(Problem::warning(path, message));
    }

    /// True if the decoder met unknown keys strictly inside `path`.
    fn has_unknown_fields_under(&self, path: &FieldPath) -> bool {
        self.unknown_fields
            .iter()
            .any(|unknown| unknown.len() > path.len() && unknown.steps().starts_with(path.steps()))
    }

    fn required<'v, T>(&mut self, value: Option<&'v T>, path: &FieldPath) -> Option<&'v T> {
        if value.is_none() {
            self.error(path.clone(), format!("`{}` is required", last_key(path)));
        }
        value
    }

    fn check_name(&mut self, name: &str) {
        let path = FieldPath::parse("metadata.name");
        if name.is_empty() {
            self.error(path, format!("a {} needs a name", self.kind));
        } else if let Err(message) = validate::dns1123_subdomain(name) {
            self.error(path, message);
        }
    }

    fn priority(&mut self, priority: Option<i64>, path: &FieldPath) -> Option<u32> {
        match priority {
            None => {
                self.error(
                    path.clone(),
                    format!(
                        "`priority` is required: a number from 0 to {MAX_PRIORITY}, lower numbers first"
                    ),
                );
                None
            }
            Some(value) if !(0..=MAX_PRIORITY).contains(&value) => {
                self.error(
                    path.clone(),
                    format!(
                        "priority {value} is out of range: it must be from 0 to {MAX_PRIORITY}"
                    ),
                );
                None
            }
            Some(value) => u32::try_from(value).ok(),
        }
    }

    fn tier(&mut self, tier: Option<&str>, path: &FieldPath) -> Option<Tier> {
        match tier {
            Some("Admin") => Some(Tier::Admin),
            Some("Baseline") => Some(Tier::Baseline),
            Some(other) => {
                self.error(
                    path.clone(),
                    format!("{other:?} is not a tier: use \"Admin\" or \"Baseline\""),
                );
                None
            }
            None => {
                self.error(
                    path.clone(),
                    "`tier` is required: \"Admin\" (before NetworkPolicy) or \"Baseline\" (after it)",
                );
                None
            }
        }
    }

    fn selector(&mut self, selector: &LabelSelector, path: &FieldPath) -> Option<Selector> {
        // The CRD schema types a selector's strings but does not check
        // them; implementations convert it with apimachinery's
        // LabelSelectorAsSelector, which rejects what this rejects, so
        // such a policy cannot be enforced.
        let mut problems = Vec::new();
        let selector = Selector::from_label_selector(selector, path, &mut problems);
        for (path, message) in problems {
            self.error(path, message);
        }
        selector
    }

    /// `pods` in a subject or peer.
    fn namespaced_pods(
        &mut self,
        pods: &api::NamespacedPod,
        path: &FieldPath,
    ) -> Option<(Selector, Selector)> {
        let namespaces = match &pods.namespace_selector {
            Some(selector) => self.selector(selector, &path.key("namespaceSelector")),
            // v1alpha2 made it optional, meaning every namespace.
            None if !self.kind.is_v1alpha1() => Some(Selector::everything()),
            None => {
                self.error(
                    path.key("namespaceSelector"),
                    "`namespaceSelector` is required in v1alpha1 `pods`; write `{}` for every namespace",
                );
                None
            }
        };
        let pod_selector = match &pods.pod_selector {
            Some(selector) => self.selector(selector, &path.key("podSelector")),
            None => {
                self.error(
                    path.key("podSelector"),
                    "`podSelector` is required in `pods`; write `{}` for every pod",
                );
                None
            }
        };
        Some((namespaces?, pod_selector?))
    }

    fn subject(&mut self, subject: Option<&api::Subject>, path: &FieldPath) -> Option<Subject> {
        let subject = self.required(subject, path)?;
        let set: Vec<&str> = [
            ("namespaces", subject.namespaces.is_some()),
            ("pods", subject.pods.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect();
        if set.len() != 1 {
            self.error(
                path.clone(),
                format!(
                    "exactly one of `namespaces`, `pods` must be set in a subject; {}",
                    describe_set(&set)
                ),
            );
            return None;
        }
        if let Some(selector) = &subject.namespaces {
            return self
                .selector(selector, &path.key("namespaces"))
                .map(Subject::Namespaces);
        }
        let pods = subject.pods.as_ref()?;
        let (namespaces, pods) = self.namespaced_pods(pods, &path.key("pods"))?;
        Some(Subject::Pods { namespaces, pods })
    }

    fn rules(
        &mut self,
        direction: Direction,
        rules: Option<&[RawRule<'_>]>,
        spec_path: &FieldPath,
    ) -> Vec<AdminRule> {
        let rules = rules.unwrap_or_default();
        let path = spec_path.key(direction.field());
        let limit = self.kind.limits().rules;
        if rules.len() > limit {
            self.error(
                path.clone(),
                format!(
                    "{} has {} rules; a {} allows at most {limit}",
                    direction.field(),
                    rules.len(),
                    self.kind
                ),
            );
        }
        rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| self.rule(direction, index, rule, &path.index(index)))
            .collect()
    }

    fn rule(
        &mut self,
        direction: Direction,
        index: usize,
        rule: &RawRule<'_>,
        path: &FieldPath,
    ) -> Option<AdminRule> {
        let limits = self.kind.limits();
        if let Some(name) = rule.name
            && name.chars().count() > MAX_RULE_NAME
        {
            self.error(
                path.key("name"),
                format!(
                    "a rule name may have at most {MAX_RULE_NAME} characters; this one has {}",
                    name.chars().count()
                ),
            );
        }
        let action = self.action(rule.action, &path.key("action"));

        let peers_path = path.key(direction.peers_field());
        let peers = match rule.peers {
            None => {
                self.error(
                    peers_path.clone(),
                    format!(
                        "`{}` is required: a rule needs at least one peer",
                        direction.peers_field()
                    ),
                );
                Vec::new()
            }
            Some(peers) => {
                if peers.is_empty() || peers.len() > limits.peers {
                    self.error(
                        peers_path.clone(),
                        format!(
                            "`{}` must have 1 to {} peers; it has {}",
                            direction.peers_field(),
                            limits.peers,
                            peers.len()
                        ),
                    );
                }
                peers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, peer)| self.peer(direction, peer, &peers_path.index(i)))
                    .collect()
            }
        };

        let ports_path = path.key(limits.ports_field);
        if let Some(count) = rule.ports.len()
            && (count == 0 || count > limits.ports)
        {
            self.error(
                ports_path.clone(),
                format!(
                    "`{}` must have 1 to {} entries when written; it has {count} (leave it out to match every port)",
                    limits.ports_field, limits.ports
                ),
            );
        }
        let ports: Option<Vec<AdminPort>> = match &rule.ports {
            RawPorts::V1alpha1(ports) => ports.map(|ports| {
                ports
                    .iter()
                    .enumerate()
                    .filter_map(|(i, port)| self.v1alpha1_port(port, &ports_path.index(i)))
                    .collect()
            }),
            RawPorts::V1alpha2(ports) => ports.map(|ports| {
                ports
                    .iter()
                    .enumerate()
                    .filter_map(|(i, port)| self.v1alpha2_port(port, &ports_path.index(i)))
                    .collect()
            }),
        };
        if direction == Direction::Egress {
            self.check_named_ports_against_address_peers(&peers, ports.as_deref(), path);
        }
        Some(AdminRule {
            direction,
            index,
            name: rule.name.map(str::to_string),
            action: action?,
            peers,
            ports,
            source: (self.locate)(path),
        })
    }

    fn action(&mut self, action: Option<&str>, path: &FieldPath) -> Option<Action> {
        let kind = self.kind;
        let allowed: &[&str] = match kind {
            AdminKind::AdminNetworkPolicy => &["Allow", "Deny", "Pass"],
            AdminKind::BaselineAdminNetworkPolicy => &["Allow", "Deny"],
            AdminKind::ClusterNetworkPolicy => &["Accept", "Deny", "Pass"],
        };
        let Some(action) = action else {
            self.error(
                path.clone(),
                format!("`action` is required: {}", allowed.join(", ")),
            );
            return None;
        };
        if allowed.contains(&action) {
            return Some(match action {
                "Allow" | "Accept" => Action::Accept,
                "Deny" => Action::Deny,
                _ => Action::Pass,
            });
        }
        let hint = match (kind, action) {
            (AdminKind::ClusterNetworkPolicy, "Allow") => {
                " (v1alpha2 renamed Allow to Accept)".to_string()
            }
            (_, "Accept") if kind.is_v1alpha1() => {
                " (Accept is the v1alpha2 spelling; v1alpha1 says Allow)".to_string()
            }
            (AdminKind::BaselineAdminNetworkPolicy, "Pass") => {
                " (the baseline is the last tier: there is nothing to pass to)".to_string()
            }
            _ => String::new(),
        };
        self.error(
            path.clone(),
            format!(
                "{action:?} is not an action of a {kind}: use {}{hint}",
                allowed.join(", ")
            ),
        );
        None
    }

    fn peer(
        &mut self,
        direction: Direction,
        peer: &api::Peer,
        path: &FieldPath,
    ) -> Option<AdminPeer> {
        let allowed: &[&str] = match (direction, self.kind) {
            (Direction::Ingress, _) => &["namespaces", "pods"],
            (Direction::Egress, AdminKind::BaselineAdminNetworkPolicy) => {
                &["namespaces", "pods", "nodes", "networks"]
            }
            (Direction::Egress, _) => &["namespaces", "pods", "nodes", "networks", "domainNames"],
        };
        let set: Vec<&str> = [
            ("namespaces", peer.namespaces.is_some()),
            ("pods", peer.pods.is_some()),
            ("nodes", peer.nodes.is_some()),
            ("networks", peer.networks.is_some()),
            ("domainNames", peer.domain_names.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect();
        let one_of = allowed
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match set.as_slice() {
            [] if self.has_unknown_fields_under(path) => {
                self.warning(
                    path.clone(),
                    "this peer sets no field netpol knows (perhaps one of a newer CRD): as the API asks, it fails closed, so an Accept/Allow rule treats it as matching nothing and a Deny or Pass rule as matching everything",
                );
                return Some(AdminPeer::Unknown);
            }
            [field] if !allowed.contains(field) => {
                let why = if direction == Direction::Ingress {
                    format!(
                        "ingress peers select pods only (`namespaces` or `pods`); `{field}` is for egress rules"
                    )
                } else {
                    format!(
                        "a {} egress peer has no `{field}` (only AdminNetworkPolicy and ClusterNetworkPolicy do)",
                        self.kind
                    )
                };
                self.error(path.key(field), why);
                return None;
            }
            [_] => {}
            _ => {
                self.error(
                    path.clone(),
                    format!(
                        "exactly one of {one_of} must be set in a peer; {}",
                        describe_set(&set)
                    ),
                );
                return None;
            }
        }
        if let Some(selector) = &peer.namespaces {
            return self
                .selector(selector, &path.key("namespaces"))
                .map(AdminPeer::Namespaces);
        }
        if let Some(pods) = &peer.pods {
            let (namespaces, pods) = self.namespaced_pods(pods, &path.key("pods"))?;
            return Some(AdminPeer::Pods { namespaces, pods });
        }
        if let Some(selector) = &peer.nodes {
            return self
                .selector(selector, &path.key("nodes"))
                .map(AdminPeer::Nodes);
        }
        if let Some(networks) = &peer.networks {
            return self.networks(networks, &path.key("networks"));
        }
        let names = peer.domain_names.as_ref()?;
        self.domain_names(names, &path.key("domainNames"))
    }

    fn networks(&mut self, networks: &[String], path: &FieldPath) -> Option<AdminPeer> {
        let before = self.error_count();
        self.set_size(networks, MAX_NETWORKS, "CIDRs", path);
        let mut cidrs = Vec::new();
        for (index, text) in networks.iter().enumerate() {
            let item = path.index(index);
            if text.len() > MAX_CIDR_LENGTH {
                self.error(
                    item,
                    format!("{text:?} is longer than {MAX_CIDR_LENGTH} characters"),
                );
                continue;
            }
            match Cidr::parse(text) {
                Ok(parsed) => {
                    for warning in parsed.warnings {
                        self.warning(item.clone(), warning);
                    }
                    cidrs.push(parsed.cidr);
                }
                Err(message) => self.error(item, message),
            }
        }
        (self.error_count() == before).then_some(AdminPeer::Networks(cidrs))
    }

    fn domain_names(&mut self, names: &[String], path: &FieldPath) -> Option<AdminPeer> {
        let before = self.error_count();
        self.set_size(names, MAX_DOMAIN_NAMES, "names", path);
        for (index, name) in names.iter().enumerate() {
            if !is_domain_name(name) {
                self.error(
                    path.index(index),
                    format!(
                        "{name:?} is not a domain name: it must be dot-separated labels of letters, digits, '-' and '_' (at least two labels), optionally starting with \"*.\" and ending with \".\""
                    ),
                );
            }
        }
        (self.error_count() == before).then(|| AdminPeer::DomainNames(names.to_vec()))
    }

    /// `minItems: 1`, `maxItems`, and `x-kubernetes-list-type: set`
    /// (no duplicates) of `networks` and `domainNames`.
    fn set_size(&mut self, items: &[String], max: usize, what: &str, path: &FieldPath) {
        if items.is_empty() || items.len() > max {
            self.error(
                path.clone(),
                format!("must list 1 to {max} {what}; it lists {}", items.len()),
            );
        }
        for (index, item) in items.iter().enumerate() {
            if items[..index].contains(item) {
                self.error(
                    path.index(index),
                    format!("duplicate value {item:?}: this list is a set"),
                );
            }
        }
    }

    fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    fn v1alpha1_port(&mut self, port: &api::v1alpha1::Port, path: &FieldPath) -> Option<AdminPort> {
        let set: Vec<&str> = [
            ("portNumber", port.port_number.is_some()),
            ("namedPort", port.named_port.is_some()),
            ("portRange", port.port_range.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect();
        if set.len() != 1 {
            self.error(
                path.clone(),
                format!(
                    "exactly one of `portNumber`, `namedPort`, `portRange` must be set in a port; {}",
                    describe_set(&set)
                ),
            );
            return None;
        }
        if let Some(number) = &port.port_number {
            let path = path.key("portNumber");
            let port = self.port_number(number.port, &path.key("port"), "port");
            let protocol = self.v1alpha1_protocol(number.protocol.as_deref(), &path);
            return match protocol? {
                Ok(protocol) => Some(AdminPort::Number {
                    protocol,
                    port: port?,
                }),
                Err(unknown) => port.map(|_| AdminPort::UnknownProtocol(unknown)),
            };
        }
        if let Some(range) = &port.port_range {
            let path = path.key("portRange");
            let start = self.port_number(range.start, &path.key("start"), "start");
            let end = self.port_number(range.end, &path.key("end"), "end");
            let protocol = self.v1alpha1_protocol(range.protocol.as_deref(), &path);
            let (start, end) = (start?, end?);
            if end < start {
                // v1alpha1 has no start/end check (v1alpha2 added a CEL
                // rule), so the API server stores an empty range.
                self.warning(
                    path.clone(),
                    format!(
                        "the range {start}-{end} is empty (end < start), so this entry matches no port; the v1alpha1 API server accepts it, v1alpha2 would reject it"
                    ),
                );
            }
            return match protocol? {
                Ok(protocol) => Some(AdminPort::Range {
                    protocol,
                    start,
                    end,
                }),
                Err(unknown) => Some(AdminPort::UnknownProtocol(unknown)),
            };
        }
        let name = port.named_port.as_deref()?;
        Some(self.named_port(name, &path.key("namedPort")))
    }

    /// v1alpha1 `protocol`: a free string defaulting to TCP. `Err` holds a
    /// value the schema accepts but netpol cannot match.
    fn v1alpha1_protocol(
        &mut self,
        protocol: Option<&str>,
        entry_path: &FieldPath,
    ) -> Option<Result<Protocol, String>> {
        let Some(text) = protocol else {
            return Some(Ok(Protocol::Tcp));
        };
        if let Some(protocol) = Protocol::from_kubernetes(text) {
            return Some(Ok(protocol));
        }
        self.warning(
            entry_path.key("protocol"),
            format!(
                "{text:?} is not TCP, UDP or SCTP; the v1alpha1 schema accepts any string here, but no traffic is known to match it, so netpol treats this entry as matching nothing in an Allow rule and everything in a Deny or Pass rule (fail closed)"
            ),
        );
        Some(Err(text.to_string()))
    }

    fn v1alpha2_port(
        &mut self,
        entry: &api::v1alpha2::ProtocolPort,
        path: &FieldPath,
    ) -> Option<AdminPort> {
        let transports = [
            ("tcp", Protocol::Tcp, entry.tcp.as_ref()),
            ("udp", Protocol::Udp, entry.udp.as_ref()),
            ("sctp", Protocol::Sctp, entry.sctp.as_ref()),
        ];
        let mut set: Vec<&str> = transports
            .iter()
            .filter_map(|(field, _, ports)| ports.is_some().then_some(*field))
            .collect();
        if entry.destination_named_port.is_some() {
            set.push("destinationNamedPort");
        }
        if set.len() != 1 {
            self.error(
                path.clone(),
                format!(
                    "exactly one of `tcp`, `udp`, `sctp`, `destinationNamedPort` must be set in a protocols entry; {}",
                    describe_set(&set)
                ),
            );
            return None;
        }
        if let Some(name) = entry.destination_named_port.as_deref() {
            return Some(self.named_port(name, &path.key("destinationNamedPort")));
        }
        let (field, protocol, ports) = transports.into_iter().find(|(_, _, p)| p.is_some())?;
        let transport_path = path.key(field);
        let Some(destination) = ports.and_then(|p| p.destination_port.as_ref()) else {
            // `minProperties: 1` on tcp/udp/sctp.
            self.error(
                transport_path.clone(),
                format!(
                    "`{field}` needs a `destinationPort` (the schema rejects `{field}: {{}}`); for every {} port write `destinationPort: {{range: {{start: 1, end: 65535}}}}`, or leave `protocols` out for every protocol",
                    protocol.as_str()
                ),
            );
            return None;
        };
        let path = transport_path.key("destinationPort");
        match (destination.number, &destination.range) {
            (Some(number), None) => {
                let port = self.port_number(Some(number), &path.key("number"), "number")?;
                Some(AdminPort::Number { protocol, port })
            }
            (None, Some(range)) => {
                let range_path = path.key("range");
                let start = self.port_number(range.start, &range_path.key("start"), "start");
                let end = self.port_number(range.end, &range_path.key("end"), "end");
                let (start, end) = (start?, end?);
                if start >= end {
                    // CEL `self.start < self.end`.
                    self.error(
                        range_path,
                        format!(
                            "range start ({start}) must be less than end ({end}); for one port use `number`"
                        ),
                    );
                    return None;
                }
                Some(AdminPort::Range {
                    protocol,
                    start,
                    end,
                })
            }
            (number, range) => {
                let set: Vec<&str> = [("number", number.is_some()), ("range", range.is_some())]
                    .into_iter()
                    .filter_map(|(field, present)| present.then_some(field))
                    .collect();
                self.error(
                    path,
                    format!(
                        "exactly one of `number`, `range` must be set in destinationPort; {}",
                        describe_set(&set)
                    ),
                );
                None
            }
        }
    }

    fn port_number(&mut self, value: Option<i64>, path: &FieldPath, field: &str) -> Option<u16> {
        match value {
            None => {
                self.error(path.clone(), format!("`{field}` is required"));
                None
            }
            Some(value) => match u16::try_from(value).ok().filter(|port| *port >= 1) {
                Some(port) => Some(port),
                None => {
                    self.error(
                        path.clone(),
                        format!("{field} {value} is not a port number: it must be from 1 to 65535"),
                    );
                    None
                }
            },
        }
    }

    /// A named port. The schema takes any string, but container port names
    /// are IANA service names, so anything else matches no port.
    fn named_port(&mut self, name: &str, path: &FieldPath) -> AdminPort {
        if let Err(message) = validate::port_name(name) {
            self.warning(
                path.clone(),
                format!("{message}: no container port can have this name, so it matches nothing"),
            );
        }
        AdminPort::Named(name.to_string())
    }

    /// The experimental-channel CEL rule "networks/nodes/domainNames peer
    /// cannot be set with namedPorts": named ports belong to pods, so they
    /// never match traffic to these peers.
    ///
    /// Whether the API server enforces it depends on the channel, and the
    /// fields decide the channel: v1alpha1 `namedPort` exists only in the
    /// experimental CRD, and so do `nodes` and `domainNames` in both
    /// versions, and each experimental CRD carries the rule: those
    /// combinations are always rejected. Only v1alpha2 `networks` with
    /// `destinationNamedPort` is accepted, by the standard CRD, which has
    /// both fields and not the rule: that is a warning.
    fn check_named_ports_against_address_peers(
        &mut self,
        peers: &[AdminPeer],
        ports: Option<&[AdminPort]>,
        rule_path: &FieldPath,
    ) {
        let named = ports
            .unwrap_or_default()
            .iter()
            .any(|port| matches!(port, AdminPort::Named(_)));
        if !named {
            return;
        }
        let experimental_only = peers
            .iter()
            .any(|p| matches!(p, AdminPeer::Nodes(_) | AdminPeer::DomainNames(_)));
        let networks = peers.iter().any(|p| matches!(p, AdminPeer::Networks(_)));
        let rule = "networks/nodes/domainNames peer cannot be set with namedPorts";
        if experimental_only || (self.kind.is_v1alpha1() && networks) {
            self.error(
                rule_path.clone(),
                format!(
                    "a rule with a named port cannot have `networks`, `nodes` or `domainNames` peers: the CRD that has these fields rejects it ({rule:?}); named ports belong to pods"
                ),
            );
        } else if networks {
            self.warning(
                rule_path.clone(),
                format!(
                    "`destinationNamedPort` with a `networks` peer: the API says named ports cannot be used with networks (named ports belong to pods); netpol resolves it on the destination pod when the address is a pod's and matches no other address; the standard-channel CRD accepts this rule, the experimental one rejects it ({rule:?})"
                ),
            );
        }
    }
}

/// "it sets none" / "it sets `a` and `b`".
fn describe_set(set: &[&str]) -> String {
    if set.is_empty() {
        return "it sets none".to_string();
    }
    let quoted: Vec<String> = set.iter().map(|f| format!("`{f}`")).collect();
    format!("it sets {}", quoted.join(" and "))
}

fn last_key(path: &FieldPath) -> String {
    match path.steps().last() {
        Some(crate::path::PathStep::Key(key)) => key.clone(),
        _ => path.to_string(),
    }
}

/// The `DomainName` pattern of both versions:
/// `^(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$`.
///
/// The upstream first-character class is `[a-zA-z0-9]`: `A-z` also spans
/// `[`, `\`, `]`, `^`, `_` and `` ` ``, so those are accepted as a label's
/// first character, exactly as the API server accepts them.
pub fn is_domain_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    let body = body.strip_suffix('.').unwrap_or(body);
    let first = |b: u8| b.is_ascii_alphanumeric() || (b'A'..=b'z').contains(&b);
    let middle = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let label = |label: &str| {
        let bytes = label.as_bytes();
        match bytes {
            [] => false,
            [only] => first(*only),
            [head, inner @ .., last] => {
                first(*head) && inner.iter().all(|b| middle(*b)) && last.is_ascii_alphanumeric()
            }
        }
    };
    let labels: Vec<&str> = body.split('.').collect();
    labels.len() >= 2 && labels.into_iter().all(label)
}
