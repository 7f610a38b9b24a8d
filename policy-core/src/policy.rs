//! NetworkPolicies, normalised and validated.
//!
//! [`Policy::from_network_policy`] turns a `networking.k8s.io/v1`
//! NetworkPolicy into a [`Policy`]: defaults applied, `policyTypes` inferred,
//! empty and absent lists told apart, and everything the API server would
//! reject reported (docs/SEMANTICS.md §13).

use std::fmt;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::diagnostic::{Severity, SourceLocation};
use crate::ipset::{Cidr, IpSet};
use crate::path::FieldPath;
use crate::ports::{PortSet, Protocol};
use crate::selector::Selector;
use crate::validate;

/// Traffic direction, seen from the pod a policy selects.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Direction {
    /// Traffic into the selected pod.
    Ingress,
    /// Traffic out of the selected pod.
    Egress,
}

impl Direction {
    /// `Ingress` or `Egress`, as in `policyTypes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }

    /// `ingress` or `egress`, as in field names.
    pub fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// `from` for ingress rules, `to` for egress rules.
    pub fn peers_field(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised NetworkPolicy.
// Serialize/Deserialize round-trip values this crate made (the agent keeps
// parked policies encoded); they do not validate, so they are no input
// format: read manifests with the loader.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// The policy's namespace; it selects pods only there.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// `spec.podSelector`; absent means `{}`, every pod of the namespace.
    pub pod_selector: Selector,
    /// Ingress rules when `Ingress` is among the effective policy types,
    /// `None` when the policy does not affect ingress. `Some(vec![])` isolates
    /// the selected pods and allows nothing.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules, like `ingress`.
    pub egress: Option<Vec<Rule>>,
    /// True if `policyTypes` was written; false if it was inferred.
    pub policy_types_explicit: bool,
    /// Rules written for a direction that `policyTypes` leaves out, by
    /// direction (ingress, egress): they have no effect.
    pub ignored_rules: [usize; 2],
    /// Where `spec.podSelector`, `spec.policyTypes`, `spec.ingress` and
    /// `spec.egress` are written, when they are. See [`Policy::locate`].
    pub field_sources: Vec<(FieldPath, SourceLocation)>,
    /// Where the object is: its `metadata.name`, or its start.
    pub source: Option<SourceLocation>,
}

impl Policy {
    /// `namespace/name`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The rules for one direction, `None` if the policy does not affect it.
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Where the field at `path` (or its nearest known ancestor) is written:
    /// rules, their peers and ports, the spec's top-level fields, or the policy.
    pub fn locate(&self, path: &FieldPath) -> Option<SourceLocation> {
        use crate::path::PathStep;
        let steps = path.steps();
        if let [
            PathStep::Key(spec),
            PathStep::Key(list),
            PathStep::Index(index),
            rest @ ..,
        ] = steps
            && spec == "spec"
        {
            let direction = match list.as_str() {
                "ingress" => Some(Direction::Ingress),
                "egress" => Some(Direction::Egress),
                _ => None,
            };
            if let Some(rule) = direction
                .and_then(|d| self.rules(d))
                .and_then(|rules| rules.iter().find(|r| r.index == *index))
            {
                let entry = match rest {
                    [PathStep::Key(key), PathStep::Index(i), ..]
                        if key == "from" || key == "to" =>
                    {
                        rule.peer_sources.get(*i).cloned().flatten()
                    }
                    [PathStep::Key(key), PathStep::Index(i), ..] if key == "ports" => {
                        rule.port_sources.get(*i).cloned().flatten()
                    }
                    _ => None,
                };
                return entry.or_else(|| rule.source.clone());
            }
        }
        self.field_sources
            .iter()
            .filter(|(field, _)| steps.starts_with(field.steps()))
            .max_by_key(|(field, _)| field.len())
            .map(|(_, source)| source.clone())
            .or_else(|| self.source.clone())
    }

    /// True if the policy isolates the pods it selects in `direction`.
    pub fn affects(&self, direction: Direction) -> bool {
        self.rules(direction).is_some()
    }
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// Direction of the rule.
    pub direction: Direction,
    /// Position in `spec.ingress` / `spec.egress`.
    pub index: usize,
    /// `from` / `to`; `None` when absent or empty, which matches every peer
    /// (networking/v1 `NetworkPolicyIngressRule.from`).
    pub peers: Option<Vec<Peer>>,
    /// `ports`; `None` when absent or empty, which matches every port.
    pub ports: Option<Vec<PortSpec>>,
    /// Where the rule is written.
    pub source: Option<SourceLocation>,
    /// Where each entry of `peers` is written (same order).
    pub peer_sources: Vec<Option<SourceLocation>>,
    /// Where each entry of `ports` is written (same order).
    pub port_sources: Vec<Option<SourceLocation>>,
}

impl Rule {
    /// `ingress[0]` / `egress[2]`.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.direction.field(), self.index)
    }
}

/// One `from` / `to` entry.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Peer {
    /// Pods selected by labels, in some namespaces.
    Pods {
        /// Which namespaces: the policy's own when `namespaceSelector` is
        /// absent, else those it selects (networking/v1 `NetworkPolicyPeer`).
        namespaces: NamespaceScope,
        /// Which pods there; `{}` when `podSelector` is absent.
        pods: Selector,
    },
    /// Addresses: `cidr` minus `except`.
    IpBlock {
        /// The block.
        cidr: Cidr,
        /// The exceptions.
        except: Vec<Cidr>,
        /// `cidr` minus `except`.
        addresses: IpSet,
    },
}

/// The namespaces a pod peer may come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NamespaceScope {
    /// Only the named namespace (the policy's own).
    Own(String),
    /// The namespaces whose labels match.
    Selected(Selector),
}

/// One entry of `ports`, with the protocol defaulted.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PortSpec {
    /// `port` absent: every port of the protocol.
    AllPorts(Protocol),
    /// A numeric port, or `port`..`endPort` inclusive.
    Range {
        /// Protocol.
        protocol: Protocol,
        /// First port.
        first: u16,
        /// Last port (equal to `first` without `endPort`).
        last: u16,
    },
    /// A named port, resolved against the destination pod's container ports.
    Named {
        /// Protocol; the container port must use the same one.
        protocol: Protocol,
        /// The name.
        name: String,
    },
}

impl PortSpec {
    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        match self {
            PortSpec::AllPorts(protocol) => *protocol,
            PortSpec::Range { protocol, .. } | PortSpec::Named { protocol, .. } => *protocol,
        }
    }

    /// The ports this entry allows without knowing the destination: every
    /// entry but a named port.
    pub fn numeric(&self) -> Option<PortSet> {
        match self {
            PortSpec::AllPorts(protocol) => Some(PortSet::protocol(*protocol)),
            PortSpec::Range {
                protocol,
                first,
                last,
            } => Some(PortSet::range(*protocol, *first, *last)),
            PortSpec::Named { .. } => None,
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::AllPorts(protocol) => write!(f, "{protocol} (any port)"),
            PortSpec::Range {
                protocol,
                first,
                last,
            } if first == last => write!(f, "{protocol} {first}"),
            PortSpec::Range {
                protocol,
                first,
                last,
            } => write!(f, "{protocol} {first}-{last}"),
            PortSpec::Named { protocol, name } => write!(f, "{protocol} {name}"),
        }
    }
}

/// Something wrong with a policy, at a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Error when the API server rejects it; warning when it accepts it but
    /// the meaning is doubtful.
    pub severity: Severity,
    /// The field at fault.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            path,
            message: message.into(),
        }
    }

    pub(crate) fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            path,
            message: message.into(),
        }
    }
}

/// Checks an object name the way the API server does for NetworkPolicies.
pub fn validate_policy_name(name: &str) -> Result<(), String> {
    validate::dns1123_subdomain(name)
}

impl Policy {
    /// Normalises and validates a NetworkPolicy in `namespace`.
    ///
    /// Returns the policy (unless some problem is an error, since the API
    /// server would not store it) and every problem found. `locate` maps a
    /// field path to its place in the source, for rule locations.
    pub fn from_network_policy(
        object: &NetworkPolicy,
        namespace: &str,
        locate: &dyn Fn(&FieldPath) -> Option<SourceLocation>,
    ) -> (Option<Policy>, Vec<Problem>) {
        let mut problems = Vec::new();
        let name = object.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            problems.push(Problem::error(
                FieldPath::parse("metadata.name"),
                "a NetworkPolicy needs a name",
            ));
        } else if let Err(message) = validate_policy_name(&name) {
            problems.push(Problem::error(FieldPath::parse("metadata.name"), message));
        }

        let spec = object.spec.clone().unwrap_or_default();
        let spec_path = FieldPath::root().key("spec");

        let mut selector_problems = Vec::new();
        let pod_selector = match &spec.pod_selector {
            Some(selector) => Selector::from_label_selector(
                selector,
                &spec_path.key("podSelector"),
                &mut selector_problems,
            ),
            None => Some(Selector::everything()),
        };

        // policyTypes: explicit wins; otherwise Ingress always, Egress only
        // when there is at least one egress rule (networking/v1 defaults.go
        // `SetDefaults_NetworkPolicy` tests len(spec.Egress) != 0).
        let types_path = spec_path.key("policyTypes");
        let explicit_types = spec.policy_types.as_ref().filter(|types| !types.is_empty());
        let (has_ingress, has_egress) = match explicit_types {
            Some(types) => {
                if types.len() > 2 {
                    problems.push(Problem::error(
                        types_path.clone(),
                        format!("must have at most 2 items, has {}", types.len()),
                    ));
                }
                for (index, kind) in types.iter().enumerate() {
                    if kind != "Ingress" && kind != "Egress" {
                        problems.push(Problem::error(
                            types_path.index(index),
                            format!("{kind:?} is not supported: use \"Ingress\" or \"Egress\""),
                        ));
                    }
                }
                (
                    types.iter().any(|kind| kind == "Ingress"),
                    types.iter().any(|kind| kind == "Egress"),
                )
            }
            None => (
                true,
                spec.egress.as_ref().is_some_and(|rules| !rules.is_empty()),
            ),
        };

        // Rules are validated even in a direction the policy ignores: the
        // API server validates every field it stores.
        let mut convert_rules = |direction: Direction, rules: Vec<RawRule<'_>>| -> Vec<Rule> {
            rules
                .into_iter()
                .enumerate()
                .map(|(index, (peers, ports))| {
                    convert_rule(
                        direction,
                        index,
                        peers,
                        ports,
                        namespace,
                        &spec_path,
                        locate,
                        &mut problems,
                        &mut selector_problems,
                    )
                })
                .collect()
        };
        let ingress_rules = convert_rules(
            Direction::Ingress,
            spec.ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_deref(), r.ports.as_deref()))
                .collect(),
        );
        let egress_rules = convert_rules(
            Direction::Egress,
            spec.egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_deref(), r.ports.as_deref()))
                .collect(),
        );

        problems.extend(
            selector_problems
                .into_iter()
                .map(|(path, message)| Problem::error(path, message)),
        );
        problems.sort_by(|a, b| a.path.cmp(&b.path));

        let valid = !problems
            .iter()
            .any(|problem| problem.severity == Severity::Error);
        let policy = match (valid, pod_selector) {
            (true, Some(pod_selector)) => Some(Policy {
                namespace: namespace.to_string(),
                name,
                pod_selector,
                ignored_rules: [
                    if has_ingress { 0 } else { ingress_rules.len() },
                    if has_egress { 0 } else { egress_rules.len() },
                ],
                field_sources: ["podSelector", "policyTypes", "ingress", "egress"]
                    .into_iter()
                    .filter_map(|field| {
                        let path = spec_path.key(field);
                        let source = locate(&path)?;
                        // `locate` falls back to an ancestor; keep only fields that are written.
                        let parent = locate(&spec_path)?;
                        (source != parent).then_some((path, source))
                    })
                    .collect(),
                ingress: has_ingress.then_some(ingress_rules),
                egress: has_egress.then_some(egress_rules),
                policy_types_explicit: explicit_types.is_some(),
                source: locate(&FieldPath::parse("metadata.name")),
            }),
            _ => None,
        };
        (policy, problems)
    }
}

/// A rule's `from`/`to` and `ports`, as written.
type RawRule<'a> = (
    Option<&'a [NetworkPolicyPeer]>,
    Option<&'a [NetworkPolicyPort]>,
);

#[allow(clippy::too_many_arguments)]
fn convert_rule(
    direction: Direction,
    index: usize,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    namespace: &str,
    spec_path: &FieldPath,
    locate: &dyn Fn(&FieldPath) -> Option<SourceLocation>,
    problems: &mut Vec<Problem>,
    selector_problems: &mut Vec<(FieldPath, String)>,
) -> Rule {
    let rule_path = spec_path.key(direction.field()).index(index);
    let peers_path = rule_path.key(direction.peers_field());
    let converted_peers: Vec<Peer> = peers
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(peer_index, peer)| {
            convert_peer(
                peer,
                namespace,
                &peers_path.index(peer_index),
                problems,
                selector_problems,
            )
        })
        .collect();
    let ports_path = rule_path.key("ports");
    let converted_ports: Vec<PortSpec> = ports
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(port_index, port)| {
            convert_port(port, &ports_path.index(port_index), problems)
        })
        .collect();
    Rule {
        direction,
        index,
        // Empty and absent lists both mean "every peer" / "every port".
        peers: peers
            .filter(|list| !list.is_empty())
            .map(|_| converted_peers),
        ports: ports
            .filter(|list| !list.is_empty())
            .map(|_| converted_ports),
        source: locate(&rule_path),
        peer_sources: (0..peers.map_or(0, <[_]>::len))
            .map(|i| locate(&peers_path.index(i)))
            .collect(),
        port_sources: (0..ports.map_or(0, <[_]>::len))
            .map(|i| locate(&ports_path.index(i)))
            .collect(),
    }
}

fn convert_peer(
    peer: &NetworkPolicyPeer,
    namespace: &str,
    path: &FieldPath,
    problems: &mut Vec<Problem>,
    selector_problems: &mut Vec<(FieldPath, String)>,
) -> Option<Peer> {
    let has_selector = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    if let Some(block) = &peer.ip_block {
        if has_selector {
            problems.push(Problem::error(
                path.clone(),
                "may not specify both ipBlock and another peer (podSelector or namespaceSelector)",
            ));
            return None;
        }
        return convert_ip_block(
            &block.cidr,
            block.except.as_deref().unwrap_or_default(),
            path,
            problems,
        );
    }
    if !has_selector {
        problems.push(Problem::error(
            path.clone(),
            "must specify a peer: set podSelector, namespaceSelector or ipBlock",
        ));
        return None;
    }
    let pods = match &peer.pod_selector {
        Some(selector) => {
            Selector::from_label_selector(selector, &path.key("podSelector"), selector_problems)
        }
        None => Some(Selector::everything()),
    };
    let namespaces = match &peer.namespace_selector {
        Some(selector) => Selector::from_label_selector(
            selector,
            &path.key("namespaceSelector"),
            selector_problems,
        )
        .map(NamespaceScope::Selected),
        None => Some(NamespaceScope::Own(namespace.to_string())),
    };
    Some(Peer::Pods {
        namespaces: namespaces?,
        pods: pods?,
    })
}

fn convert_ip_block(
    cidr_text: &str,
    except: &[String],
    path: &FieldPath,
    problems: &mut Vec<Problem>,
) -> Option<Peer> {
    let block_path = path.key("ipBlock");
    let cidr_path = block_path.key("cidr");
    if cidr_text.is_empty() {
        problems.push(Problem::error(cidr_path, "ipBlock.cidr is required"));
        return None;
    }
    let cidr = match Cidr::parse(cidr_text) {
        Ok(parsed) => {
            for warning in parsed.warnings {
                problems.push(Problem::warning(cidr_path.clone(), warning));
            }
            parsed.cidr
        }
        Err(message) => {
            problems.push(Problem::error(cidr_path, message));
            return None;
        }
    };
    let mut except_cidrs = Vec::new();
    for (index, text) in except.iter().enumerate() {
        let except_path = block_path.key("except").index(index);
        match Cidr::parse(text) {
            Ok(parsed) => {
                for warning in parsed.warnings {
                    problems.push(Problem::warning(except_path.clone(), warning));
                }
                // V `ValidateIPBlock`: the except must be a strict subset of
                // the cidr: contained, with a longer prefix.
                if !(cidr.contains(parsed.cidr.address()) && cidr.prefix() < parsed.cidr.prefix()) {
                    problems.push(Problem::error(
                        except_path,
                        format!("{text:?} must be a strict subset of the cidr {cidr_text:?}"),
                    ));
                    continue;
                }
                except_cidrs.push(parsed.cidr);
            }
            Err(message) => problems.push(Problem::error(except_path, message)),
        }
    }
    let addresses = IpSet::from_block(cidr, &except_cidrs);
    Some(Peer::IpBlock {
        cidr,
        except: except_cidrs,
        addresses,
    })
}

fn convert_port(
    port: &NetworkPolicyPort,
    path: &FieldPath,
    problems: &mut Vec<Problem>,
) -> Option<PortSpec> {
    let before = problems.len();
    // Protocol defaults to TCP (networking/v1 defaults.go `SetDefaults_NetworkPolicyPort`).
    let protocol = match port.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(text) => match Protocol::from_kubernetes(text) {
            Some(protocol) => protocol,
            None => {
                problems.push(Problem::error(
                    path.key("protocol"),
                    format!("{text:?} is not supported: use \"TCP\", \"UDP\" or \"SCTP\""),
                ));
                Protocol::Tcp
            }
        },
    };
    let spec = match &port.port {
        None => {
            if port.end_port.is_some() {
                problems.push(Problem::error(
                    path.key("endPort"),
                    "may not be specified when `port` is not specified",
                ));
            }
            PortSpec::AllPorts(protocol)
        }
        Some(IntOrString::Int(number)) => {
            let first = valid_port_number(*number, &path.key("port"), problems);
            let last = match port.end_port {
                None => first,
                Some(end) => {
                    let last = valid_port_number(end, &path.key("endPort"), problems);
                    if end < *number {
                        problems.push(Problem::error(
                            path.key("endPort"),
                            format!("endPort {end} must be greater than or equal to port {number}"),
                        ));
                    }
                    last
                }
            };
            PortSpec::Range {
                protocol,
                first,
                last,
            }
        }
        Some(IntOrString::String(name)) => {
            if let Err(message) = validate::port_name(name) {
                problems.push(Problem::error(path.key("port"), message));
            }
            if port.end_port.is_some() {
                problems.push(Problem::error(
                    path.key("endPort"),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            PortSpec::Named {
                protocol,
                name: name.clone(),
            }
        }
    };
    (problems.len() == before).then_some(spec)
}

fn valid_port_number(number: i32, path: &FieldPath, problems: &mut Vec<Problem>) -> u16 {
    match u16::try_from(number) {
        Ok(port) if port >= 1 => port,
        _ => {
            problems.push(Problem::error(
                path.clone(),
                format!(
                    "{number} is not a valid port number: it must be between 1 and 65535, inclusive"
                ),
            ));
            1
        }
    }
}
