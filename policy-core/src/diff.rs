//! What changed between two sets of manifests, in allowed connections.
//!
//! [`diff`] compares two models pair by pair: for every ordered pair of
//! endpoints (matched by name across the two sides) and every region of
//! outside addresses, the ports allowed on the new side but not the old are
//! *added*, and the reverse *removed*. An endpoint present on one side only
//! allows nothing on the other. So the changes are exactly the set difference
//! of the two full connectivity matrices; reordered, reformatted or renamed
//! policies that allow the same traffic give no change.
//!
//! [`ConnectivityDiff::grouped`] then groups changes by workload and port
//! set, for people.
//!
//! Entry points from outside ([`crate::exposure::exposure`]) are compared
//! too: each (entry, target) is keyed by an [`ExposureKey`] (how and where
//! traffic enters, the Service or Ingress route, the target's workload and
//! port), and a key whose outside sources differ between the sides is an
//! [`ExposureChange`]: newly exposed, no longer exposed, widened, narrowed
//! or changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::cluster::EndpointId;
use crate::config::SelfTraffic;
use crate::exposure::{EntryKind, IngressControllers, exposure};
use crate::ipset::IpSet;
use crate::model::{Model, partition};
use crate::policy::Direction;
use crate::ports::{PortSet, Protocol};

/// One end of a changed connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffPeer {
    /// A pod or workload endpoint, by display name.
    Endpoint(String),
    /// Addresses outside the cluster.
    Addresses(IpSet),
}

impl fmt::Display for DiffPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffPeer::Endpoint(name) => f.write_str(name),
            DiffPeer::Addresses(set) if *set == IpSet::everything() => f.write_str("any address"),
            DiffPeer::Addresses(set) => write!(f, "{set}"),
        }
    }
}

/// Ports that became allowed (or stopped being allowed) from one peer to another.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// The source.
    pub from: DiffPeer,
    /// The destination.
    pub to: DiffPeer,
    /// The ports added or removed.
    pub ports: PortSet,
}

/// Changes grouped by workload (source and destination) and port set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupedChange {
    /// The source workload (or pod, or addresses).
    pub from: String,
    /// The destination workload (or pod, or addresses).
    pub to: String,
    /// The ports added or removed for every pair of the group.
    pub ports: PortSet,
    /// The endpoint pairs (or address/endpoint pairs) in the group.
    pub pairs: Vec<(DiffPeer, DiffPeer)>,
}

/// The difference between two models.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectivityDiff {
    /// Endpoints only in the new side.
    pub appeared: Vec<String>,
    /// Endpoints only in the old side.
    pub disappeared: Vec<String>,
    /// Connections the new side allows and the old does not, per pair.
    pub added: Vec<Change>,
    /// Connections the old side allows and the new does not, per pair.
    pub removed: Vec<Change>,
    /// Entry points from outside whose sources differ, by key.
    pub exposure: Vec<ExposureChange>,
    /// Workload labels of endpoints, for grouping.
    workloads: BTreeMap<String, String>,
}

impl ConnectivityDiff {
    /// True when the two sides allow exactly the same connections, have
    /// the same endpoints and let the same outside addresses in through the
    /// same entry points.
    pub fn is_empty(&self) -> bool {
        self.appeared.is_empty()
            && self.disappeared.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.exposure.is_empty()
    }

    /// The exposure changes of one kind, in key order.
    pub fn exposure_of(&self, kind: ExposureChangeKind) -> Vec<&ExposureChange> {
        self.exposure.iter().filter(|c| c.kind() == kind).collect()
    }

    fn label(&self, peer: &DiffPeer) -> String {
        match peer {
            DiffPeer::Endpoint(name) => self
                .workloads
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.clone()),
            other => other.to_string(),
        }
    }

    /// `changes` grouped by (source workload, destination workload, ports).
    pub fn grouped(&self, changes: &[Change]) -> Vec<GroupedChange> {
        let mut groups: BTreeMap<(String, String, PortSet), Vec<(DiffPeer, DiffPeer)>> =
            BTreeMap::new();
        for change in changes {
            groups
                .entry((
                    self.label(&change.from),
                    self.label(&change.to),
                    change.ports.clone(),
                ))
                .or_default()
                .push((change.from.clone(), change.to.clone()));
        }
        groups
            .into_iter()
            .map(|((from, to, ports), pairs)| GroupedChange {
                from,
                to,
                ports,
                pairs,
            })
            .collect()
    }
}

/// An entry point toward one port of a workload: how diff matches entry
/// targets across the two sides. Pods of one workload share a key, so a
/// rollout that renames pods changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExposureKey {
    /// How traffic enters.
    pub via: EntryKind,
    /// The address clients connect to, or the load balancer's host name;
    /// `None` for "each node" (no Node objects) and for Ingress routes.
    pub address: Option<String>,
    /// The port clients connect to; `None` for a node port the API server
    /// allocates.
    pub port: Option<u16>,
    /// The protocol.
    pub protocol: Protocol,
    /// The Service, `namespace/name` (not for Ingress routes).
    pub service: Option<String>,
    /// Ingress routes: the Ingress's `namespace/name`, host and path.
    pub ingress: Option<(String, Option<String>, Option<String>)>,
    /// The target's workload (`Cluster::workload_name`).
    pub workload: String,
    /// The port on the target pods.
    pub target_port: u16,
}

impl ExposureKey {
    /// The key in words, with the receiving node when given: "NodePort
    /// 192.168.0.1 (node node-1) TCP 30080 (service shop/web) -> shop/web
    /// port 8080", "Ingress shop/shop shop.example.com/ TCP 80 -> shop/web
    /// port 8080".
    pub fn label(&self, node: Option<&str>) -> String {
        let port = self
            .port
            .map_or_else(|| "<allocated>".to_string(), |p| p.to_string());
        let mut out = match &self.ingress {
            Some((name, host, path)) => {
                let route = match (host, path) {
                    (None, None) => " (default backend)".to_string(),
                    (host, path) => format!(
                        " {}{}",
                        host.as_deref().unwrap_or("*"),
                        path.as_deref().unwrap_or("")
                    ),
                };
                format!("Ingress {name}{route} {} {port}", self.protocol)
            }
            None => {
                let node = node.map(|n| format!(" (node {n})")).unwrap_or_default();
                format!(
                    "{} {}{node} {} {port}",
                    self.via.as_str(),
                    self.address.as_deref().unwrap_or("each node"),
                    self.protocol
                )
            }
        };
        if let Some(service) = &self.service {
            out.push_str(&format!(" (service {service})"));
        }
        out.push_str(&format!(" -> {} port {}", self.workload, self.target_port));
        out
    }
}

impl fmt::Display for ExposureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label(None))
    }
}

/// What happened to the outside sources of an entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExposureChangeKind {
    /// Nobody got through (or the entry did not exist); now someone does.
    NewlyExposed,
    /// Someone got through; now nobody does (or the entry is gone).
    NoLongerExposed,
    /// Someone got through and still does; more addresses do now.
    Widened,
    /// Someone got through and still does; fewer addresses do now.
    Narrowed,
    /// Someone got through and still does; some addresses gained, others lost.
    Changed,
}

impl ExposureChangeKind {
    /// The spelling in JSON: `newly-exposed`, `no-longer-exposed`,
    /// `widened`, `narrowed`, `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureChangeKind::NewlyExposed => "newly-exposed",
            ExposureChangeKind::NoLongerExposed => "no-longer-exposed",
            ExposureChangeKind::Widened => "widened",
            ExposureChangeKind::Narrowed => "narrowed",
            ExposureChangeKind::Changed => "changed",
        }
    }
}

/// An entry point whose outside sources differ between the two sides.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExposureChange {
    /// The entry point and target.
    pub key: ExposureKey,
    /// The node that receives the traffic, when known (new side first).
    pub node: Option<String>,
    /// The outside addresses that got through on the old side (empty when
    /// the entry did not exist).
    pub before: IpSet,
    /// The outside addresses that get through on the new side (empty when
    /// the entry is gone).
    pub after: IpSet,
    /// The service proxy or the ingress controller hides the client on
    /// some path (new side when it has the entry, else old side).
    pub client_hidden: bool,
}

impl ExposureChange {
    /// What happened.
    pub fn kind(&self) -> ExposureChangeKind {
        match (self.before.is_empty(), self.after.is_empty()) {
            (true, _) => ExposureChangeKind::NewlyExposed,
            (false, true) => ExposureChangeKind::NoLongerExposed,
            (false, false) => match (self.gained().is_empty(), self.lost().is_empty()) {
                (false, true) => ExposureChangeKind::Widened,
                (true, false) => ExposureChangeKind::Narrowed,
                _ => ExposureChangeKind::Changed,
            },
        }
    }

    /// The entry point and target in words, with the receiving node.
    pub fn title(&self) -> String {
        self.key.label(self.node.as_deref())
    }

    /// Addresses that get through now and did not before.
    pub fn gained(&self) -> IpSet {
        self.after.difference(&self.before)
    }

    /// Addresses that got through before and do not now.
    pub fn lost(&self) -> IpSet {
        self.before.difference(&self.after)
    }
}

/// One side's entry targets by key: the union of their sources, the node
/// and whether some path hides the client.
fn exposure_by_key(model: &Model) -> BTreeMap<ExposureKey, (IpSet, Option<String>, bool)> {
    let cluster = model.cluster();
    let mut keyed: BTreeMap<ExposureKey, (IpSet, Option<String>, bool)> = BTreeMap::new();
    for entry in exposure(model, &IngressControllers::default()) {
        let address = entry
            .address
            .map(|a| a.to_string())
            .or_else(|| entry.hostname.clone());
        let service = match entry.via {
            EntryKind::Ingress => None,
            _ => entry.service.map(|s| cluster.services[s].reference()),
        };
        for target in &entry.targets {
            let key = ExposureKey {
                via: entry.via,
                address: address.clone(),
                port: entry.port,
                protocol: entry.protocol,
                service: service.clone(),
                ingress: entry.ingress.clone(),
                workload: cluster.workload_name(target.pod),
                target_port: target.port,
            };
            let slot = keyed
                .entry(key)
                .or_insert_with(|| (IpSet::empty(), entry.node.clone(), false));
            slot.0.union_with(&target.sources);
            slot.2 |= target.client_hidden;
        }
    }
    keyed
}

/// The entry points whose outside sources differ from `old` to `new`.
pub fn exposure_changes(old: &Model, new: &Model) -> Vec<ExposureChange> {
    let mut before = exposure_by_key(old);
    let after = exposure_by_key(new);
    let mut changes = Vec::new();
    for (key, (sources, node, hidden)) in after {
        let (old_sources, old_node) = match before.remove(&key) {
            Some((sources, node, _)) => (sources, node),
            None => (IpSet::empty(), None),
        };
        if old_sources != sources {
            changes.push(ExposureChange {
                key,
                node: node.or(old_node),
                before: old_sources,
                after: sources,
                client_hidden: hidden,
            });
        }
    }
    for (key, (sources, node, hidden)) in before {
        if !sources.is_empty() {
            changes.push(ExposureChange {
                key,
                node,
                before: sources,
                after: IpSet::empty(),
                client_hidden: hidden,
            });
        }
    }
    changes.sort();
    changes
}

fn names(model: &Model) -> BTreeMap<String, EndpointId> {
    let cluster = model.cluster();
    (0..cluster.endpoints.len())
        .map(|id| (cluster.endpoint_name(id).to_string(), id))
        .collect()
}

/// The changes from `old` to `new`. Both models should share a configuration.
pub fn diff(old: &Model, new: &Model) -> ConnectivityDiff {
    let old_names = names(old);
    let new_names = names(new);
    let all: BTreeSet<&String> = old_names.keys().chain(new_names.keys()).collect();
    let mut result = ConnectivityDiff {
        appeared: new_names
            .keys()
            .filter(|n| !old_names.contains_key(*n))
            .cloned()
            .collect(),
        disappeared: old_names
            .keys()
            .filter(|n| !new_names.contains_key(*n))
            .cloned()
            .collect(),
        ..ConnectivityDiff::default()
    };
    for (name, &id) in &old_names {
        result
            .workloads
            .insert(name.clone(), old.cluster().workload_name(id));
    }
    for (name, &id) in &new_names {
        result
            .workloads
            .insert(name.clone(), new.cluster().workload_name(id));
    }

    let include_self = old.config().self_traffic == SelfTraffic::Evaluate;
    let mut old_matrix = old.connection_matrix();
    let mut new_matrix = new.connection_matrix();
    let mut record = |from: DiffPeer, to: DiffPeer, before: PortSet, after: PortSet| {
        let added = after.difference(&before);
        if !added.is_empty() {
            result.added.push(Change {
                from: from.clone(),
                to: to.clone(),
                ports: added,
            });
        }
        let removed = before.difference(&after);
        if !removed.is_empty() {
            result.removed.push(Change {
                from,
                to,
                ports: removed,
            });
        }
    };
    for source in &all {
        for destination in &all {
            if source == destination && !include_self {
                continue;
            }
            let ports = |names: &BTreeMap<String, EndpointId>,
                         matrix: &mut crate::model::ConnectionMatrix<'_>| {
                match (names.get(*source), names.get(*destination)) {
                    (Some(&s), Some(&d)) => matrix.get(s, d),
                    _ => PortSet::empty(),
                }
            };
            let before = ports(&old_names, &mut old_matrix);
            let after = ports(&new_names, &mut new_matrix);
            record(
                DiffPeer::Endpoint((*source).clone()),
                DiffPeer::Endpoint((*destination).clone()),
                before,
                after,
            );
        }
    }

    // Outside addresses: compare over the regions both sides distinguish, and
    // merge the regions whose change is the same for an endpoint.
    let blocks: Vec<IpSet> = old
        .address_blocks()
        .into_iter()
        .chain(new.address_blocks())
        .collect();
    let regions = partition(blocks.iter());
    for name in &all {
        for direction in [Direction::Ingress, Direction::Egress] {
            let mut merged: BTreeMap<(PortSet, PortSet), IpSet> = BTreeMap::new();
            for region in &regions {
                let side = |names: &BTreeMap<String, EndpointId>, model: &Model| match names
                    .get(*name)
                {
                    Some(&id) => model.address_connections(model.class_of(id), direction, region),
                    None => PortSet::empty(),
                };
                let before = side(&old_names, old);
                let after = side(&new_names, new);
                if before != after {
                    merged
                        .entry((before.difference(&after), after.difference(&before)))
                        .or_default()
                        .union_with(region);
                }
            }
            for ((removed, added), addresses) in merged {
                let endpoint = DiffPeer::Endpoint((*name).clone());
                let outside = DiffPeer::Addresses(addresses);
                let (from, to) = match direction {
                    Direction::Ingress => (outside, endpoint),
                    Direction::Egress => (endpoint, outside),
                };
                record(from, to, removed, added);
            }
        }
    }
    result.added.sort();
    result.removed.sort();
    result.exposure = exposure_changes(old, new);
    result
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

    const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns1, labels: {app: a}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: ns1, labels: {app: b}}\n";

    #[test]
    fn identical_inputs_have_no_difference() {
        let text = format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: ns1}}\nspec: {{podSelector: {{matchLabels: {{app: b}}}}, ingress: [{{ports: [{{port: 80}}]}}]}}\n"
        );
        assert!(diff(&model(&text), &model(&text)).is_empty());
    }

    #[test]
    fn a_narrower_rule_removes_ports_for_pods_and_addresses() {
        let old = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: ns1}}\nspec: {{podSelector: {{matchLabels: {{app: b}}}}, ingress: [{{ports: [{{port: 80}}, {{port: 443}}]}}]}}\n"
        ));
        let new = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: q, namespace: ns1}}\nspec: {{podSelector: {{matchLabels: {{app: b}}}}, ingress: [{{ports: [{{port: 443}}]}}]}}\n"
        ));
        let changes = diff(&old, &new);
        assert!(changes.added.is_empty());
        let removed: Vec<String> = changes
            .removed
            .iter()
            .map(|c| format!("{} -> {}: {}", c.from, c.to, c.ports))
            .collect();
        assert_eq!(
            removed,
            ["ns1/a -> ns1/b: TCP 80", "any address -> ns1/b: TCP 80"]
        );
    }

    const SERVICE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: ns1, labels: {app: b}}\nspec: {nodeName: n1, containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: ns1}\nspec: {type: TYPE, selector: {app: b}, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}\n";

    fn exposure_lines(changes: &ConnectivityDiff) -> Vec<String> {
        changes
            .exposure
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {} -> {}",
                    c.kind().as_str(),
                    c.title(),
                    c.before,
                    c.after
                )
            })
            .collect()
    }

    #[test]
    fn a_service_becoming_a_node_port_is_newly_exposed() {
        let old = model(
            &SERVICE
                .replace("type: TYPE, ", "")
                .replace(", nodePort: 30080", ""),
        );
        let new = model(&SERVICE.replace("TYPE", "NodePort"));
        let changes = diff(&old, &new);
        assert!(changes.added.is_empty() && changes.removed.is_empty());
        assert!(!changes.is_empty(), "an exposure change is a change");
        assert_eq!(
            exposure_lines(&changes),
            [
                "newly-exposed NodePort 192.168.0.1 (node n1) TCP 30080 (service ns1/b) -> ns1/b port 8080: none -> 0.0.0.0/0, ::/0"
            ]
        );
        assert_eq!(
            exposure_lines(&diff(&new, &old)),
            [
                "no-longer-exposed NodePort 192.168.0.1 (node n1) TCP 30080 (service ns1/b) -> ns1/b port 8080: 0.0.0.0/0, ::/0 -> none"
            ]
        );
    }

    #[test]
    fn narrowed_and_changed_sources_are_told_apart() {
        let service = SERVICE.replace("TYPE", "NodePort");
        let policy = |cidrs: &str| {
            format!(
                "{service}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: ns1}}\nspec: {{podSelector: {{}}, ingress: [{{from: [{cidrs}]}}]}}\n"
            )
        };
        let wide = model(&policy("{ipBlock: {cidr: 203.0.113.0/24}}"));
        let narrow = model(&policy("{ipBlock: {cidr: 203.0.113.0/25}}"));
        let other = model(&policy("{ipBlock: {cidr: 198.51.100.0/24}}"));
        assert_eq!(
            exposure_lines(&diff(&wide, &narrow)),
            [
                "narrowed NodePort 192.168.0.1 (node n1) TCP 30080 (service ns1/b) -> ns1/b port 8080: 203.0.113.0/24 -> 203.0.113.0/25"
            ]
        );
        assert_eq!(
            diff(&narrow, &wide).exposure[0].kind(),
            ExposureChangeKind::Widened
        );
        let changed = diff(&wide, &other);
        assert_eq!(changed.exposure[0].kind(), ExposureChangeKind::Changed);
        assert_eq!(changed.exposure[0].gained().to_string(), "198.51.100.0/24");
        assert_eq!(changed.exposure[0].lost().to_string(), "203.0.113.0/24");
    }
}
