//! From a source snapshot to this node's ruleset, without I/O.
//!
//! The [`Planner`] loads a snapshot, repairs what could not be read from the
//! last good state, builds the model and compiles this node's ruleset.
//!
//! **Bad input never opens traffic.** An object that could not be read is
//! either left out by the loader (a NetworkPolicy the API server would
//! reject; every document after a syntax error in a file) or read without
//! the fields that failed (other kinds). Either can open traffic: a missing
//! policy no longer isolates its pods, and a pod read without its labels no
//! longer matches the policies that isolated it. So for every object with an
//! error, and for every object of a file with a syntax error that is now
//! missing, the planner uses the object's last good version instead
//! ([`OnUnreadable::KeepLastGood`]). With [`OnUnreadable::FailClosed`], an
//! unreadable NetworkPolicy keeps isolating the pods it selected but allows
//! nothing any more; one never read successfully isolates its whole
//! namespace in both directions. Either way the error is reported, and the
//! repair lasts until the object reads cleanly or is deleted.
//!
//! Admin-tier policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//! ClusterNetworkPolicy) are repaired as pods and namespaces are, in both
//! modes: an unreadable one is enforced in its last good version; one never
//! read successfully is what the loader makes of it (usually nothing: the
//! loader leaves out what the API server would reject).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use policy_core::admin::AdminPolicy;
use policy_core::cluster::{Cluster, EndpointId, EndpointKind};
use policy_core::diagnostic::{ObjectRef, SourceLocation};
use policy_core::model::UpdateStats;
use policy_core::selector::Selector;
use policy_core::{
    Config, Diagnostic, DiagnosticKind, LoadedFile, Loader, Model, Policy, Severity,
    cluster::Endpoint, cluster::Namespace,
};
use policy_nft::compile::is_dual_stack;
use policy_nft::{ClassAddresses, Compiler, NodeRuleset};

use crate::source::{Inputs, SourceFile};

mod changes;
mod parked;

use parked::Parked;

/// What to enforce for an isolated pod whose NetworkPolicy became unreadable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUnreadable {
    /// Keep enforcing the policy's last good version (the default).
    #[default]
    KeepLastGood,
    /// Keep isolating the pods the last good version selected, and allow
    /// nothing through that policy; isolate the whole namespace for a policy
    /// that was never read successfully.
    FailClosed,
}

impl OnUnreadable {
    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnreadable::KeepLastGood => "keep-last-good",
            OnUnreadable::FailClosed => "fail-closed",
        }
    }
}

impl fmt::Display for OnUnreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnUnreadable {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "keep-last-good" => Ok(OnUnreadable::KeepLastGood),
            "fail-closed" => Ok(OnUnreadable::FailClosed),
            other => Err(format!(
                "unknown value `{other}`: expected keep-last-good or fail-closed"
            )),
        }
    }
}

/// The result of planning one snapshot.
#[derive(Debug)]
pub struct Plan {
    /// This node's ruleset.
    pub ruleset: NodeRuleset,
    /// Error diagnostics of the snapshot (warnings are dropped).
    pub errors: Vec<Diagnostic>,
    /// Objects replaced by their last good version.
    pub kept_last_good: Vec<ObjectRef>,
    /// NetworkPolicies enforced fail-closed.
    pub failed_closed: Vec<ObjectRef>,
    /// Local pods that cannot be enforced (no IP yet).
    pub without_address: Vec<String>,
    /// Peer addresses shared by pods with different permissions, enforced
    /// fail-closed (see [`policy_nft::Unenforceable::shared_addresses`]).
    pub shared_addresses: Vec<std::net::IpAddr>,
    /// Pods, policies and namespaces in the model.
    pub counts: Counts,
    /// How the model followed the snapshot: `None` when it was built from
    /// scratch (the first snapshot), else what [`Model::update_to`] did.
    pub model_update: Option<UpdateStats>,
    /// Time spent building or updating the model.
    pub model_time: std::time::Duration,
    /// Files parsed for this plan (the others of a snapshot of files were
    /// unchanged, and what was read from them before was reused).
    pub files_parsed: usize,
}

/// Sizes of the cluster a plan was made from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Endpoints (pods, and workloads standing in for pods).
    pub endpoints: usize,
    /// NetworkPolicies.
    pub policies: usize,
    /// Namespaces.
    pub namespaces: usize,
    /// Admin-tier policies (ANP, BANP, CNP).
    pub admin_policies: usize,
}

/// Why a snapshot could not be planned; the agent keeps what it applied.
#[derive(Debug)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// Turns snapshots into rulesets for one node, remembering the last good
/// cluster. See the module documentation.
pub struct Planner {
    node: String,
    config: Config,
    on_unreadable: OnUnreadable,
    /// The model of the last good snapshot, which owns its cluster (kept
    /// whole rather than cloning a 10,000-pod cluster on every snapshot).
    last_good: Option<Model>,
    /// The error diagnostics of every object that currently reads with
    /// errors, so that following changes ([`Planner::plan_changes`]) can
    /// report all of them, not only the latest.
    unreadable: BTreeMap<Key, Vec<Diagnostic>>,
    /// Errors of the last snapshot that belong to no object (syntax).
    unattributed_errors: Vec<Diagnostic>,
    /// Objects enforced in a repaired form, and which.
    repaired: BTreeMap<Key, Repair>,
    /// Each file of the last snapshot of files, with what was read from it.
    files_read: BTreeMap<String, (Arc<str>, LoadedFile)>,
    /// The addresses of `last_good`'s classes, gathered by earlier
    /// compiles; kept while the model changes in place.
    class_addresses: ClassAddresses,
    /// What a compile would otherwise learn by looking at every endpoint of
    /// `last_good`: its endpoints on this node, and how many endpoints are
    /// dual-stack. Counted on a snapshot, then kept up to date from each
    /// change (at 100,000 pods the two looks cost more than the rest of
    /// a change's compile).
    on_node: BTreeSet<EndpointKey>,
    dual_stack_endpoints: usize,
    /// The policies of namespaces with no endpoint on this node, which
    /// cannot change its ruleset: kept out of the model (see [`parked`]).
    parked: Parked,
}

/// Runs `work` on a new thread and waits for it (see
/// [`Planner::compact_model`]); runs it here if no thread can be started.
fn on_own_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let mut work = Some(work);
    let done = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("netpol-compact".into())
            .spawn_scoped(scope, || work.take().map(|work| work()));
        match worker {
            Ok(worker) => (worker.join()).unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        }
    });
    match done {
        Some(done) => done,
        None => (work.take().expect("work not run yet"))(),
    }
}

/// An endpoint's place in [`Cluster::endpoints`]' order.
type EndpointKey = (String, String, EndpointKind);

/// The position of the endpoint `(namespace, name, kind)` in `cluster`.
fn endpoint_position(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    kind: EndpointKind,
) -> Option<EndpointId> {
    (cluster.endpoints)
        .binary_search_by(|e| {
            (e.namespace.as_str(), e.name.as_str(), e.kind).cmp(&(namespace, name, kind))
        })
        .ok()
}

fn endpoint_place(endpoint: &Endpoint) -> EndpointKey {
    (
        endpoint.namespace.clone(),
        endpoint.name.clone(),
        endpoint.kind,
    )
}

/// How an unreadable object is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repair {
    KeptLastGood,
    FailedClosed,
}

/// `(kind, namespace, name)`.
type Key = (String, String, String);

fn key(kind: &str, namespace: &str, name: &str) -> Key {
    (kind.to_owned(), namespace.to_owned(), name.to_owned())
}

fn object_key(object: &ObjectRef) -> Key {
    key(&object.kind, &object.namespace, &object.name)
}

fn endpoint_key(endpoint: &Endpoint) -> Key {
    key(endpoint.kind.as_str(), &endpoint.namespace, &endpoint.name)
}

fn policy_key(policy: &Policy) -> Key {
    key("NetworkPolicy", &policy.namespace, &policy.name)
}

fn namespace_key(namespace: &Namespace) -> Key {
    key("Namespace", "", &namespace.name)
}

fn admin_key(policy: &AdminPolicy) -> Key {
    key(policy.kind.as_str(), "", &policy.name)
}

fn key_ref((kind, namespace, name): &Key) -> ObjectRef {
    ObjectRef {
        kind: kind.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
    }
}

fn in_file(source: &Option<SourceLocation>, files: &BTreeSet<&str>) -> bool {
    source
        .as_ref()
        .is_some_and(|source| files.contains(&*source.file))
}

impl Planner {
    /// A planner for `node`.
    pub fn new(node: impl Into<String>, config: Config, on_unreadable: OnUnreadable) -> Self {
        Planner {
            node: node.into(),
            config,
            on_unreadable,
            last_good: None,
            unreadable: BTreeMap::new(),
            unattributed_errors: Vec::new(),
            repaired: BTreeMap::new(),
            files_read: BTreeMap::new(),
            class_addresses: ClassAddresses::default(),
            on_node: BTreeSet::new(),
            dual_stack_endpoints: 0,
            parked: Parked::default(),
        }
    }

    /// The namespaces with an endpoint on this node: their policies are in
    /// the model, the others' are parked.
    fn local_namespaces(&self) -> BTreeSet<String> {
        (self.on_node.iter())
            .map(|(namespace, _, _)| namespace.clone())
            .collect()
    }

    /// Counts what [`Planner::on_node`] and the dual-stack count say from
    /// every endpoint of `cluster`.
    fn count_endpoints(&mut self, cluster: &Cluster) {
        self.on_node = (cluster.endpoints.iter())
            .filter(|endpoint| endpoint.node.as_deref() == Some(self.node.as_str()))
            .map(endpoint_place)
            .collect();
        self.dual_stack_endpoints = (cluster.endpoints.iter())
            .filter(|endpoint| is_dual_stack(endpoint))
            .count();
    }

    /// Follows one endpoint's change in what the compile is told:
    /// `before` and `after` are its versions (`None`: absent).
    fn count_endpoint_change(&mut self, before: Option<&Endpoint>, after: Option<&Endpoint>) {
        if let Some(before) = before {
            self.dual_stack_endpoints -= usize::from(is_dual_stack(before));
            self.on_node.remove(&endpoint_place(before));
        }
        if let Some(after) = after {
            self.dual_stack_endpoints += usize::from(is_dual_stack(after));
            if after.node.as_deref() == Some(self.node.as_str()) {
                self.on_node.insert(endpoint_place(after));
            }
        }
    }

    /// The model of the last good state, once there is one.
    pub fn model(&self) -> Option<&Model> {
        self.last_good.as_ref()
    }

    /// The node this planner compiles for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Plans one snapshot. On success the repaired cluster becomes the last
    /// good state.
    pub fn plan(&mut self, inputs: Inputs) -> Result<Plan, PlanError> {
        let mut loader = Loader::new();
        let mut files_parsed = 0;
        match inputs {
            Inputs::Files(files) => (loader, files_parsed) = self.load_files(&files),
            Inputs::Objects(objects) => {
                // One typed object at a time, straight into the loader.
                for object in objects.unpack_each() {
                    loader.add(object.map_err(|e| PlanError(e.to_string()))?);
                }
            }
        }
        let loaded = loader.finish();
        let errors: Vec<Diagnostic> = loaded
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let mut cluster = loaded.cluster;
        // Without errors there is nothing to repair (the common case).
        let repairs = if errors.is_empty() {
            Repairs::default()
        } else {
            self.repair(&mut cluster, &errors)
        };

        let counts = Counts {
            endpoints: cluster.endpoints.len(),
            policies: cluster.policies.len(),
            namespaces: cluster.namespaces.len(),
            admin_policies: cluster.admin_policies.len(),
        };
        // Only the policies of the node's namespaces go into the model.
        self.count_endpoints(&cluster);
        let local = self.local_namespaces();
        self.parked.clear();
        let parked = &mut self.parked;
        cluster.policies.retain(|policy| {
            let keep = local.contains(policy.namespace.as_str());
            if !keep {
                parked.insert(policy);
            }
            keep
        });
        // Most policies are parked at scale: give back the room they took.
        cluster.policies.shrink_to_fit();
        // The last model follows the snapshot in place: a pod or policy
        // event costs what it touches, not a rebuild (Model::apply).
        let started = std::time::Instant::now();
        let (model, model_update) = match self.last_good.take() {
            Some(mut model) => {
                let stats = model.update_to(cluster);
                (model, Some(stats))
            }
            None => (self.compact_model(cluster), None),
        };
        let model_time = started.elapsed();
        self.unreadable.clear();
        self.unattributed_errors.clear();
        for error in &errors {
            match &error.object {
                Some(object) => self
                    .unreadable
                    .entry(object_key(object))
                    .or_default()
                    .push(error.clone()),
                None => self.unattributed_errors.push(error.clone()),
            }
        }
        self.repaired = (repairs.kept_last_good.iter())
            .map(|o| (object_key(o), Repair::KeptLastGood))
            .chain((repairs.failed_closed.iter()).map(|o| (object_key(o), Repair::FailedClosed)))
            .collect();
        let plan = self.compile(model, model_update, model_time, counts, errors, repairs)?;
        Ok(Plan {
            files_parsed,
            ..plan
        })
    }

    /// A model of `cluster`, built from a copy of it: the copy (and one of
    /// the parked policies) is made on a thread of its own, the originals
    /// are dropped here, and the model is built on another new thread.
    ///
    /// Loading a snapshot interleaves what stays (endpoints, the policies
    /// kept, the parked encodings) with what is freed as it goes (typed
    /// objects, the loader's scratch, the loaded form of the parked
    /// policies), so afterwards most of the allocator's pages are partly
    /// free, each still holding something kept, and none can be returned.
    /// A new thread allocates from pages of its own (mimalloc's
    /// thread-local heaps, glibc's arenas): the copies are packed densely,
    /// and the originals' pages empty out and go back to the system at the
    /// next release of freed memory. At 100k pods this keeps about 50 MiB
    /// less resident after the initial sync (BENCHMARKS.md, "The agent's
    /// memory at 100k"). Only a snapshot without a model to update pays for
    /// the copy; copying before building keeps the peak down (the original
    /// is gone before the model's scratch is allocated).
    fn compact_model(&mut self, cluster: Cluster) -> Model {
        let parked = &self.parked;
        let (copy, parked) = on_own_thread(|| (cluster.clone(), parked.clone()));
        drop(cluster);
        self.parked = parked;
        let config = self.config;
        on_own_thread(move || Model::new(copy, config))
    }

    /// Compiles the node's ruleset from `model`, which becomes the last
    /// good state.
    fn compile(
        &mut self,
        model: Model,
        model_update: Option<UpdateStats>,
        model_time: std::time::Duration,
        counts: Counts,
        errors: Vec<Diagnostic>,
        repairs: Repairs,
    ) -> Result<Plan, PlanError> {
        let mut known = std::mem::take(&mut self.class_addresses);
        match &model_update {
            Some(update) if update.rebuilt.is_none() => known.forget(&update.touched_classes),
            _ => known.clear(),
        }
        let cluster = model.cluster();
        let local: Vec<EndpointId> = (self.on_node.iter())
            .filter_map(|(namespace, name, kind)| {
                endpoint_position(cluster, namespace, name, *kind)
            })
            .collect();
        debug_assert_eq!(
            local,
            (cluster.endpoints.iter().enumerate())
                .filter(|(_, e)| e.node.as_deref() == Some(self.node.as_str()))
                .map(|(id, _)| id)
                .collect::<Vec<_>>(),
            "the endpoints on the node, as followed"
        );
        debug_assert_eq!(
            self.dual_stack_endpoints,
            cluster
                .endpoints
                .iter()
                .filter(|e| is_dual_stack(e))
                .count(),
            "the dual-stack endpoints, as followed"
        );
        let dual_stack = Some(self.dual_stack_endpoints > 0);
        let compiled = Compiler::with_class_addresses(&model, known, dual_stack).map(|compiler| {
            let compiled = compiler.compile_endpoints(&self.node, &local);
            self.class_addresses = compiler.into_class_addresses();
            compiled
        });
        self.last_good = Some(model);
        let (ruleset, unenforceable) = compiled.map_err(|e| PlanError(e.to_string()))?;
        Ok(Plan {
            ruleset,
            errors,
            kept_last_good: repairs.kept_last_good,
            failed_closed: repairs.failed_closed,
            without_address: unenforceable.without_address,
            shared_addresses: unenforceable.shared_addresses,
            counts,
            model_update,
            model_time,
            files_parsed: 0,
        })
    }

    /// Loads files, parsing only those whose text is not the one read last
    /// time (see [`Loader::read_file`]); also says how many were parsed.
    fn load_files(&mut self, files: &[SourceFile]) -> (Loader, usize) {
        let mut parsed = 0;
        let mut previous = std::mem::take(&mut self.files_read);
        let mut loader = Loader::new();
        let mut duplicate = None;
        for file in files {
            let read = match previous.remove(&file.path) {
                Some((text, read)) if Arc::ptr_eq(&text, &file.text) || text == file.text => {
                    (text, read)
                }
                _ => {
                    parsed += 1;
                    (file.text.clone(), Loader::read_file(&file.path, &file.text))
                }
            };
            if duplicate.is_none() {
                duplicate = loader.add_file(&read.1).err();
            }
            self.files_read.insert(file.path.clone(), read);
        }
        if duplicate.is_some() {
            // Two files hold one object: load the texts in order, so the
            // duplicate is reported where it occurs, as in a first load.
            loader = Loader::new();
            for file in files {
                loader.load_str(&file.path, &file.text);
            }
            parsed = files.len();
        }
        (loader, parsed)
    }

    /// Replaces unreadable objects by their last good version (or, for
    /// policies in fail-closed mode, by a version that allows nothing).
    fn repair(&self, cluster: &mut Cluster, errors: &[Diagnostic]) -> Repairs {
        let unreadable: BTreeSet<Key> = errors
            .iter()
            .filter_map(|d| d.object.as_ref().map(object_key))
            .collect();
        // A syntax error hides the rest of its file: whatever came from
        // there before and is missing now is unreadable too.
        let broken_files: BTreeSet<&str> = errors
            .iter()
            .filter(|d| d.kind == DiagnosticKind::Syntax || d.object.is_none())
            .filter_map(|d| d.source.as_ref().map(|s| &*s.file))
            .collect();
        let mut repairs = Repairs::default();
        let fail_closed = self.on_unreadable == OnUnreadable::FailClosed;
        let empty = Cluster::default();
        let last = self.last_good.as_ref().map_or(&empty, Model::cluster);

        // Policies.
        let mut policies: BTreeMap<Key, Policy> = std::mem::take(&mut cluster.policies)
            .into_iter()
            .map(|p| (policy_key(&p), p))
            .collect();
        // The last good versions of parked policies are parked: decode
        // those of unreadable policies, or all of them when a syntax error
        // may hide any (rare: only files have syntax errors).
        let parked_last: Vec<Policy> = if broken_files.is_empty() {
            (unreadable.iter())
                .filter(|key| key.0 == "NetworkPolicy")
                .filter_map(|key| self.parked.get(&key.1, &key.2))
                .collect()
        } else {
            (self.parked.names())
                .filter_map(|(namespace, name)| self.parked.get(namespace, name))
                .collect()
        };
        let last_policies: BTreeMap<Key, &Policy> = (last.policies.iter())
            .chain(&parked_last)
            .map(|p| (policy_key(p), p))
            .collect();
        let replacement =
            |key: &Key, last: Option<&Policy>, repairs: &mut Repairs| match (last, fail_closed) {
                (Some(last), false) => {
                    repairs.kept_last_good.push(key_ref(key));
                    Some(last.clone())
                }
                (Some(last), true) => {
                    repairs.failed_closed.push(key_ref(key));
                    Some(allowing_nothing(last))
                }
                (None, true) => {
                    repairs.failed_closed.push(key_ref(key));
                    Some(isolating_namespace(&key.1, &key.2))
                }
                (None, false) => None,
            };
        for key in unreadable.iter().filter(|k| k.0 == "NetworkPolicy") {
            if let Some(policy) = replacement(key, last_policies.get(key).copied(), &mut repairs) {
                policies.insert(key.clone(), policy);
            }
        }
        for (key, policy) in &last_policies {
            if !unreadable.contains(key)
                && !policies.contains_key(key)
                && in_file(&policy.source, &broken_files)
                && let Some(policy) = replacement(key, Some(policy), &mut repairs)
            {
                policies.insert(key.clone(), policy);
            }
        }
        cluster.policies = policies.into_values().collect();

        // Endpoints and namespaces: the last good version, if there is one.
        let mut endpoints: BTreeMap<Key, Endpoint> = std::mem::take(&mut cluster.endpoints)
            .into_iter()
            .map(|e| (endpoint_key(&e), e))
            .collect();
        for endpoint in &last.endpoints {
            let key = endpoint_key(endpoint);
            let broken = unreadable.contains(&key)
                || (!endpoints.contains_key(&key) && in_file(&endpoint.source, &broken_files));
            if broken {
                repairs.kept_last_good.push(key_ref(&key));
                endpoints.insert(key, endpoint.clone());
            }
        }
        cluster.endpoints = endpoints.into_values().collect();
        let mut namespaces: BTreeMap<Key, Namespace> = std::mem::take(&mut cluster.namespaces)
            .into_iter()
            .map(|n| (namespace_key(&n), n))
            .collect();
        for namespace in &last.namespaces {
            let key = namespace_key(namespace);
            let present_declared = namespaces.get(&key).is_some_and(|n| n.declared);
            let broken = namespace.declared
                && (unreadable.contains(&key)
                    || (!present_declared && in_file(&namespace.source, &broken_files)));
            if broken {
                repairs.kept_last_good.push(key_ref(&key));
                namespaces.insert(key, namespace.clone());
            }
        }
        // A repaired policy or pod may live in a namespace nothing else
        // mentions any more.
        let mentioned: Vec<String> = cluster
            .policies
            .iter()
            .map(|p| p.namespace.clone())
            .chain(cluster.endpoints.iter().map(|e| e.namespace.clone()))
            .collect();
        for name in mentioned {
            namespaces
                .entry(key("Namespace", "", &name))
                .or_insert_with(|| Namespace::implicit(name));
        }
        cluster.namespaces = namespaces.into_values().collect();

        // Admin-tier policies: the last good version, in both modes.
        let mut admin_policies: BTreeMap<Key, AdminPolicy> =
            (std::mem::take(&mut cluster.admin_policies).into_iter())
                .map(|p| (admin_key(&p), p))
                .collect();
        for policy in &last.admin_policies {
            let key = admin_key(policy);
            let broken = unreadable.contains(&key)
                || (!admin_policies.contains_key(&key) && in_file(&policy.source, &broken_files));
            if broken {
                repairs.kept_last_good.push(key_ref(&key));
                admin_policies.insert(key, policy.clone());
            }
        }
        cluster.admin_policies = admin_policies.into_values().collect();
        // The cluster's documented orders.
        cluster.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        cluster
            .endpoints
            .sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
        cluster
            .policies
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        cluster.admin_policies.sort_by(AdminPolicy::cluster_order);
        repairs.kept_last_good.sort();
        repairs.kept_last_good.dedup();
        repairs.failed_closed.sort();
        repairs.failed_closed.dedup();
        repairs
    }
}

#[derive(Default)]
struct Repairs {
    kept_last_good: Vec<ObjectRef>,
    failed_closed: Vec<ObjectRef>,
}

/// The same policy without its rules: it still isolates the pods it
/// selects, in the directions it covers, and allows nothing.
fn allowing_nothing(policy: &Policy) -> Policy {
    let mut policy = policy.clone();
    policy.ingress = policy.ingress.as_ref().map(|_| Vec::new());
    policy.egress = policy.egress.as_ref().map(|_| Vec::new());
    policy.ignored_rules = [0, 0];
    policy
}

/// A policy that isolates every pod of `namespace` in both directions and
/// allows nothing: all an unreadable policy could have done at most, since
/// a policy selects pods of its own namespace only.
fn isolating_namespace(namespace: &str, name: &str) -> Policy {
    Policy {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        pod_selector: Selector::everything(),
        ingress: Some(Vec::new()),
        egress: Some(Vec::new()),
        policy_types_explicit: true,
        ignored_rules: [0, 0],
        field_sources: Vec::new(),
        source: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::source::SourceFile;
    use policy_core::model::RebuildReason;
    use policy_core::{Direction, PortQuery, Protocol, QueryEndpoint};

    /// Two pods on node-1: `web` (10.0.0.1) and `db` (10.0.0.2) in `shop`.
    pub(crate) const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2}
"#;

    const DB_ONLY_FROM_WEB: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
"#;

    const DB_INVALID_CIDR: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/40}}]}]
"#;

    const SYNTAX_ERROR: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop\n";

    /// [`PODS`] and `policies`, as two files.
    pub(crate) fn files(policies: &str) -> Inputs {
        Inputs::Files(vec![
            SourceFile {
                path: "pods.yaml".into(),
                text: PODS.into(),
            },
            SourceFile {
                path: "policies.yaml".into(),
                text: policies.into(),
            },
        ])
    }

    /// Whether the last good cluster of `planner` lets `from` reach `to`.
    fn allows(planner: &Planner, from: &str, to: &str, port: u16) -> bool {
        let cluster = planner
            .last_good
            .as_ref()
            .expect("a last good model")
            .cluster()
            .clone();
        let model = Model::new(cluster, Config::default());
        let end =
            |name: &str| QueryEndpoint::Endpoint(model.cluster().find_endpoint(name).unwrap());
        model
            .query(end(from), end(to), &PortQuery::Number(port), Protocol::Tcp)
            .unwrap()
            .allowed()
    }

    fn planner(mode: OnUnreadable) -> Planner {
        Planner::new("node-1", Config::default(), mode)
    }

    /// The compaction's helper runs the work on a thread of its own, hands
    /// back what it made, and passes a panic on.
    #[test]
    fn work_runs_on_its_own_thread() {
        let here = std::thread::current().id();
        let (there, name) = on_own_thread(|| {
            let thread = std::thread::current();
            (thread.id(), thread.name().map(str::to_owned))
        });
        assert_ne!(there, here);
        assert_eq!(name.as_deref(), Some("netpol-compact"));
        let panicked = std::panic::catch_unwind(|| on_own_thread(|| panic!("in the work")));
        assert!(panicked.is_err());
    }

    /// The first snapshot's model is built from a copy (see
    /// `compact_model`), and answers as the cluster says, with the parked
    /// policies kept.
    #[test]
    fn the_compacted_first_model_is_the_snapshot() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let elsewhere = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: far}\nspec: {podSelector: {}}\n";
        let plan = planner
            .plan(files(&format!("{DB_ONLY_FROM_WEB}{elsewhere}")))
            .unwrap();
        assert_eq!(plan.model_update, None);
        assert_eq!(planner.parked.len(), 1);
        assert!(planner.parked.has_namespace("far"));
        let model = planner.last_good.as_ref().unwrap();
        assert_eq!(model.cluster().endpoints.len(), 2);
        assert_eq!(model.cluster().policies.len(), 1);
        let end =
            |name: &str| QueryEndpoint::Endpoint(model.cluster().find_endpoint(name).unwrap());
        let allowed = |from, to, port| {
            model
                .query(end(from), end(to), &PortQuery::Number(port), Protocol::Tcp)
                .unwrap()
                .allowed()
        };
        assert!(allowed("shop/web", "shop/db", 5432));
        assert!(!allowed("shop/web", "shop/db", 80));
    }

    #[test]
    fn later_snapshots_update_the_model_in_place() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let first = planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        assert_eq!(first.model_update, None, "the first model is built");
        assert!(allows(&planner, "shop/web", "shop/db", 5432));
        let looser = DB_ONLY_FROM_WEB.replace("port: 5432", "port: 6432");
        let second = planner.plan(files(&looser)).unwrap();
        let update = second.model_update.expect("updated in place");
        assert_eq!((update.policies, update.rebuilt), (1, None));
        // The kept model itself answers for the new snapshot.
        let model = planner.last_good.as_ref().unwrap();
        let end =
            |name: &str| QueryEndpoint::Endpoint(model.cluster().find_endpoint(name).unwrap());
        let allowed = |port| {
            model
                .query(
                    end("shop/web"),
                    end("shop/db"),
                    &PortQuery::Number(port),
                    Protocol::Tcp,
                )
                .unwrap()
                .allowed()
        };
        assert!(!allowed(5432));
        assert!(allowed(6432));
        assert_eq!(second.ruleset.isolated_addresses(Direction::Ingress), 1);
    }

    #[test]
    fn a_valid_snapshot_is_planned_without_repairs() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let plan = planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        assert!(plan.errors.is_empty());
        assert!(plan.kept_last_good.is_empty() && plan.failed_closed.is_empty());
        assert_eq!(plan.counts.endpoints, 2);
        assert_eq!(plan.counts.policies, 1);
        assert_eq!(
            plan.ruleset.isolated_addresses(Direction::Ingress),
            1,
            "db is isolated"
        );
        assert!(allows(&planner, "shop/web", "shop/db", 5432));
        assert!(!allows(&planner, "shop/web", "shop/db", 80));
    }

    #[test]
    fn an_invalid_policy_keeps_its_last_good_version() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let good = planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        let plan = planner.plan(files(DB_INVALID_CIDR)).unwrap();
        assert!(!plan.errors.is_empty());
        assert_eq!(
            plan.kept_last_good,
            vec![ObjectRef {
                kind: "NetworkPolicy".into(),
                namespace: "shop".into(),
                name: "db".into()
            }]
        );
        assert_eq!(plan.ruleset, good.ruleset);
        assert!(allows(&planner, "shop/web", "shop/db", 5432));
        assert!(!allows(&planner, "shop/web", "shop/db", 80));
    }

    #[test]
    fn a_syntax_error_keeps_every_object_the_file_held() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let good = planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        let plan = planner.plan(files(SYNTAX_ERROR)).unwrap();
        assert!(!plan.errors.is_empty());
        assert_eq!(plan.kept_last_good.len(), 1);
        assert_eq!(plan.ruleset, good.ruleset);
        // Broken pods file: the pods stay too.
        let broken_pods = Inputs::Files(vec![
            SourceFile {
                path: "pods.yaml".into(),
                text: "kind: [".into(),
            },
            SourceFile {
                path: "policies.yaml".into(),
                text: DB_ONLY_FROM_WEB.into(),
            },
        ]);
        let plan = planner.plan(broken_pods).unwrap();
        assert_eq!(plan.kept_last_good.len(), 2, "{:?}", plan.kept_last_good);
        assert_eq!(plan.ruleset, good.ruleset);
    }

    #[test]
    fn the_repair_lasts_until_the_object_reads_cleanly_or_is_deleted() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        planner.plan(files(DB_INVALID_CIDR)).unwrap();
        let plan = planner.plan(files(DB_INVALID_CIDR)).unwrap();
        assert_eq!(plan.kept_last_good.len(), 1, "still repaired a second time");
        // Deleted: the policy goes, and db is open again.
        let plan = planner.plan(files("")).unwrap();
        assert!(plan.errors.is_empty() && plan.kept_last_good.is_empty());
        assert_eq!(plan.ruleset.isolated_addresses(Direction::Ingress), 0);
        assert!(allows(&planner, "shop/web", "shop/db", 80));
        // Invalid from the start: nothing to keep, so nothing is enforced.
        let plan = planner.plan(files(DB_INVALID_CIDR)).unwrap();
        assert!(!plan.errors.is_empty() && plan.kept_last_good.is_empty());
        assert_eq!(plan.ruleset.isolated_addresses(Direction::Ingress), 0);
    }

    #[test]
    fn fail_closed_isolates_and_allows_nothing() {
        let mut planner = planner(OnUnreadable::FailClosed);
        planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        let plan = planner.plan(files(DB_INVALID_CIDR)).unwrap();
        assert_eq!(plan.failed_closed.len(), 1);
        assert!(plan.kept_last_good.is_empty());
        assert!(!allows(&planner, "shop/web", "shop/db", 5432));
        assert!(
            allows(&planner, "shop/db", "shop/web", 80),
            "web stays open"
        );

        // Never read successfully: the whole namespace is isolated.
        let mut planner = self::planner(OnUnreadable::FailClosed);
        let plan = planner.plan(files(DB_INVALID_CIDR)).unwrap();
        assert_eq!(plan.failed_closed.len(), 1);
        assert!(!allows(&planner, "shop/web", "shop/db", 5432));
        assert!(!allows(&planner, "shop/db", "shop/web", 80));
        assert_eq!(plan.ruleset.isolated_addresses(Direction::Ingress), 2);
        assert_eq!(plan.ruleset.isolated_addresses(Direction::Egress), 2);
    }

    #[test]
    fn only_changed_files_are_parsed_again() {
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let first = planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        assert_eq!(first.files_parsed, 2);
        let Inputs::Files(mut changed) = files(DB_ONLY_FROM_WEB) else {
            unreachable!()
        };
        changed[1].text = DB_INVALID_CIDR
            .replace("10.0.0.0/40", "192.168.0.0/24")
            .into();
        let second = planner.plan(Inputs::Files(changed.clone())).unwrap();
        assert_eq!(second.files_parsed, 1, "the pods' file is unchanged");
        let fresh = self::planner(OnUnreadable::KeepLastGood)
            .plan(Inputs::Files(changed.clone()))
            .unwrap();
        assert_eq!(second.ruleset, fresh.ruleset);
        assert!(!allows(&planner, "shop/web", "shop/db", 5432));

        // The same object in two files: every file is loaded in order, so
        // the duplicate is reported where it occurs.
        changed.push(SourceFile {
            path: "again.yaml".into(),
            text: PODS.into(),
        });
        let third = planner.plan(Inputs::Files(changed.clone())).unwrap();
        assert_eq!(third.files_parsed, 3);
        let fresh = self::planner(OnUnreadable::KeepLastGood)
            .plan(Inputs::Files(changed))
            .unwrap();
        assert_eq!(third.errors, fresh.errors);
        assert!(
            third
                .errors
                .iter()
                .any(|e| e.kind == DiagnosticKind::Duplicate)
        );
    }

    /// web → db on 5432 denied by the Admin tier, before the NetworkPolicy.
    const GUARD_DB: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: guard-db}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]
"#;

    /// Admin-tier policies in files reach the model (a change rebuilds it);
    /// one that becomes invalid, or whose file stops parsing, keeps its
    /// last good version in both modes; deleted, it goes.
    #[test]
    fn admin_policies_in_files_reach_the_model_and_keep_their_last_good_version() {
        for mode in [OnUnreadable::KeepLastGood, OnUnreadable::FailClosed] {
            let mut planner = planner(mode);
            planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
            assert!(allows(&planner, "shop/web", "shop/db", 5432));
            let with_admin = format!("{DB_ONLY_FROM_WEB}---{GUARD_DB}");
            let plan = planner.plan(files(&with_admin)).unwrap();
            assert!(plan.errors.is_empty(), "{:?}", plan.errors);
            assert_eq!(plan.counts.admin_policies, 1);
            let rebuilt = plan.model_update.and_then(|update| update.rebuilt);
            assert_eq!(rebuilt, Some(RebuildReason::AdminPolicies));
            assert!(!allows(&planner, "shop/web", "shop/db", 5432), "{mode}");

            let guard_db = ObjectRef {
                kind: "AdminNetworkPolicy".into(),
                namespace: String::new(),
                name: "guard-db".into(),
            };
            let invalid = with_admin.replace("priority: 10", "priority: 5000");
            let plan = planner.plan(files(&invalid)).unwrap();
            assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
            assert_eq!(plan.errors[0].object.as_ref(), Some(&guard_db));
            assert_eq!(
                plan.kept_last_good,
                std::slice::from_ref(&guard_db),
                "{mode}"
            );
            assert!(!allows(&planner, "shop/web", "shop/db", 5432), "{mode}");
            let plan = planner.plan(files(SYNTAX_ERROR)).unwrap();
            assert!(plan.kept_last_good.contains(&guard_db), "{mode}");
            assert!(!allows(&planner, "shop/web", "shop/db", 5432), "{mode}");

            let plan = planner.plan(files(DB_ONLY_FROM_WEB)).unwrap();
            assert!(plan.errors.is_empty() && plan.kept_last_good.is_empty());
            assert_eq!(plan.counts.admin_policies, 0);
            assert!(allows(&planner, "shop/web", "shop/db", 5432), "{mode}");
        }
        // Invalid from the start: reported and left out, as the loader does.
        let mut planner = planner(OnUnreadable::KeepLastGood);
        let invalid = GUARD_DB.replace("priority: 10", "priority: 5000");
        let plan = planner
            .plan(files(&format!("{DB_ONLY_FROM_WEB}---{invalid}")))
            .unwrap();
        assert_eq!(plan.errors.len(), 1);
        assert!(plan.kept_last_good.is_empty());
        assert_eq!(plan.counts.admin_policies, 0);
        assert!(allows(&planner, "shop/web", "shop/db", 5432));
    }

    #[test]
    fn typed_objects_plan_like_files() {
        let mut from_files = planner(OnUnreadable::KeepLastGood);
        let expected = from_files.plan(files(DB_ONLY_FROM_WEB)).unwrap();
        let mut objects = Vec::new();
        for text in [PODS, DB_ONLY_FROM_WEB] {
            for document in text.split("\n---\n") {
                let value: serde_json::Value = serde_saphyr::from_str(document).unwrap();
                objects.push(match value["kind"].as_str() {
                    Some("Pod") => {
                        policy_core::load::Object::Pod(serde_json::from_value(value).unwrap())
                    }
                    _ => policy_core::load::Object::NetworkPolicy(
                        serde_json::from_value(value).unwrap(),
                    ),
                });
            }
        }
        let mut from_objects = planner(OnUnreadable::KeepLastGood);
        let plan = from_objects
            .plan(Inputs::Objects(objects.into_iter().collect()))
            .unwrap();
        assert!(plan.errors.is_empty());
        assert_eq!(plan.ruleset, expected.ruleset);
    }
}
