//! Plain-English explanations of policies and of what a pod may do.
//!
//! These are the model's answers put into sentences, for reviewers:
//! "In namespace shop, pods with app=cart: ingress is isolated. It is
//! allowed from pods with app=frontend in shop on TCP 8080. Egress is not
//! affected."
//!
//! For a pod, also the ways traffic is sent to it: the Service ports whose
//! backends include it ([`services_leading_to`]) and the entry points from
//! outside that lead to it ([`entries_leading_to`], from
//! [`crate::exposure::exposure`]), with who gets through (docs/SEMANTICS.md §17).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cluster::{EndpointId, NAMESPACE_NAME_LABEL, ServiceType};
use crate::exposure::{Entry, EntryKind, EntryTarget};
use crate::ipset::IpSet;
use crate::model::{BackendTarget, Exclusion, Model, PolicyId, ServiceId};
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

/// How one port of a Service treats a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLead {
    /// The Service.
    pub service: ServiceId,
    /// The index of the port in the Service's ports.
    pub port: usize,
    /// The port on the pod that connections to this Service port arrive
    /// on, or why the pod is no backend of this port though the Service
    /// selects it.
    pub target: Result<u16, Exclusion>,
}

/// The Service ports that lead to `endpoint`: every port of every Service
/// whose backends include it (by selector, or by an EndpointSlice address
/// that is its IP), with the port on the pod; and the ports of Services that
/// select it but leave it out, with the reason (docs/SEMANTICS.md §17.2). In
/// Service order, then port order.
pub fn services_leading_to(model: &Model, endpoint: EndpointId) -> Vec<ServiceLead> {
    let cluster = model.cluster();
    let mut leads = Vec::new();
    for (service_id, service) in cluster.services.iter().enumerate() {
        if service.service_type == ServiceType::ExternalName {
            continue;
        }
        // A Service without selector may name any pod's address in its slices.
        if service.selector.is_some() && !model.service_selected(service_id).contains(&endpoint) {
            continue;
        }
        for port in 0..service.ports.len() {
            let backends = model.service_backends(service_id, port);
            let before = leads.len();
            for backend in &backends.backends {
                if backend.target == BackendTarget::Endpoint(endpoint) {
                    leads.push(ServiceLead {
                        service: service_id,
                        port,
                        target: Ok(backend.port),
                    });
                }
            }
            if leads.len() == before
                && let Some((_, why)) = backends.excluded.iter().find(|(id, _)| *id == endpoint)
            {
                leads.push(ServiceLead {
                    service: service_id,
                    port,
                    target: Err(why.clone()),
                });
            }
        }
    }
    leads
}

/// The entry points of `entries` that lead to `endpoint`, each with its
/// target for that endpoint (an entry may lead to it on several ports).
pub fn entries_leading_to(entries: &[Entry], endpoint: EndpointId) -> Vec<(&Entry, &EntryTarget)> {
    entries
        .iter()
        .flat_map(|entry| {
            entry
                .targets
                .iter()
                .filter(move |t| t.pod == endpoint)
                .map(move |t| (entry, t))
        })
        .collect()
}

/// An entry point in words: "NodePort 192.168.77.1 (node node-1) TCP 30083
/// (service shop/web-lb)", "LoadBalancer 198.51.100.1 TCP 80 (service
/// shop/web-lb)", "Ingress shop/shop shop.example.com/ (service shop/web
/// port 80)", "hostPort each node TCP 8443".
pub fn entry_label(model: &Model, entry: &Entry) -> String {
    let service = entry
        .service
        .map(|s| model.cluster().services[s].reference());
    let port = entry
        .port
        .map_or_else(|| "<allocated>".to_string(), |p| p.to_string());
    if let Some((name, host, path)) = &entry.ingress {
        let route = match (host, path) {
            (None, None) => " (default backend)".to_string(),
            (host, path) => format!(
                " {}{}",
                host.as_deref().unwrap_or("*"),
                path.as_deref().unwrap_or("")
            ),
        };
        let backend = match (service, entry.port) {
            (Some(service), Some(port)) => format!(" (service {service} port {port})"),
            (Some(service), None) => format!(" (service {service})"),
            (None, _) => String::new(),
        };
        return format!("Ingress {name}{route}{backend}");
    }
    let (address, node) = match (&entry.address, &entry.hostname, &entry.node) {
        (Some(address), _, Some(node)) => (address.to_string(), format!(" (node {node})")),
        (Some(address), _, None) => (address.to_string(), String::new()),
        (None, Some(hostname), _) => (hostname.clone(), String::new()),
        (None, None, Some(node)) => (format!("node {node}"), String::new()),
        (None, None, None) => ("each node".to_string(), String::new()),
    };
    let service = service
        .map(|s| format!(" (service {s})"))
        .unwrap_or_default();
    format!(
        "{} {address}{node} {} {port}{service}",
        entry.via.as_str(),
        entry.protocol
    )
}

/// Outside addresses in words: "nobody" when empty, else the CIDRs (the
/// first six and a count of the rest).
pub fn sources_words(sources: &IpSet) -> String {
    let cidrs: Vec<String> = sources.to_cidrs().iter().map(ToString::to_string).collect();
    match cidrs.len() {
        0 => "nobody".to_string(),
        n if n > 6 => format!("{} and {} more ranges", cidrs[..6].join(", "), n - 6),
        _ => cidrs.join(", "),
    }
}

/// Why a selected pod is no backend of a Service port, in words.
fn exclusion_words(why: &Exclusion) -> String {
    match why {
        Exclusion::NoSuchNamedPort(name) => format!("no container port named {name}"),
        Exclusion::NotReady => "the pod is not Ready".to_string(),
    }
}

/// The "Services that lead to it" and "Entry points from outside" sections
/// of [`describe_endpoint`].
fn describe_ways_in(model: &Model, endpoint: EndpointId, entries: &[Entry], out: &mut String) {
    let cluster = model.cluster();
    let leads = services_leading_to(model, endpoint);
    if leads.is_empty() {
        out.push_str("  No Service leads to it.\n");
    } else {
        out.push_str("  Services that lead to it:\n");
        for lead in &leads {
            let service = &cluster.services[lead.service];
            let port = service.ports[lead.port].label();
            let _ = match &lead.target {
                Ok(number) if service.headless => writeln!(
                    out,
                    "    service {} port {port} -> port {number} (headless: clients connect to the pod on the Service port)",
                    service.reference()
                ),
                Ok(number) => writeln!(
                    out,
                    "    service {} port {port} -> target port {number}",
                    service.reference()
                ),
                Err(why) => writeln!(
                    out,
                    "    service {}: not a backend of port {port}: {}",
                    service.reference(),
                    exclusion_words(why)
                ),
            };
        }
    }
    let reaching = entries_leading_to(entries, endpoint);
    if reaching.is_empty() {
        out.push_str("  No entry point from outside leads to it.\n");
        return;
    }
    out.push_str("  Entry points from outside that lead to it:\n");
    for (entry, target) in reaching {
        let controllers = if target.via_controllers.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = target
                .via_controllers
                .iter()
                .map(|&c| cluster.endpoint_name(c).to_string())
                .collect();
            format!(" through {}", names.join(", "))
        };
        let hidden = match (target.client_hidden, entry.via) {
            (false, _) => "",
            (true, EntryKind::Ingress) => " [client hidden: the pod sees the ingress controller]",
            (true, _) => " [client hidden: the pod may see a node's address]",
        };
        let _ = writeln!(
            out,
            "    {} -> port {}: from {}{controllers}{hidden}",
            entry_label(model, entry),
            target.port,
            sources_words(&target.sources)
        );
        for note in &entry.notes {
            let _ = writeln!(out, "      note: {note}");
        }
    }
}

/// A description of one endpoint: which policies select it, what it may
/// receive and send (both sides of each connection considered), the
/// Services that lead to it and the entry points from outside that reach
/// it. `entries` are the cluster's entry points
/// ([`crate::exposure::exposure`] of the same model).
pub fn describe_endpoint(model: &Model, endpoint: EndpointId, entries: &[Entry]) -> String {
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
    // The admin tiers that apply to it, in the order they are consulted.
    let class = model.class_of(endpoint);
    for tier in [crate::admin::Tier::Admin, crate::admin::Tier::Baseline] {
        let policies: Vec<String> = model
            .tier_policies(tier, class)
            .map(|policy| {
                let policy = &cluster.admin_policies[policy];
                let directions: Vec<&str> = [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .filter(|&d| !policy.rules(d).is_empty())
                    .map(Direction::field)
                    .collect();
                let priority = policy
                    .priority
                    .map(|p| format!("priority {p}, "))
                    .unwrap_or_default();
                format!(
                    "{} ({priority}{})",
                    policy.reference(),
                    if directions.is_empty() {
                        "no rules".to_string()
                    } else {
                        directions.join(", ")
                    }
                )
            })
            .collect();
        if !policies.is_empty() {
            let _ = writeln!(
                out,
                "  {} tier: {}.",
                match tier {
                    crate::admin::Tier::Admin => "Admin",
                    crate::admin::Tier::Baseline => "Baseline",
                },
                policies.join(", ")
            );
        }
    }
    let others: Vec<EndpointId> = (0..cluster.endpoints.len())
        .filter(|&e| e != endpoint)
        .collect();
    let mut matrix = model.connection_matrix();
    for direction in [Direction::Ingress, Direction::Egress] {
        let isolated = !model.policies_selecting(endpoint, direction).is_empty();
        let tiered = model.has_tier_rules(direction, class);
        let (verb, toward) = match direction {
            Direction::Ingress => ("receive", "from"),
            Direction::Egress => ("send", "to"),
        };
        let _ = writeln!(
            out,
            "  {}: {}{}. It may {verb}:",
            capitalize(direction.field()),
            if isolated { "isolated" } else { "not isolated" },
            if tiered {
                ", with admin-tier rules"
            } else {
                ""
            }
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
    describe_ways_in(model, endpoint, entries, &mut out);
    out
}

/// A paragraph on what one admin-tier policy (index into
/// [`crate::Cluster::admin_policies`]) does: its tier and place in it, the
/// pods it applies to, and each rule in order, with its action. Rules are
/// listed in order because the first that matches decides.
pub fn describe_admin_policy(cluster: &crate::Cluster, index: usize) -> String {
    use crate::admin::{Action, AdminPeer, AdminPort, Subject, Tier};
    let policy = &cluster.admin_policies[index];
    let place = match (policy.tier, policy.priority) {
        (Tier::Admin, Some(priority)) => {
            format!("Admin tier, priority {priority}: decides before any NetworkPolicy")
        }
        (Tier::Admin, None) => "Admin tier: decides before any NetworkPolicy".to_string(),
        (Tier::Baseline, Some(priority)) => format!(
            "Baseline tier, priority {priority}: decides only for pods no NetworkPolicy selects in that direction"
        ),
        (Tier::Baseline, None) => {
            "Baseline tier: decides only for pods no NetworkPolicy selects in that direction"
                .to_string()
        }
    };
    // Subjects and pod peers read alike: "pods with app=web in namespace shop".
    let pods_in = |namespaces: &Selector, pods: Option<&Selector>| match pods {
        None => format!("every pod in {}", namespaces_phrase(namespaces)),
        Some(pods) => format!("{} in {}", pods_phrase(pods), namespaces_phrase(namespaces)),
    };
    let subject = match &policy.subject {
        Subject::Namespaces(namespaces) => pods_in(namespaces, None),
        Subject::Pods { namespaces, pods } => pods_in(namespaces, Some(pods)),
    };
    let peer_words = |peer: &AdminPeer| {
        match peer {
        AdminPeer::Namespaces(namespaces) => pods_in(namespaces, None),
        AdminPeer::Pods { namespaces, pods } => pods_in(namespaces, Some(pods)),
        AdminPeer::Nodes(nodes) if nodes.is_everything() => "every node".to_string(),
        AdminPeer::Nodes(nodes) => format!("nodes with {nodes}"),
        AdminPeer::Networks(cidrs) => {
            let cidrs: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
            format!("addresses in {} (pods and nodes there too)", cidrs.join(", "))
        }
        AdminPeer::DomainNames(names) => format!(
            "the names {} (netpol cannot resolve names: no address matches them here)",
            names.join(", ")
        ),
        AdminPeer::Unknown => {
            "a peer netpol does not know (it fails closed: an Accept matches nothing, a Deny or Pass everything)"
                .to_string()
        }
    }
    };
    let port_words = |port: &AdminPort| match port {
        AdminPort::Number { protocol, port } => format!("{protocol} {port}"),
        AdminPort::Range {
            protocol,
            start,
            end,
        } => format!("{protocol} {start}-{end}"),
        AdminPort::Named(name) => format!("the destination's port named {name}"),
        AdminPort::UnknownProtocol(protocol) => {
            format!("protocol {protocol} (unknown: fails closed)")
        }
    };
    let mut out = format!("{place}. Applies to {subject}.");
    for direction in [Direction::Ingress, Direction::Egress] {
        let rules = policy.rules(direction);
        let name = capitalize(direction.field());
        if rules.is_empty() {
            let _ = write!(out, " {name} is not affected.");
            continue;
        }
        let toward = match direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let phrases: Vec<String> = (rules.iter())
            .map(|rule| {
                let (verb, outcome) = match (rule.action, policy.tier) {
                    (Action::Accept, Tier::Admin) => ("allows", ", whatever NetworkPolicies say"),
                    (Action::Accept, Tier::Baseline) => ("allows", ""),
                    (Action::Deny, Tier::Admin) => ("denies", ", whatever NetworkPolicies say"),
                    (Action::Deny, Tier::Baseline) => ("denies", ""),
                    (Action::Pass, Tier::Admin) => ("passes", " on to NetworkPolicy"),
                    (Action::Pass, Tier::Baseline) => ("passes", " on to the default (allow)"),
                };
                let label = match &rule.name {
                    Some(rule_name) => format!("rule {} `{rule_name}`", rule.index),
                    None => format!("rule {}", rule.index),
                };
                let peers: Vec<String> = rule.peers.iter().map(peer_words).collect();
                let ports = match &rule.ports {
                    None => "on any port".to_string(),
                    Some(ports) => {
                        let ports: Vec<String> = ports.iter().map(port_words).collect();
                        format!("on {}", join_or(&ports, "and"))
                    }
                };
                format!(
                    "{label} {verb} traffic {toward} {} {ports}{outcome}",
                    join_or(&peers, "or")
                )
            })
            .collect();
        let _ = write!(
            out,
            " {name}, first match wins: {}; {}.",
            phrases.join("; "),
            match policy.tier {
                Tier::Admin => "anything else goes on to NetworkPolicy",
                Tier::Baseline => "anything else is allowed",
            }
        );
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

    #[test]
    fn a_pod_without_the_named_port_is_told_why_it_is_no_backend() {
        let model = model(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: c, image: i}]}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}, {name: raw, port: 81}]}\n",
        );
        let a = model.cluster().find_endpoint("shop/a").unwrap();
        let b = model.cluster().find_endpoint("shop/b").unwrap();
        assert_eq!(
            services_leading_to(&model, a),
            [
                ServiceLead {
                    service: 0,
                    port: 0,
                    target: Ok(8080)
                },
                ServiceLead {
                    service: 0,
                    port: 1,
                    target: Ok(81)
                },
            ]
        );
        assert_eq!(
            services_leading_to(&model, b),
            [
                ServiceLead {
                    service: 0,
                    port: 0,
                    target: Err(Exclusion::NoSuchNamedPort("http".to_string()))
                },
                ServiceLead {
                    service: 0,
                    port: 1,
                    target: Ok(81)
                },
            ]
        );
        let text = describe_endpoint(&model, b, &[]);
        assert!(
            text.ends_with("  Services that lead to it:\n    service shop/web: not a backend of port http (TCP 80): no container port named http\n    service shop/web port raw (TCP 81) -> target port 81\n  No entry point from outside leads to it.\n"),
            "{text}"
        );
    }
}
