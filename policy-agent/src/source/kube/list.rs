//! A one-shot read of the cluster: every kind of [`ResourceKind::ALL`],
//! listed in pages, for `netpol query|matrix|lint|explain|diff|report
//! --cluster`.
//!
//! # API calls
//!
//! For each kind, `GET <collection>?limit=500`, then the same with
//! `&continue=<token>` until the server says there is no more; all kinds at
//! once on one connection pool. With namespaces given, namespaced kinds are
//! listed per namespace (`/api/v1/namespaces/<ns>/pods`, ...). Namespaces
//! are always listed cluster-wide, because namespaceSelectors match their
//! labels; a user who may not list them gets each named namespace with
//! `GET /api/v1/namespaces/<ns>` instead, and if that is refused too the
//! namespace is read as having only its `kubernetes.io/metadata.name`
//! label, with a note saying so.
//!
//! Nodes and IngressClasses are cluster-scoped and always listed
//! cluster-wide; they are context (node addresses, ingress controllers), so
//! when listing them is forbidden the read goes on without them, with a
//! note.
//!
//! The admin tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//! ClusterNetworkPolicy) are custom resources, cluster-scoped too: where
//! their CRD is not installed the list answers 404, which means there are
//! none; when listing them is forbidden, the read goes on without them,
//! with a note.
//!
//! A continue token that expired (`410 Gone`: the list took longer than the
//! server keeps its snapshot) restarts that kind's list, at most
//! [`MAX_LIST_ATTEMPTS`] times. Every other failure is reported with the
//! call that failed ([`ApiCallError`]); all failures are collected, not
//! only the first.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Debug;

use futures::future::join_all;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Resource};
use policy_core::load::Object;
use serde::de::DeserializeOwned;

use super::connect::Connection;
use super::custom;
use super::error::{ApiCallError, FailureCause};
use super::kinds::ResourceKind;

/// Items per list page, as kube-runtime's watchers and kubectl use.
pub const PAGE_SIZE: u32 = 500;

/// How many times a list is started over after its continue token expired.
pub const MAX_LIST_ATTEMPTS: usize = 3;

/// Which namespaces to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListScope {
    /// Every namespace (`-A`, and netpol's default: policies reach across
    /// namespaces).
    AllNamespaces,
    /// Only these namespaces' objects (`--namespace`); Namespace objects
    /// are still read cluster-wide when allowed.
    Namespaces(Vec<String>),
}

impl fmt::Display for ListScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListScope::AllNamespaces => f.write_str("all namespaces"),
            ListScope::Namespaces(names) if names.len() == 1 => {
                write!(f, "namespace {}", names[0])
            }
            ListScope::Namespaces(names) => write!(f, "namespaces {}", names.join(", ")),
        }
    }
}

/// What was read.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// Every object, namespaces first, each kind in the server's order.
    pub objects: Vec<Object>,
    /// How many objects of each kind.
    pub counts: BTreeMap<ResourceKind, usize>,
    /// Things the user should know about what could not be read fully.
    pub notes: Vec<String>,
}

/// The calls that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListError {
    /// One per failed call, in [`ResourceKind::ALL`] order.
    pub failures: Vec<ApiCallError>,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failures.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} API calls failed", many.len())?;
                for failure in many {
                    write!(f, "\n  {failure}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ListError {}

/// Reads every kind netpol knows from the cluster (see the module
/// documentation). `on_page` is called with each page's kind and item count,
/// for progress.
pub async fn list_cluster(
    connection: &Connection,
    scope: &ListScope,
    on_page: &(dyn Fn(ResourceKind, usize) + Sync),
) -> Result<ClusterSnapshot, ListError> {
    let namespaces: Vec<Option<&str>> = match scope {
        ListScope::AllNamespaces => vec![None],
        ListScope::Namespaces(names) => names.iter().map(|n| Some(n.as_str())).collect(),
    };
    let mut calls = Vec::new();
    for kind in ResourceKind::ALL.into_iter().filter(|k| k.namespaced()) {
        for namespace in &namespaces {
            calls.push(list_kind(connection, kind, *namespace, on_page));
        }
    }
    let cluster_scoped = join_all(
        ResourceKind::ALL
            .into_iter()
            .filter(|k| !k.namespaced() && *k != ResourceKind::Namespace)
            .map(|kind| list_cluster_scoped(connection, kind, on_page)),
    );
    let (namespace_objects, results, cluster_scoped) = futures::join!(
        list_namespaces(connection, scope, on_page),
        join_all(calls),
        cluster_scoped
    );

    let mut snapshot = ClusterSnapshot::default();
    let mut failures = Vec::new();
    match namespace_objects {
        Ok((objects, notes)) => {
            snapshot
                .counts
                .insert(ResourceKind::Namespace, objects.len());
            snapshot.objects.extend(objects);
            snapshot.notes.extend(notes);
        }
        Err(error) => failures.push(error),
    }
    for result in cluster_scoped {
        match result {
            Ok((kind, objects)) => {
                *snapshot.counts.entry(kind).or_default() += objects.len();
                snapshot.objects.extend(objects);
            }
            Err(error)
                if error.kind.custom() && matches!(error.cause, FailureCause::NotServed(_)) =>
            {
                // No CRD, so none of them.
                snapshot.counts.entry(error.kind).or_default();
            }
            Err(error)
                if error.kind.optional() && matches!(error.cause, FailureCause::Forbidden(_)) =>
            {
                snapshot.notes.push(format!(
                    "cannot list {} (forbidden): read without them{}",
                    error.kind.plural(),
                    match error.kind {
                        ResourceKind::Node => ", so node addresses count as outside the cluster",
                        ResourceKind::IngressClass =>
                            ", so Ingress controllers are found by their conventional labels",
                        _ => ", so the answers leave out their rules",
                    }
                ));
            }
            Err(error) => failures.push(error),
        }
    }
    for result in results {
        match result {
            Ok((kind, objects)) => {
                *snapshot.counts.entry(kind).or_default() += objects.len();
                snapshot.objects.extend(objects);
            }
            Err(error) => failures.push(error),
        }
    }
    if failures.is_empty() {
        Ok(snapshot)
    } else {
        failures.sort_by_key(|f| f.kind);
        Err(ListError { failures })
    }
}

/// Namespace objects: listed cluster-wide; with namespaces given and the
/// list forbidden, each one fetched by name (see the module documentation).
async fn list_namespaces(
    connection: &Connection,
    scope: &ListScope,
    on_page: &(dyn Fn(ResourceKind, usize) + Sync),
) -> Result<(Vec<Object>, Vec<String>), ApiCallError> {
    let api = Api::<Namespace>::all(connection.client.clone());
    let error = match list_pages(
        api.clone(),
        connection,
        ResourceKind::Namespace,
        None,
        on_page,
        &typed,
    )
    .await
    {
        Ok(objects) => return Ok((objects, Vec::new())),
        Err(error) => error,
    };
    let ListScope::Namespaces(names) = scope else {
        return Err(error);
    };
    if !matches!(error.cause, FailureCause::Forbidden(_)) {
        return Err(error);
    }
    let mut objects = Vec::new();
    let mut notes = Vec::new();
    for name in names {
        match api.get(name).await {
            Ok(mut namespace) => {
                namespace.metadata.managed_fields = None;
                on_page(ResourceKind::Namespace, 1);
                objects.push(Object::Namespace(namespace));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => notes.push(format!(
                "namespace {name} does not exist in {}",
                connection.describe()
            )),
            Err(get_error) => {
                let get_error = ApiCallError::new(
                    ResourceKind::Namespace,
                    "get",
                    None,
                    format!("GET /api/v1/namespaces/{name}"),
                    &connection.cluster_url,
                    &get_error,
                );
                if !matches!(get_error.cause, FailureCause::Forbidden(_)) {
                    return Err(get_error);
                }
                notes.push(format!(
                    "cannot read Namespace {name} (list and get are forbidden): it is read as \
                     having only the label kubernetes.io/metadata.name={name}, so \
                     namespaceSelectors on its other labels may be answered wrongly"
                ));
            }
        }
    }
    Ok((objects, notes))
}

/// Lists one namespaced kind, cluster-wide or in one namespace.
async fn list_kind(
    connection: &Connection,
    kind: ResourceKind,
    namespace: Option<&str>,
    on_page: &(dyn Fn(ResourceKind, usize) + Sync),
) -> Result<(ResourceKind, Vec<Object>), ApiCallError> {
    let objects = match kind {
        ResourceKind::Namespace => unreachable!("namespaces are listed by list_namespaces"),
        ResourceKind::Pod => list_namespaced::<Pod>(connection, kind, namespace, on_page).await,
        ResourceKind::Deployment => {
            list_namespaced::<Deployment>(connection, kind, namespace, on_page).await
        }
        ResourceKind::StatefulSet => {
            list_namespaced::<StatefulSet>(connection, kind, namespace, on_page).await
        }
        ResourceKind::DaemonSet => {
            list_namespaced::<DaemonSet>(connection, kind, namespace, on_page).await
        }
        ResourceKind::ReplicaSet => {
            list_namespaced::<ReplicaSet>(connection, kind, namespace, on_page).await
        }
        ResourceKind::ReplicationController => {
            list_namespaced::<ReplicationController>(connection, kind, namespace, on_page).await
        }
        ResourceKind::Job => list_namespaced::<Job>(connection, kind, namespace, on_page).await,
        ResourceKind::CronJob => {
            list_namespaced::<CronJob>(connection, kind, namespace, on_page).await
        }
        ResourceKind::Service => {
            list_namespaced::<Service>(connection, kind, namespace, on_page).await
        }
        ResourceKind::NetworkPolicy => {
            list_namespaced::<NetworkPolicy>(connection, kind, namespace, on_page).await
        }
        ResourceKind::EndpointSlice => {
            list_namespaced::<EndpointSlice>(connection, kind, namespace, on_page).await
        }
        ResourceKind::Ingress => {
            list_namespaced::<Ingress>(connection, kind, namespace, on_page).await
        }
        ResourceKind::Node
        | ResourceKind::IngressClass
        | ResourceKind::AdminNetworkPolicy
        | ResourceKind::BaselineAdminNetworkPolicy
        | ResourceKind::ClusterNetworkPolicy => {
            unreachable!("cluster-scoped kinds are listed by list_cluster_scoped")
        }
    }?;
    Ok((kind, objects))
}

/// Lists one cluster-scoped kind other than Namespace.
async fn list_cluster_scoped(
    connection: &Connection,
    kind: ResourceKind,
    on_page: &(dyn Fn(ResourceKind, usize) + Sync),
) -> Result<(ResourceKind, Vec<Object>), ApiCallError> {
    let client = connection.client.clone();
    let objects = match kind {
        ResourceKind::Node => {
            let api = Api::<Node>::all(client);
            list_pages(api, connection, kind, None, on_page, &typed).await
        }
        ResourceKind::IngressClass => {
            let api = Api::<IngressClass>::all(client);
            list_pages(api, connection, kind, None, on_page, &typed).await
        }
        ResourceKind::AdminNetworkPolicy
        | ResourceKind::BaselineAdminNetworkPolicy
        | ResourceKind::ClusterNetworkPolicy => {
            let api = Api::<DynamicObject>::all_with(client, &custom::api_resource(kind));
            let convert = |object| custom::admin_object(kind, object);
            list_pages(api, connection, kind, None, on_page, &convert).await
        }
        other => unreachable!("{other} is not listed by list_cluster_scoped"),
    }?;
    Ok((kind, objects))
}

async fn list_namespaced<K>(
    connection: &Connection,
    kind: ResourceKind,
    namespace: Option<&str>,
    on_page: &(dyn Fn(ResourceKind, usize) + Sync),
) -> Result<Vec<Object>, ApiCallError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Into<Object>,
{
    let api = match namespace {
        Some(namespace) => Api::<K>::namespaced(connection.client.clone(), namespace),
        None => Api::<K>::all(connection.client.clone()),
    };
    list_pages(api, connection, kind, namespace, on_page, &typed).await
}

/// A typed object without `managedFields`: it is often half an object
/// and nothing reads it.
fn typed<K: Resource + Into<Object>>(mut object: K) -> Result<Object, serde_json::Error> {
    object.meta_mut().managed_fields = None;
    Ok(object.into())
}

/// Every page of one collection, each object turned into an [`Object`]
/// by `convert` as it arrives (which drops `managedFields`).
async fn list_pages<K>(
    api: Api<K>,
    connection: &Connection,
    kind: ResourceKind,
    namespace: Option<&str>,
    on_page: &(dyn Fn(ResourceKind, usize) + Sync),
    convert: &(dyn Fn(K) -> Result<Object, serde_json::Error> + Sync),
) -> Result<Vec<Object>, ApiCallError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let path = kind.collection_path(namespace);
    let mut attempt = 1;
    'list: loop {
        let mut objects = Vec::new();
        let mut params = ListParams::default().limit(PAGE_SIZE);
        loop {
            let request = match &params.continue_token {
                Some(token) => format!("GET {path}?limit={PAGE_SIZE}&continue={token}"),
                None => format!("GET {path}?limit={PAGE_SIZE}"),
            };
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(kube::Error::Api(status))
                    if status.code == 410
                        && params.continue_token.is_some()
                        && attempt < MAX_LIST_ATTEMPTS =>
                {
                    attempt += 1;
                    continue 'list;
                }
                Err(error) => {
                    return Err(ApiCallError::new(
                        kind,
                        "list",
                        namespace,
                        request,
                        &connection.cluster_url,
                        &error,
                    ));
                }
            };
            on_page(kind, page.items.len());
            for object in page.items {
                let object = convert(object).map_err(|error| {
                    ApiCallError::new(
                        kind,
                        "list",
                        namespace,
                        request.clone(),
                        &connection.cluster_url,
                        &kube::Error::SerdeError(error),
                    )
                })?;
                objects.push(object);
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return Ok(objects),
            }
        }
    }
}
