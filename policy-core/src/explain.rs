//! Plain-English explanations of policies and of what a pod may do.
//!
//! These are the model's answers put into sentences, for reviewers:
//! "In namespace shop, pods with app=cart: ingress is isolated. It is
//! allowed from pods with app=frontend in shop on TCP 8080. Egress is not
//! affected."

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cluster::{EndpointId, NAMESPACE_NAME_LABEL};
use crate::ipset::IpSet;
use crate::model::{Model, PolicyId};
use crate::policy::{Direction, NamespaceScope, Peer, PortSpec, Rule};
use crate::ports::PortSet;
use crate::selector::{Operator, Selector};

/// "pods with app=web", "every pod", "pods matching tier in (a,b)".
fn pods_phrase(selector: &Selector) -> String {
    if selector.is_everything() {
        return "every pod".to_string();
    }
    let simple = selector
        .requirements()
        .iter()
        .all(|r| matches!(&r.operator, Operator::In(values) if values.len() == 1));
    if simple {
        format!("pods with {selector}")
    } else {
        format!("pods matching {selector}")
    }
}

/// "namespace shop", "namespaces shop or web", "namespaces with team=ops", "any namespace".
fn namespaces_phrase(selector: &Selector) -> String {
    if selector.is_everything() {
        return "any namespace".to_string();
    }
    if let [requirement] = selector.requirements()
        && requirement.key == NAMESPACE_NAME_LABEL
        && let Operator::In(names) = &requirement.operator
    {
        return match names.as_slice() {
            [name] => format!("namespace {name}"),
            _ => format!("namespaces {}", names.join(" or ")),
        };
    }
    format!("namespaces with {selector}")
}

fn peer_phrase(peer: &Peer) -> String {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let who = if pods.is_everything() {
                "any pod".to_string()
            } else {
                pods_phrase(pods)
            };
            match namespaces {
                NamespaceScope::Own(namespace) => format!("{who} in {namespace}"),
                NamespaceScope::Selected(selector) => {
                    format!("{who} in {}", namespaces_phrase(selector))
                }
            }
        }
        Peer::IpBlock { cidr, except, .. } if except.is_empty() => format!("addresses in {cidr}"),
        Peer::IpBlock { cidr, except, .. } => {
            let except: Vec<String> = except.iter().map(|c| c.to_string()).collect();
            format!("addresses in {cidr} except {}", except.join(", "))
        }
    }
}

fn ports_phrase(ports: Option<&[PortSpec]>) -> String {
    match ports {
        None => "on any port".to_string(),
        Some(ports) => {
            let ports: Vec<String> = ports
                .iter()
                .map(|port| match port {
                    PortSpec::AllPorts(protocol) => format!("any {protocol} port"),
                    PortSpec::Range {
                        protocol,
                        first,
                        last,
                    } if first == last => format!("{protocol} {first}"),
                    PortSpec::Range {
                        protocol,
                        first,
                        last,
                    } => format!("{protocol} {first}-{last}"),
                    PortSpec::Named { protocol, name } => {
                        format!("the {protocol} port named {name}")
                    }
                })
                .collect();
            format!("on {}", join_or(&ports, "and"))
        }
    }
}

/// "a", "a and b", "a, b and c".
fn join_or(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

fn rule_phrase(rule: &Rule) -> String {
    let toward = match rule.direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let peers = match &rule.peers {
        None => format!("{toward} anywhere"),
        Some(peers) => {
            let peers: Vec<String> = peers.iter().map(peer_phrase).collect();
            format!("{toward} {}", join_or(&peers, "or"))
        }
    };
    format!("{peers} {}", ports_phrase(rule.ports.as_deref()))
}

/// A paragraph on what one policy does.
pub fn describe_policy(model: &Model, policy_id: PolicyId) -> String {
    let cluster = model.cluster();
    let policy = &cluster.policies[policy_id];
    let mut out = String::new();
    let _ = write!(
        out,
        "In namespace {}, {}",
        policy.namespace,
        pods_phrase(&policy.pod_selector)
    );
    let selected = model.selected_by(policy_id);
    let names: Vec<String> = selected
        .iter()
        .map(|&e| cluster.endpoint_name(e).to_string())
        .collect();
    match names.len() {
        0 => out.push_str(" (no pod in the input)"),
        1 => {
            let _ = write!(out, " (1 pod: {})", names[0]);
        }
        n if n <= 5 => {
            let _ = write!(out, " ({n} pods: {})", names.join(", "));
        }
        n => {
            let _ = write!(out, " ({n} pods: {}, ...)", names[..4].join(", "));
        }
    }
    out.push_str(": ");
    let mut sentences = Vec::new();
    for direction in [Direction::Ingress, Direction::Egress] {
        let name = direction.field();
        let sentence = match policy.rules(direction) {
            None => format!("{name} is not affected."),
            Some([]) => {
                format!("{name} is isolated and nothing is allowed: this policy denies all {name}.")
            }
            Some(rules) => {
                let allowed: Vec<String> = rules.iter().map(rule_phrase).collect();
                format!(
                    "{name} is isolated. It is allowed {}.",
                    join_or(&allowed, "and")
                )
            }
        };
        sentences.push(sentence);
    }
    // The first sentence continues the subject: lower-case; the rest start sentences.
    let mut first = true;
    for sentence in sentences {
        if !first {
            out.push(' ');
            out.push_str(&capitalize(&sentence));
        } else {
            out.push_str(&sentence);
        }
        first = false;
    }
    out
}

/// A port set as words: "every port", or "TCP 80; UDP 53".
pub fn ports_words(ports: &PortSet) -> String {
    if ports.is_all() {
        "every port".to_string()
    } else {
        ports.to_string()
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// Peers grouped by the ports they may use: "on TCP 8080 from shop/web, shop/api".
fn grouped(peers: Vec<(String, PortSet)>) -> Vec<(PortSet, Vec<String>)> {
    let mut groups: BTreeMap<PortSet, Vec<String>> = BTreeMap::new();
    for (name, ports) in peers {
        if !ports.is_empty() {
            groups.entry(ports).or_default().push(name);
        }
    }
    groups.into_iter().collect()
}

/// The address regions with their ports, merging regions that allow the same ports.
fn address_groups(
    model: &Model,
    endpoint: EndpointId,
    direction: Direction,
) -> Vec<(PortSet, IpSet)> {
    let class = model.class_of(endpoint);
    let mut groups: BTreeMap<PortSet, IpSet> = BTreeMap::new();
    for region in model.address_partition() {
        let ports = model.address_connections(class, direction, &region);
        if !ports.is_empty() {
            groups.entry(ports).or_default().union_with(&region);
        }
    }
    groups.into_iter().collect()
}

/// A description of one endpoint: which policies select it, and what it
/// may receive and send (both sides of each connection considered).
pub fn describe_endpoint(model: &Model, endpoint: EndpointId) -> String {
    let cluster = model.cluster();
    let this = &cluster.endpoints[endpoint];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}:",
        this.kind.as_str(),
        cluster.endpoint_name(endpoint)
    );
    let mut selecting: BTreeMap<PolicyId, Vec<&str>> = BTreeMap::new();
    for direction in [Direction::Ingress, Direction::Egress] {
        for &policy in model.policies_selecting(endpoint, direction) {
            selecting.entry(policy).or_default().push(direction.field());
        }
    }
    if selecting.is_empty() {
        let _ = writeln!(out, "  No NetworkPolicy selects it.");
    } else {
        let list: Vec<String> = selecting
            .iter()
            .map(|(&policy, directions)| {
                format!(
                    "{} ({})",
                    cluster.policies[policy].reference(),
                    directions.join(", ")
                )
            })
            .collect();
        let _ = writeln!(out, "  Selected by {}.", list.join(", "));
    }
    let others: Vec<EndpointId> = (0..cluster.endpoints.len())
        .filter(|&e| e != endpoint)
        .collect();
    let mut matrix = model.connection_matrix();
    for direction in [Direction::Ingress, Direction::Egress] {
        let isolated = !model.policies_selecting(endpoint, direction).is_empty();
        let (verb, toward) = match direction {
            Direction::Ingress => ("receive", "from"),
            Direction::Egress => ("send", "to"),
        };
        let _ = writeln!(
            out,
            "  {}: {}. It may {verb}:",
            capitalize(direction.field()),
            if isolated { "isolated" } else { "not isolated" }
        );
        let peers: Vec<(String, PortSet)> = others
            .iter()
            .map(|&other| {
                let ports = match direction {
                    Direction::Ingress => matrix.get(other, endpoint),
                    Direction::Egress => matrix.get(endpoint, other),
                };
                (cluster.endpoint_name(other).to_string(), ports)
            })
            .collect();
        let mut lines = 0;
        for (ports, names) in grouped(peers) {
            let _ = writeln!(
                out,
                "    {toward} {} on {}",
                names.join(", "),
                ports_words(&ports)
            );
            lines += 1;
        }
        for (ports, addresses) in address_groups(model, endpoint, direction) {
            let where_ = if addresses == IpSet::everything() {
                "any address outside the cluster".to_string()
            } else {
                format!("addresses {addresses}")
            };
            let _ = writeln!(out, "    {toward} {where_} on {}", ports_words(&ports));
            lines += 1;
        }
        if lines == 0 {
            let _ = writeln!(out, "    nothing");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Loader};

    fn model(text: &str) -> Model {
        let mut loader = Loader::new();
        loader.load_str("t.yaml", text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        Model::new(loaded.cluster, Config::default())
    }

    #[test]
    fn a_policy_reads_as_a_sentence() {
        let model = model(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: cart, namespace: shop, labels: {app: cart}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: cart, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: cart}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: frontend}}}]\n    ports: [{port: 8080}]\n  - from: [{namespaceSelector: {matchLabels: {team: ops}}}]\n    ports: [{port: 9090}]\n",
        );
        assert_eq!(
            describe_policy(&model, 0),
            "In namespace shop, pods with app=cart (1 pod: shop/cart): ingress is isolated. It is allowed from pods with app=frontend in shop on TCP 8080 and from any pod in namespaces with team=ops on TCP 9090. Egress is not affected."
        );
    }

    #[test]
    fn deny_all_and_blocks_read_plainly() {
        let model = model(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  policyTypes: [Ingress, Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}\n    ports: [{port: 53, protocol: UDP}, {port: dns-tcp}]\n",
        );
        assert_eq!(
            describe_policy(&model, 0),
            "In namespace shop, every pod (no pod in the input): ingress is isolated and nothing is allowed: this policy denies all ingress. Egress is isolated. It is allowed to addresses in 0.0.0.0/0 except 10.0.0.0/8 or any pod in namespace kube-system on UDP 53 and the TCP port named dns-tcp."
        );
    }
}
