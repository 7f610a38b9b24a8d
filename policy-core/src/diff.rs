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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::cluster::EndpointId;
use crate::config::SelfTraffic;
use crate::ipset::IpSet;
use crate::model::{Model, partition};
use crate::policy::Direction;
use crate::ports::PortSet;

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
    /// Workload labels of endpoints, for grouping.
    workloads: BTreeMap<String, String>,
}

impl ConnectivityDiff {
    /// True when the two sides allow exactly the same connections and have
    /// the same endpoints.
    pub fn is_empty(&self) -> bool {
        self.appeared.is_empty()
            && self.disappeared.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
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
}
