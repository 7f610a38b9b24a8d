//! Following a source's changes instead of reloading the cluster.
//!
//! [`Planner::plan_changes`] reads each changed object on its own (one
//! object through the [`Loader`]), decides what the model must now hold for
//! it with the same repair rules as a snapshot (see the parent module), and
//! hands the model only those differences ([`Model::apply`]). A pod event
//! in a 100,000-pod cluster therefore costs one object's decoding and the
//! model's in-place update, not a reload.
//!
//! The result must be what [`Planner::plan`] makes of a snapshot of the same
//! objects; the tests below check exactly that on random event sequences.
//! Only the kinds the Kubernetes source watches (Namespace, Pod,
//! NetworkPolicy, Node, and the admin tiers) can be followed this way:
//! other kinds depend on each other (a workload stands for pods only when
//! none of its pods is given), so sources of them send snapshots. A change
//! to an admin-tier policy reaches the model as the whole new list of them
//! (`Change::AdminPolicies`), which rebuilds it: they change rarely.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use policy_core::admin::{AdminKind, AdminPolicy};
use policy_core::cluster::{Cluster, Endpoint, EndpointKind, Namespace, Node};
use policy_core::load::Object;
use policy_core::model::Change;
use policy_core::{Diagnostic, Loader, Policy, Severity};

use super::{
    Counts, Key, OnUnreadable, Parked, Plan, PlanError, Planner, Repair, Repairs, admin_key,
    allowing_nothing, endpoint_position, isolating_namespace, key_ref, object_key,
};
use crate::source::ObjectChange;

/// The kinds [`Planner::plan_changes`] follows.
const FOLLOWED_KINDS: [&str; 7] = [
    "Namespace",
    "Pod",
    "NetworkPolicy",
    "Node",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
    "ClusterNetworkPolicy",
];

impl Planner {
    /// Plans the changes a source saw since its previous event, on top of
    /// the last good state, and makes the result the last good state. The
    /// model is updated in place; see the module documentation.
    ///
    /// Errors, and changes nothing, before the first snapshot and for kinds
    /// other than Namespace, Pod, NetworkPolicy, Node and the admin tiers.
    pub fn plan_changes(&mut self, changes: Vec<ObjectChange>) -> Result<Plan, PlanError> {
        if let Some(kind) = changes.iter().find_map(unfollowed_kind) {
            return Err(PlanError(format!(
                "cannot follow changes to {kind} objects; the source must send snapshots"
            )));
        }
        let Some(mut model) = self.last_good.take() else {
            return Err(PlanError(
                "changes arrived before the source's first snapshot".into(),
            ));
        };
        let started = Instant::now();
        let mut overlay = Overlay::default();
        for change in changes {
            match change {
                ObjectChange::Applied(object) => {
                    self.follow_applied(object, model.cluster(), &mut overlay)
                }
                ObjectChange::Deleted(object) => {
                    self.follow_deleted(object_key(&object), &mut overlay)
                }
                ObjectChange::Relisted { kind, objects } => {
                    let listed: BTreeSet<Key> = (objects.iter())
                        .filter_map(|object| object.identity())
                        .map(object_key)
                        .collect();
                    let gone: Vec<Key> = self
                        .keys_of_kind(&kind, model.cluster(), &overlay)
                        .into_iter()
                        .filter(|key| !listed.contains(key))
                        .collect();
                    for key in gone {
                        self.follow_deleted(key, &mut overlay);
                    }
                    for object in objects.unpack_each() {
                        let object = match object {
                            Ok(object) => object,
                            Err(error) => {
                                // Nothing was changed in place yet: the
                                // overlay is dropped, the model kept.
                                self.last_good = Some(model);
                                return Err(PlanError(error.to_string()));
                            }
                        };
                        self.follow_applied(object, model.cluster(), &mut overlay);
                    }
                }
            }
        }

        // A policy deleted in this batch may be parked.
        for ((_, namespace, name), policy) in &overlay.policies {
            if policy.is_none() {
                self.parked.remove(namespace, name);
            }
        }
        let local_before = self.local_namespaces();
        let (changes, maybe_unreferenced) = overlay.into_changes(model.cluster());
        for change in &changes {
            let (namespace, name, kind, after) = match change {
                Change::UpsertEndpoint(endpoint) => (
                    endpoint.namespace.as_str(),
                    endpoint.name.as_str(),
                    endpoint.kind,
                    Some(endpoint),
                ),
                Change::RemoveEndpoint {
                    namespace,
                    name,
                    kind,
                } => (namespace.as_str(), name.as_str(), *kind, None),
                _ => continue,
            };
            let before = endpoint_position(model.cluster(), namespace, name, kind)
                .map(|position| &model.cluster().endpoints[position]);
            self.count_endpoint_change(before, after);
        }
        let local_after = self.local_namespaces();
        let changes = self.route_policies(changes, model.cluster(), &local_before, &local_after);
        let mut stats = model.apply(changes);
        // A namespace nothing declares exists only while something in it
        // does, as in a snapshot.
        let pruned = without_unreferenced(model.cluster(), &self.parked, &maybe_unreferenced);
        if let Some(namespaces) = pruned {
            let more = model.apply(vec![Change::Namespaces(namespaces)]);
            stats.endpoints += more.endpoints;
            stats.policies += more.policies;
            stats.classes_added += more.classes_added;
            stats.classes_emptied += more.classes_emptied;
            stats.rebuilt = stats.rebuilt.or(more.rebuilt);
            stats.touched_classes.extend(more.touched_classes);
        }
        let model_time = started.elapsed();

        let cluster = model.cluster();
        let counts = Counts {
            endpoints: cluster.endpoints.len(),
            policies: cluster.policies.len() + self.parked.len(),
            namespaces: cluster.namespaces.len(),
            admin_policies: cluster.admin_policies.len(),
        };
        let errors: Vec<Diagnostic> = (self.unattributed_errors.iter())
            .chain(self.unreadable.values().flatten())
            .cloned()
            .collect();
        let mut repairs = Repairs::default();
        for (key, repair) in &self.repaired {
            match repair {
                Repair::KeptLastGood => repairs.kept_last_good.push(key_ref(key)),
                Repair::FailedClosed => repairs.failed_closed.push(key_ref(key)),
            }
        }
        self.compile(model, Some(stats), model_time, counts, errors, repairs)
    }

    /// Reads one created or modified object and records what the model
    /// must hold for it.
    fn follow_applied(&mut self, object: Object, base: &Cluster, overlay: &mut Overlay) {
        // The API server never sends a nameless object; nothing could name it.
        let Some(identity) = object.identity() else {
            return;
        };
        let key = object_key(&identity);
        let mut loader = Loader::new();
        loader.add(object);
        let loaded = loader.finish();
        let errors: Vec<Diagnostic> = (loaded.diagnostics.into_iter())
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let readable = errors.is_empty();
        self.repaired.remove(&key);
        if readable {
            self.unreadable.remove(&key);
        } else {
            self.unreadable.insert(key.clone(), errors);
        }
        let read = loaded.cluster;
        match key.0.as_str() {
            "Pod" => {
                // A pod read with errors keeps its last good version, if any.
                if !readable && overlay.endpoint(&key, base).is_some() {
                    self.repaired.insert(key, Repair::KeptLastGood);
                } else {
                    overlay
                        .endpoints
                        .insert(key, read.endpoints.into_iter().next());
                }
            }
            "NetworkPolicy" => {
                let read = read.policies.into_iter().next();
                if readable {
                    overlay.policies.insert(key, read);
                    return;
                }
                let fail_closed = self.on_unreadable == OnUnreadable::FailClosed;
                let last = match overlay.policies.get(&key) {
                    Some(policy) => policy.clone(),
                    None => find_policy(base, &key.1, &key.2)
                        .cloned()
                        .or_else(|| self.parked.get(&key.1, &key.2)),
                };
                let (enforced, repair) = match (last, fail_closed) {
                    (Some(last), false) => (Some(last), Some(Repair::KeptLastGood)),
                    (Some(last), true) => {
                        (Some(allowing_nothing(&last)), Some(Repair::FailedClosed))
                    }
                    (None, true) => (
                        Some(isolating_namespace(&key.1, &key.2)),
                        Some(Repair::FailedClosed),
                    ),
                    (None, false) => (read, None),
                };
                if let Some(repair) = repair {
                    self.repaired.insert(key.clone(), repair);
                }
                overlay.policies.insert(key, enforced);
            }
            "Namespace" => {
                let last_declared = overlay.namespace(&key.2, base).is_some_and(|n| n.declared);
                if !readable && last_declared {
                    self.repaired.insert(key, Repair::KeptLastGood);
                } else {
                    let declared = read.namespaces.into_iter().find(|n| n.declared);
                    overlay.namespaces.insert(key.2, declared);
                }
            }
            "Node" => {
                overlay.nodes.insert(key.2, read.nodes.into_iter().next());
            }
            kind if AdminKind::from_kind(kind).is_some() => {
                // As pods and namespaces: the last good version, if any.
                let read = read.admin_policies.into_iter().next();
                let last = match overlay.admin_policies.get(&key) {
                    Some(policy) => policy.clone(),
                    None => find_admin_policy(base, &key).cloned(),
                };
                match last {
                    Some(last) if !readable => {
                        self.repaired.insert(key.clone(), Repair::KeptLastGood);
                        overlay.admin_policies.insert(key, Some(last));
                    }
                    _ => {
                        overlay.admin_policies.insert(key, read);
                    }
                }
            }
            _ => {}
        }
    }

    /// Records that an object is gone, with any repair of it.
    fn follow_deleted(&mut self, key: Key, overlay: &mut Overlay) {
        self.unreadable.remove(&key);
        self.repaired.remove(&key);
        match key.0.as_str() {
            "Pod" => {
                overlay.endpoints.insert(key, None);
            }
            "NetworkPolicy" => {
                overlay.policies.insert(key, None);
            }
            "Namespace" => {
                overlay.namespaces.insert(key.2, None);
            }
            "Node" => {
                overlay.nodes.insert(key.2, None);
            }
            kind if AdminKind::from_kind(kind).is_some() => {
                overlay.admin_policies.insert(key, None);
            }
            _ => {}
        }
    }

    /// Every object of `kind` the planner knows of: in the model, changed
    /// in this batch, or unreadable.
    fn keys_of_kind(&self, kind: &str, base: &Cluster, overlay: &Overlay) -> BTreeSet<Key> {
        let mut keys: BTreeSet<Key> = (self.unreadable.keys())
            .filter(|key| key.0 == kind)
            .cloned()
            .collect();
        let named = |name: &str| (kind.to_owned(), String::new(), name.to_owned());
        match kind {
            "Pod" => {
                keys.extend(
                    (base.endpoints.iter())
                        .filter(|e| e.kind == EndpointKind::Pod)
                        .map(super::endpoint_key),
                );
                keys.extend(present(&overlay.endpoints));
            }
            "NetworkPolicy" => {
                keys.extend(base.policies.iter().map(super::policy_key));
                keys.extend(
                    (self.parked.names())
                        .map(|(namespace, name)| super::key(kind, namespace, name)),
                );
                keys.extend(present(&overlay.policies));
            }
            "Namespace" => {
                keys.extend(
                    (base.namespaces.iter())
                        .filter(|n| n.declared)
                        .map(|n| named(&n.name)),
                );
                keys.extend(present(&overlay.namespaces).map(|name| named(&name)));
            }
            "Node" => {
                keys.extend(base.nodes.iter().map(|n| named(&n.name)));
                keys.extend(present(&overlay.nodes).map(|name| named(&name)));
            }
            kind if AdminKind::from_kind(kind).is_some() => {
                keys.extend(
                    (base.admin_policies.iter())
                        .filter(|p| p.kind.as_str() == kind)
                        .map(admin_key),
                );
                // The overlay holds all three kinds.
                keys.extend(present(&overlay.admin_policies).filter(|key| key.0 == kind));
            }
            _ => {}
        }
        keys
    }
}

impl Planner {
    /// Sends the policy changes of namespaces without an endpoint on the
    /// node to the parked policies instead of the model, and moves whole
    /// namespaces between the two as their first endpoint arrives on the
    /// node (`before` and `after`: the node's namespaces before and after
    /// the batch) or their last one leaves.
    fn route_policies(
        &mut self,
        changes: Vec<Change>,
        base: &Cluster,
        before: &BTreeSet<String>,
        after: &BTreeSet<String>,
    ) -> Vec<Change> {
        let mut routed = Vec::with_capacity(changes.len());
        // Policies this batch changed: their new state is decided here.
        let mut changed: BTreeSet<(String, String)> = BTreeSet::new();
        for change in changes {
            match change {
                Change::UpsertPolicy(policy) => {
                    changed.insert((policy.namespace.clone(), policy.name.clone()));
                    if after.contains(&policy.namespace) {
                        routed.push(Change::UpsertPolicy(policy));
                        continue;
                    }
                    if find_policy(base, &policy.namespace, &policy.name).is_some() {
                        routed.push(Change::RemovePolicy {
                            namespace: policy.namespace.clone(),
                            name: policy.name.clone(),
                        });
                    }
                    self.parked.insert(&policy);
                }
                Change::RemovePolicy { namespace, name } => {
                    changed.insert((namespace.clone(), name.clone()));
                    routed.push(Change::RemovePolicy { namespace, name });
                }
                other => routed.push(other),
            }
        }
        let unchanged =
            |policy: &Policy| !changed.contains(&(policy.namespace.clone(), policy.name.clone()));
        for namespace in before.difference(after) {
            for policy in namespace_range(&base.policies, namespace, |p| &p.namespace) {
                if unchanged(policy) {
                    self.parked.insert(policy);
                    routed.push(Change::RemovePolicy {
                        namespace: policy.namespace.clone(),
                        name: policy.name.clone(),
                    });
                }
            }
        }
        for namespace in after.difference(before) {
            for policy in self.parked.take_namespace(namespace) {
                if unchanged(&policy) {
                    routed.push(Change::UpsertPolicy(policy));
                }
            }
        }
        routed
    }
}

fn unfollowed_kind(change: &ObjectChange) -> Option<String> {
    let kind = match change {
        ObjectChange::Applied(object) => object.identity()?.kind,
        ObjectChange::Deleted(object) => object.kind.clone(),
        ObjectChange::Relisted { kind, .. } => kind.clone(),
    };
    (!FOLLOWED_KINDS.contains(&kind.as_str())).then_some(kind)
}

/// The keys of an overlay map whose objects exist after the batch.
fn present<K: Clone, V>(map: &BTreeMap<K, Option<V>>) -> impl Iterator<Item = K> + '_ {
    map.iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, _)| key.clone())
}

/// What one batch of changes makes of each object it touched: `None` for
/// an object that is gone. Objects not in here are as the model has them.
#[derive(Default)]
struct Overlay {
    endpoints: BTreeMap<Key, Option<Endpoint>>,
    policies: BTreeMap<Key, Option<Policy>>,
    /// Declared namespaces, by name.
    namespaces: BTreeMap<String, Option<Namespace>>,
    nodes: BTreeMap<String, Option<Node>>,
    admin_policies: BTreeMap<Key, Option<AdminPolicy>>,
}

impl Overlay {
    fn endpoint<'a>(&'a self, key: &Key, base: &'a Cluster) -> Option<&'a Endpoint> {
        match self.endpoints.get(key) {
            Some(endpoint) => endpoint.as_ref(),
            None => find_endpoint(base, &key.1, &key.2),
        }
    }

    fn namespace<'a>(&'a self, name: &str, base: &'a Cluster) -> Option<&'a Namespace> {
        match self.namespaces.get(name) {
            Some(namespace) => namespace.as_ref(),
            None => find_namespace(base, name),
        }
    }

    /// The model changes that bring `base` to this overlay, and the
    /// namespaces that may have lost their last object (to prune once the
    /// changes are applied). Namespaces come first, so that a pod or policy
    /// never arrives in a namespace the model does not know.
    fn into_changes(self, base: &Cluster) -> (Vec<Change>, BTreeSet<String>) {
        let mut maybe_unreferenced = BTreeSet::new();
        let mut needed: BTreeSet<String> = BTreeSet::new();
        sort_namespaces(
            &self.endpoints,
            |e| &e.namespace,
            &mut needed,
            &mut maybe_unreferenced,
        );
        sort_namespaces(
            &self.policies,
            |p| &p.namespace,
            &mut needed,
            &mut maybe_unreferenced,
        );
        needed.retain(|name| find_namespace(base, name).is_none());

        let mut changes = Vec::new();
        if !self.namespaces.is_empty() || !needed.is_empty() {
            let mut namespaces: BTreeMap<String, Namespace> = (base.namespaces.iter())
                .map(|n| (n.name.clone(), n.clone()))
                .collect();
            for (name, declared) in self.namespaces {
                match declared {
                    Some(namespace) => {
                        namespaces.insert(name, namespace);
                    }
                    // Implicit until the pruning finds nothing left in it.
                    None => {
                        namespaces.insert(name.clone(), Namespace::implicit(name.clone()));
                        maybe_unreferenced.insert(name);
                    }
                }
            }
            for name in needed {
                namespaces
                    .entry(name.clone())
                    .or_insert_with(|| Namespace::implicit(name));
            }
            let namespaces: Vec<Namespace> = namespaces.into_values().collect();
            if namespaces != base.namespaces {
                changes.push(Change::Namespaces(namespaces));
            }
        }
        for ((_, namespace, name), endpoint) in self.endpoints {
            let current = find_endpoint(base, &namespace, &name);
            match endpoint {
                Some(endpoint) if current != Some(&endpoint) => {
                    changes.push(Change::UpsertEndpoint(endpoint));
                }
                None if current.is_some() => changes.push(Change::RemoveEndpoint {
                    namespace,
                    name,
                    kind: EndpointKind::Pod,
                }),
                _ => {}
            }
        }
        for ((_, namespace, name), policy) in self.policies {
            let current = find_policy(base, &namespace, &name);
            match policy {
                Some(policy) if current != Some(&policy) => {
                    changes.push(Change::UpsertPolicy(policy));
                }
                None if current.is_some() => {
                    changes.push(Change::RemovePolicy { namespace, name });
                }
                _ => {}
            }
        }
        if !self.nodes.is_empty() {
            let mut nodes: BTreeMap<String, Node> = (base.nodes.iter())
                .map(|n| (n.name.clone(), n.clone()))
                .collect();
            for (name, node) in self.nodes {
                match node {
                    Some(node) => nodes.insert(name, node),
                    None => nodes.remove(&name),
                };
            }
            let nodes: Vec<Node> = nodes.into_values().collect();
            if nodes != base.nodes {
                changes.push(Change::Nodes(nodes));
            }
        }
        if !self.admin_policies.is_empty() {
            let mut policies: BTreeMap<Key, AdminPolicy> = (base.admin_policies.iter())
                .map(|p| (admin_key(p), p.clone()))
                .collect();
            for (key, policy) in self.admin_policies {
                match policy {
                    Some(policy) => policies.insert(key, policy),
                    None => policies.remove(&key),
                };
            }
            let mut policies: Vec<AdminPolicy> = policies.into_values().collect();
            policies.sort_by(AdminPolicy::cluster_order);
            if policies != base.admin_policies {
                changes.push(Change::AdminPolicies(policies));
            }
        }
        (changes, maybe_unreferenced)
    }
}

/// The namespaces of the objects an overlay keeps (`needed`) and of those
/// it removes (`maybe_unreferenced`).
fn sort_namespaces<T>(
    objects: &BTreeMap<Key, Option<T>>,
    namespace_of: impl Fn(&T) -> &String,
    needed: &mut BTreeSet<String>,
    maybe_unreferenced: &mut BTreeSet<String>,
) {
    for (key, object) in objects {
        match object {
            Some(object) => needed.insert(namespace_of(object).clone()),
            None => maybe_unreferenced.insert(key.1.clone()),
        };
    }
}

/// The namespaces without the implicit ones among `candidates` that
/// nothing is in any more; `None` if that removes none.
fn without_unreferenced(
    cluster: &Cluster,
    parked: &Parked,
    candidates: &BTreeSet<String>,
) -> Option<Vec<Namespace>> {
    let unreferenced = |name: &str| {
        let endpoints = namespace_range(&cluster.endpoints, name, |e| &e.namespace);
        let policies = namespace_range(&cluster.policies, name, |p| &p.namespace);
        endpoints.is_empty()
            && policies.is_empty()
            && !parked.has_namespace(name)
            && !cluster.services.iter().any(|s| s.namespace == name)
            && !cluster.ingresses.iter().any(|i| i.namespace == name)
    };
    let gone: BTreeSet<&str> = (candidates.iter())
        .filter(|name| find_namespace(cluster, name).is_some_and(|n| !n.declared))
        .map(String::as_str)
        .filter(|name| unreferenced(name))
        .collect();
    if gone.is_empty() {
        return None;
    }
    Some(
        (cluster.namespaces.iter())
            .filter(|n| !gone.contains(n.name.as_str()))
            .cloned()
            .collect(),
    )
}

/// The run of `items` (sorted by namespace first) in `namespace`.
fn namespace_range<'a, T>(
    items: &'a [T],
    namespace: &str,
    namespace_of: impl Fn(&T) -> &String,
) -> &'a [T] {
    let start = items.partition_point(|item| namespace_of(item).as_str() < namespace);
    let end = items.partition_point(|item| namespace_of(item).as_str() <= namespace);
    &items[start..end]
}

fn find_endpoint<'a>(cluster: &'a Cluster, namespace: &str, name: &str) -> Option<&'a Endpoint> {
    endpoint_position(cluster, namespace, name, EndpointKind::Pod)
        .map(|index| &cluster.endpoints[index])
}

fn find_policy<'a>(cluster: &'a Cluster, namespace: &str, name: &str) -> Option<&'a Policy> {
    let found = (cluster.policies)
        .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)));
    found.ok().map(|index| &cluster.policies[index])
}

fn find_admin_policy<'a>(cluster: &'a Cluster, key: &Key) -> Option<&'a AdminPolicy> {
    (cluster.admin_policies.iter()).find(|p| p.kind.as_str() == key.0 && p.name == key.2)
}

fn find_namespace<'a>(cluster: &'a Cluster, name: &str) -> Option<&'a Namespace> {
    let found = cluster
        .namespaces
        .binary_search_by(|n| n.name.as_str().cmp(name));
    found.ok().map(|index| &cluster.namespaces[index])
}

/// `ObjectRef` for a planner key (tests build changes from keys).
#[cfg(test)]
pub(crate) fn deleted(kind: &str, namespace: &str, name: &str) -> ObjectChange {
    ObjectChange::Deleted(policy_core::diagnostic::ObjectRef {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::source::Inputs;
    use policy_core::{Config, Model, PortQuery, Protocol, QueryEndpoint};
    use policy_nft::Compiler;
    use policy_nft::diff::flatten;

    const NAMESPACES: [&str; 3] = ["a", "b", "c"];
    const TEAMS: [&str; 2] = ["x", "y"];

    /// One object of the small world the events draw from.
    #[derive(Clone, Debug)]
    enum Spec {
        Namespace {
            name: usize,
            team: usize,
        },
        Pod {
            namespace: usize,
            name: usize,
            app: usize,
            node: usize,
            ip: Option<u8>,
            done: bool,
        },
        Policy {
            namespace: usize,
            name: usize,
            app: usize,
            from_app: usize,
            from_team: Option<usize>,
            port: u16,
            invalid: bool,
        },
        Node {
            name: usize,
        },
        /// An admin-tier policy: `kind` indexes the three kinds.
        Admin {
            kind: usize,
            name: usize,
            team: usize,
            action: usize,
            port: u16,
            priority: u16,
            invalid: bool,
        },
    }

    fn spec() -> impl Strategy<Value = Spec> {
        prop_oneof![
            (0..3usize, 0..2usize).prop_map(|(name, team)| Spec::Namespace { name, team }),
            (
                0..3usize,
                0..4usize,
                0..3usize,
                0..2usize,
                proptest::option::weighted(0.85, 1..6u8),
                proptest::bool::weighted(0.1)
            )
                .prop_map(|(namespace, name, app, node, ip, done)| Spec::Pod {
                    namespace,
                    name,
                    app,
                    node,
                    ip,
                    done
                }),
            (
                0..3usize,
                0..3usize,
                0..3usize,
                0..3usize,
                proptest::option::of(0..2usize),
                prop_oneof![Just(80u16), Just(5432)],
                proptest::bool::weighted(0.2)
            )
                .prop_map(
                    |(namespace, name, app, from_app, from_team, port, invalid)| Spec::Policy {
                        namespace,
                        name,
                        app,
                        from_app,
                        from_team,
                        port,
                        invalid
                    }
                ),
            (0..2usize).prop_map(|name| Spec::Node { name }),
            (
                0..3usize,
                0..2usize,
                0..2usize,
                0..3usize,
                prop_oneof![Just(80u16), Just(5432)],
                0..3u16,
                proptest::bool::weighted(0.2)
            )
                .prop_map(|(kind, name, team, action, port, priority, invalid)| {
                    Spec::Admin {
                        kind,
                        name,
                        team,
                        action,
                        port,
                        priority,
                        invalid,
                    }
                }),
        ]
    }

    fn object(spec: &Spec) -> Object {
        let app = |index: usize| ["web", "db", "cache"][index];
        match *spec {
            Spec::Namespace { name, team } => Object::Namespace(
                serde_json::from_value(json!({
                    "metadata": {"name": NAMESPACES[name], "labels": {"team": TEAMS[team]}}
                }))
                .unwrap(),
            ),
            Spec::Pod { namespace, name, app: a, node, ip, done } => {
                let mut status = json!({"phase": if done { "Succeeded" } else { "Running" }});
                if let Some(ip) = ip {
                    // Unique per pod, so two pods never share an address.
                    let address = format!("10.{}.{}.{ip}", namespace + 1, name + 1);
                    status["podIP"] = json!(address);
                    status["podIPs"] = json!([{"ip": address}]);
                    if ip % 2 == 0 {
                        // Dual-stack: each family is compiled on its own.
                        let v6 = format!("fd00::{}:{}:{ip}", namespace + 1, name + 1);
                        status["podIPs"] = json!([{"ip": address}, {"ip": v6}]);
                    }
                }
                Object::Pod(
                    serde_json::from_value(json!({
                        "metadata": {"name": format!("p{name}"), "namespace": NAMESPACES[namespace], "labels": {"app": app(a)}},
                        "spec": {"nodeName": format!("node-{node}"), "containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]},
                        "status": status,
                    }))
                    .unwrap(),
                )
            }
            Spec::Policy { namespace, name, app: a, from_app, from_team, port, invalid } => {
                let mut peer = json!({"podSelector": {"matchLabels": {"app": app(from_app)}}});
                if let Some(team) = from_team {
                    peer["namespaceSelector"] = json!({"matchLabels": {"team": TEAMS[team]}});
                }
                let mut from = vec![peer];
                if invalid {
                    from.push(json!({"ipBlock": {"cidr": "10.0.0.0/40"}}));
                }
                Object::NetworkPolicy(
                    serde_json::from_value(json!({
                        "metadata": {"name": format!("q{name}"), "namespace": NAMESPACES[namespace]},
                        "spec": {
                            "podSelector": {"matchLabels": {"app": app(a)}},
                            "ingress": [{"from": from, "ports": [{"port": port}]}],
                            "egress": [{"to": [{"podSelector": {}}]}],
                            "policyTypes": ["Ingress", "Egress"],
                        },
                    }))
                    .unwrap(),
                )
            }
            Spec::Node { name } => Object::Node(
                serde_json::from_value(json!({
                    "metadata": {"name": format!("node-{name}")},
                    "status": {"addresses": [{"type": "InternalIP", "address": format!("192.168.0.{}", name + 1)}]},
                }))
                .unwrap(),
            ),
            Spec::Admin { kind, name, team, action, port, priority, invalid } => {
                let subject = json!({"namespaces": {"matchLabels": {"team": TEAMS[team]}}});
                let from = json!([{"namespaces": {}}]);
                // Invalid: a priority the schema refuses, or a BANP not
                // named "default".
                let priority = if invalid { 5000 } else { priority };
                let v1alpha1_action = ["Allow", "Deny", "Pass"][action];
                let baseline_action = ["Allow", "Deny"][action % 2];
                let v1alpha2_action = ["Accept", "Deny", "Pass"][action];
                let tier = ["Admin", "Baseline"][name % 2];
                let object = match kind {
                    0 => json!({
                        "apiVersion": "policy.networking.k8s.io/v1alpha1",
                        "kind": "AdminNetworkPolicy",
                        "metadata": {"name": format!("anp{name}")},
                        "spec": {"priority": priority, "subject": subject, "ingress": [{
                            "action": v1alpha1_action, "from": from,
                            "ports": [{"portNumber": {"port": port}}]}]},
                    }),
                    1 => json!({
                        "apiVersion": "policy.networking.k8s.io/v1alpha1",
                        "kind": "BaselineAdminNetworkPolicy",
                        "metadata": {"name": if invalid { "other" } else { "default" }},
                        "spec": {"subject": subject, "ingress": [{
                            "action": baseline_action, "from": from,
                            "ports": [{"portNumber": {"port": port}}]}]},
                    }),
                    _ => json!({
                        "apiVersion": "policy.networking.k8s.io/v1alpha2",
                        "kind": "ClusterNetworkPolicy",
                        "metadata": {"name": format!("cnp{name}")},
                        "spec": {"tier": tier, "priority": priority,
                            "subject": subject, "ingress": [{
                            "action": v1alpha2_action, "from": from,
                            "protocols": [{"tcp": {"destinationPort": {"number": port}}}]}]},
                    }),
                };
                Object::Admin(policy_core::load::AdminJson::new(object.to_string()).unwrap())
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Event {
        Apply(Spec),
        Delete(usize),
        Relist {
            kind: usize,
            keep: Vec<bool>,
            add: Vec<Spec>,
        },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => spec().prop_map(Event::Apply),
            3 => (0..64usize).prop_map(Event::Delete),
            1 => (0..FOLLOWED_KINDS.len(), proptest::collection::vec(proptest::bool::weighted(0.7), 12), proptest::collection::vec(spec(), 0..3))
                .prop_map(|(kind, keep, add)| Event::Relist { kind, keep, add }),
        ]
    }

    fn kind_of(object: &Object) -> String {
        object.identity().unwrap().kind
    }

    /// The objects in the order the Kubernetes source sends a snapshot.
    fn snapshot(store: &BTreeMap<Key, Object>) -> Inputs {
        let mut objects = Vec::new();
        for kind in FOLLOWED_KINDS {
            objects.extend(
                store
                    .iter()
                    .filter(|(key, _)| key.0 == kind)
                    .map(|(_, o)| o.clone()),
            );
        }
        Inputs::Objects(objects.into_iter().collect())
    }

    /// Applies `event` to the source's store and says what the source sends.
    fn happen(event: &Event, store: &mut BTreeMap<Key, Object>) -> ObjectChange {
        match event {
            Event::Apply(spec) => {
                let object = object(spec);
                store.insert(object_key(&object.identity().unwrap()), object.clone());
                ObjectChange::Applied(object)
            }
            Event::Delete(index) => {
                let key = store.keys().nth(index % store.len().max(1)).cloned();
                match key {
                    Some(key) => {
                        store.remove(&key);
                        deleted(&key.0, &key.1, &key.2)
                    }
                    None => deleted("Pod", "a", "nothing"),
                }
            }
            Event::Relist { kind, keep, add } => {
                let kind = FOLLOWED_KINDS[*kind];
                let of_kind: Vec<Key> = store.keys().filter(|k| k.0 == kind).cloned().collect();
                for (index, key) in of_kind.iter().enumerate() {
                    if !keep.get(index).copied().unwrap_or(true) {
                        store.remove(key);
                    }
                }
                for spec in add {
                    let object = object(spec);
                    if kind_of(&object) == kind {
                        store.insert(object_key(&object.identity().unwrap()), object);
                    }
                }
                let objects = store
                    .iter()
                    .filter(|(k, _)| k.0 == kind)
                    .map(|(_, o)| o.clone())
                    .collect();
                ObjectChange::Relisted {
                    kind: kind.into(),
                    objects,
                }
            }
        }
    }

    fn sorted_messages(errors: &[Diagnostic]) -> Vec<String> {
        let mut messages: Vec<String> = errors
            .iter()
            .map(|d| format!("{:?} {}", d.object, d.message))
            .collect();
        messages.sort();
        messages
    }

    fn allowed_everywhere(model: &Model) -> Vec<bool> {
        let endpoints = model.cluster().endpoints.len();
        let mut verdicts = Vec::new();
        for from in 0..endpoints {
            for to in 0..endpoints {
                for port in [80, 5432] {
                    let verdict = model
                        .query(
                            QueryEndpoint::Endpoint(from),
                            QueryEndpoint::Endpoint(to),
                            &PortQuery::Number(port),
                            Protocol::Tcp,
                        )
                        .map(|answer| answer.allowed());
                    verdicts.push(verdict.unwrap_or(false));
                }
            }
        }
        verdicts
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

        /// Following changes gives what planning a snapshot after each of
        /// them gives, after every batch, in both repair modes.
        #[test]
        fn following_changes_equals_planning_snapshots(
            initial in proptest::collection::vec(spec(), 0..10),
            batches in proptest::collection::vec(proptest::collection::vec(event(), 1..4), 1..8),
            fail_closed in any::<bool>(),
        ) {
            let mode = if fail_closed { OnUnreadable::FailClosed } else { OnUnreadable::KeepLastGood };
            let mut store = BTreeMap::new();
            for spec in &initial {
                let object = object(spec);
                store.insert(object_key(&object.identity().unwrap()), object);
            }
            let mut following = Planner::new("node-0", Config::default(), mode);
            let mut snapshots = Planner::new("node-0", Config::default(), mode);
            following.plan(snapshot(&store)).unwrap();
            snapshots.plan(snapshot(&store)).unwrap();
            for batch in &batches {
                // The snapshot planner sees every state (the last good
                // version of an object depends on the states seen).
                let mut changes = Vec::new();
                let mut planned = None;
                for event in batch {
                    changes.push(happen(event, &mut store));
                    planned = Some(snapshots.plan(snapshot(&store)).unwrap());
                }
                let planned = planned.unwrap();
                let followed = following.plan_changes(changes).unwrap();
                let followed_model = following.last_good.as_ref().unwrap();
                let planned_cluster = snapshots.last_good.as_ref().unwrap().cluster();
                prop_assert_eq!(followed_model.cluster(), planned_cluster);
                prop_assert_eq!(sorted_messages(&followed.errors), sorted_messages(&planned.errors));
                prop_assert_eq!(&followed.kept_last_good, &planned.kept_last_good);
                prop_assert_eq!(&followed.failed_closed, &planned.failed_closed);
                prop_assert_eq!(&followed.without_address, &planned.without_address);
                prop_assert_eq!(followed.counts, planned.counts);
                prop_assert_eq!(followed.ruleset.element_count(), planned.ruleset.element_count());
                prop_assert_eq!(followed.ruleset.group_count(), planned.ruleset.group_count());
                // The model updated in place answers as a fresh one.
                let fresh = Model::new(planned_cluster.clone(), Config::default());
                prop_assert_eq!(allowed_everywhere(followed_model), allowed_everywhere(&fresh));
                // Both planners reuse class addresses from compile to
                // compile; a fresh compiler gathers them all again.
                let (fresh_ruleset, _) = Compiler::new(&fresh).unwrap().compile("node-0");
                prop_assert_eq!(flatten(&followed.ruleset), flatten(&fresh_ruleset));
                prop_assert_eq!(flatten(&planned.ruleset), flatten(&fresh_ruleset));
                // Both park the same policies, and parking them changes
                // nothing in the node's ruleset: the cluster with every
                // policy compiles alike.
                let parked_names = |planner: &Planner| -> Vec<(String, String)> {
                    (planner.parked.names())
                        .map(|(namespace, name)| (namespace.to_string(), name.to_string()))
                        .collect()
                };
                prop_assert_eq!(parked_names(&following), parked_names(&snapshots));
                let mut whole = planned_cluster.clone();
                whole.policies.extend(
                    parked_names(&snapshots)
                        .iter()
                        .map(|(namespace, name)| snapshots.parked.get(namespace, name).unwrap()),
                );
                whole.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
                prop_assert_eq!(followed.counts.policies, whole.policies.len());
                let whole = Model::new(whole, Config::default());
                let (whole_ruleset, _) = Compiler::new(&whole).unwrap().compile("node-0");
                prop_assert_eq!(flatten(&followed.ruleset), flatten(&whole_ruleset));
            }
        }
    }

    #[test]
    fn changes_before_a_snapshot_or_of_other_kinds_are_refused() {
        let mut planner = Planner::new("node-0", Config::default(), OnUnreadable::KeepLastGood);
        let error = planner
            .plan_changes(vec![deleted("Pod", "a", "p0")])
            .unwrap_err();
        assert!(
            error.0.contains("before the source's first snapshot"),
            "{error}"
        );
        planner.plan(Inputs::Objects(Default::default())).unwrap();
        let error = planner
            .plan_changes(vec![deleted("Deployment", "a", "d")])
            .unwrap_err();
        assert!(error.0.contains("Deployment"), "{error}");
        // Refused without losing the last good state.
        assert!(
            planner
                .plan_changes(vec![deleted("Pod", "a", "p0")])
                .is_ok()
        );
    }
}
