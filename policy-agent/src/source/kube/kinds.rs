//! The kinds netpol reads from the Kubernetes API, as one table.
//!
//! Both readers use it: the agent's watch source ([`super::run`]) and the
//! one-shot list behind `netpol … --cluster` ([`super::list_cluster`]). A
//! kind netpol learns is added here once, with its API coordinates and the
//! RBAC rule it needs; the error messages and the example ClusterRole name
//! what this table says.

use std::fmt;

use policy_core::admin::{API_GROUP as ADMIN_API_GROUP, AdminKind};

/// A kind of object read from the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// `v1` Namespace (cluster-scoped).
    Namespace,
    /// `v1` Pod.
    Pod,
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `v1` ReplicationController.
    ReplicationController,
    /// `batch/v1` Job.
    Job,
    /// `batch/v1` CronJob.
    CronJob,
    /// `v1` Service.
    Service,
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `v1` Node (cluster-scoped): node addresses are node traffic.
    Node,
    /// `discovery.k8s.io/v1` EndpointSlice: backends of Services without selector.
    EndpointSlice,
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `networking.k8s.io/v1` IngressClass (cluster-scoped).
    IngressClass,
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy
    /// (cluster-scoped; a custom resource, served only with its CRD).
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy
    /// (cluster-scoped; a custom resource).
    BaselineAdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy
    /// (cluster-scoped; a custom resource).
    ClusterNetworkPolicy,
}

impl ResourceKind {
    /// Every kind the one-shot list reads, namespaces first.
    pub const ALL: [ResourceKind; 18] = [
        ResourceKind::Namespace,
        ResourceKind::Pod,
        ResourceKind::Deployment,
        ResourceKind::StatefulSet,
        ResourceKind::DaemonSet,
        ResourceKind::ReplicaSet,
        ResourceKind::ReplicationController,
        ResourceKind::Job,
        ResourceKind::CronJob,
        ResourceKind::Service,
        ResourceKind::NetworkPolicy,
        ResourceKind::Node,
        ResourceKind::EndpointSlice,
        ResourceKind::Ingress,
        ResourceKind::IngressClass,
        ResourceKind::AdminNetworkPolicy,
        ResourceKind::BaselineAdminNetworkPolicy,
        ResourceKind::ClusterNetworkPolicy,
    ];

    /// The kinds the agent watches: what a node's ruleset depends on. Nodes
    /// are in because traffic between a pod and its own node's addresses is
    /// always allowed; Services, EndpointSlices and Ingresses change no
    /// verdict the kernel enforces (policy applies after DNAT), so they are
    /// not watched. The admin-tier kinds are watched where their CRDs are
    /// installed ([`ResourceKind::custom`]).
    pub const WATCHED: [ResourceKind; 7] = [
        ResourceKind::Namespace,
        ResourceKind::Pod,
        ResourceKind::NetworkPolicy,
        ResourceKind::Node,
        ResourceKind::AdminNetworkPolicy,
        ResourceKind::BaselineAdminNetworkPolicy,
        ResourceKind::ClusterNetworkPolicy,
    ];

    /// Kinds `--cluster` can go on without: when listing them is forbidden
    /// (a user with namespace-scoped rights), it reads the rest and says
    /// so, instead of failing. Nodes and IngressClasses are context; the
    /// admin-tier kinds are cluster-scoped, which such a user cannot list.
    pub fn optional(self) -> bool {
        matches!(self, ResourceKind::Node | ResourceKind::IngressClass) || self.custom()
    }

    /// Custom resources, served only where their CRD is installed: a 404
    /// means there are none, not an error.
    pub fn custom(self) -> bool {
        self.admin_kind().is_some()
    }

    /// The admin-tier kind this is, if it is one.
    pub fn admin_kind(self) -> Option<AdminKind> {
        match self {
            ResourceKind::AdminNetworkPolicy => Some(AdminKind::AdminNetworkPolicy),
            ResourceKind::BaselineAdminNetworkPolicy => Some(AdminKind::BaselineAdminNetworkPolicy),
            ResourceKind::ClusterNetworkPolicy => Some(AdminKind::ClusterNetworkPolicy),
            _ => None,
        }
    }

    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        match self {
            ResourceKind::Namespace => "Namespace",
            ResourceKind::Pod => "Pod",
            ResourceKind::Deployment => "Deployment",
            ResourceKind::StatefulSet => "StatefulSet",
            ResourceKind::DaemonSet => "DaemonSet",
            ResourceKind::ReplicaSet => "ReplicaSet",
            ResourceKind::ReplicationController => "ReplicationController",
            ResourceKind::Job => "Job",
            ResourceKind::CronJob => "CronJob",
            ResourceKind::Service => "Service",
            ResourceKind::NetworkPolicy => "NetworkPolicy",
            ResourceKind::Node => "Node",
            ResourceKind::EndpointSlice => "EndpointSlice",
            ResourceKind::Ingress => "Ingress",
            ResourceKind::IngressClass => "IngressClass",
            ResourceKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ResourceKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            ResourceKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
        }
    }

    /// The API group; empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            ResourceKind::Namespace
            | ResourceKind::Pod
            | ResourceKind::ReplicationController
            | ResourceKind::Service
            | ResourceKind::Node => "",
            ResourceKind::EndpointSlice => "discovery.k8s.io",
            ResourceKind::Ingress | ResourceKind::IngressClass => "networking.k8s.io",
            ResourceKind::Deployment
            | ResourceKind::StatefulSet
            | ResourceKind::DaemonSet
            | ResourceKind::ReplicaSet => "apps",
            ResourceKind::Job | ResourceKind::CronJob => "batch",
            ResourceKind::NetworkPolicy => "networking.k8s.io",
            ResourceKind::AdminNetworkPolicy
            | ResourceKind::BaselineAdminNetworkPolicy
            | ResourceKind::ClusterNetworkPolicy => ADMIN_API_GROUP,
        }
    }

    /// The API version read: `v1`, except for the admin-tier kinds, each
    /// served at one version only.
    pub fn version(self) -> &'static str {
        match self {
            ResourceKind::AdminNetworkPolicy | ResourceKind::BaselineAdminNetworkPolicy => {
                "v1alpha1"
            }
            ResourceKind::ClusterNetworkPolicy => "v1alpha2",
            _ => "v1",
        }
    }

    /// The resource name in URLs and RBAC rules.
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Namespace => "namespaces",
            ResourceKind::Pod => "pods",
            ResourceKind::Deployment => "deployments",
            ResourceKind::StatefulSet => "statefulsets",
            ResourceKind::DaemonSet => "daemonsets",
            ResourceKind::ReplicaSet => "replicasets",
            ResourceKind::ReplicationController => "replicationcontrollers",
            ResourceKind::Job => "jobs",
            ResourceKind::CronJob => "cronjobs",
            ResourceKind::Service => "services",
            ResourceKind::NetworkPolicy => "networkpolicies",
            ResourceKind::Node => "nodes",
            ResourceKind::EndpointSlice => "endpointslices",
            ResourceKind::Ingress => "ingresses",
            ResourceKind::IngressClass => "ingressclasses",
            ResourceKind::AdminNetworkPolicy => "adminnetworkpolicies",
            ResourceKind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
            ResourceKind::ClusterNetworkPolicy => "clusternetworkpolicies",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            ResourceKind::Namespace | ResourceKind::Node | ResourceKind::IngressClass
        ) && !self.custom()
    }

    /// `apiVersion`: `v1`, `apps/v1`, ...
    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.version().to_string(),
            group => format!("{group}/{}", self.version()),
        }
    }

    /// The collection's URL path, cluster-wide or in one namespace.
    pub fn collection_path(self, namespace: Option<&str>) -> String {
        let prefix = match self.group() {
            "" => format!("/api/{}", self.version()),
            group => format!("/apis/{group}/{}", self.version()),
        };
        match namespace {
            Some(namespace) if self.namespaced() => {
                format!("{prefix}/namespaces/{namespace}/{}", self.plural())
            }
            _ => format!("{prefix}/{}", self.plural()),
        }
    }

    /// `pods`, `deployments.apps`: how `kubectl auth can-i` names the resource.
    pub fn resource_name(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            group => format!("{}.{group}", self.plural()),
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_paths_follow_the_api_layout() {
        assert_eq!(
            ResourceKind::Pod.collection_path(None),
            "/api/v1/pods".to_string()
        );
        assert_eq!(
            ResourceKind::Pod.collection_path(Some("shop")),
            "/api/v1/namespaces/shop/pods"
        );
        assert_eq!(
            ResourceKind::NetworkPolicy.collection_path(Some("shop")),
            "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
        );
        // Namespaces are cluster-scoped whatever the scope asked for.
        assert_eq!(
            ResourceKind::Namespace.collection_path(Some("shop")),
            "/api/v1/namespaces"
        );
        assert_eq!(ResourceKind::CronJob.api_version(), "batch/v1");
        assert_eq!(ResourceKind::Deployment.resource_name(), "deployments.apps");
        assert_eq!(ResourceKind::Service.resource_name(), "services");
        // The admin tiers: cluster-scoped custom resources, each at its own version.
        assert_eq!(
            ResourceKind::AdminNetworkPolicy.collection_path(Some("shop")),
            "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"
        );
        assert_eq!(
            ResourceKind::ClusterNetworkPolicy.api_version(),
            "policy.networking.k8s.io/v1alpha2"
        );
        for kind in ResourceKind::ALL {
            let admin = kind.admin_kind();
            assert_eq!(kind.custom(), admin.is_some());
            if let Some(admin) = admin {
                assert_eq!(kind.kind(), admin.as_str());
                assert_eq!(kind.api_version(), admin.api_version());
                assert!(!kind.namespaced() && kind.optional());
            }
        }
    }

    #[test]
    fn the_watched_kinds_are_listed_kinds() {
        for kind in ResourceKind::WATCHED {
            assert!(ResourceKind::ALL.contains(&kind));
        }
    }

    /// The example ClusterRole for `--cluster` grants `list` on every kind
    /// the one-shot list reads, and the agent's role on every watched kind:
    /// a kind added here without its RBAC rule fails.
    #[test]
    fn the_example_roles_grant_what_is_read() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let granted = |file: &str, verb: &str| -> Vec<(String, String)> {
            let text = std::fs::read_to_string(repo.join(file)).expect(file);
            let mut pairs = Vec::new();
            for document in text.split("\n---\n") {
                let role: serde_json::Value =
                    serde_saphyr::from_str(document).expect("a YAML document");
                if role["kind"] != "ClusterRole" {
                    continue;
                }
                for rule in role["rules"].as_array().expect("rules") {
                    let verbs = rule["verbs"].as_array().expect("verbs");
                    if !verbs.iter().any(|v| v == verb) {
                        continue;
                    }
                    for group in rule["apiGroups"].as_array().expect("apiGroups") {
                        for resource in rule["resources"].as_array().expect("resources") {
                            pairs.push((
                                group.as_str().unwrap().to_string(),
                                resource.as_str().unwrap().to_string(),
                            ));
                        }
                    }
                }
            }
            pairs
        };
        let reader = granted("examples/rbac/netpol-reader.yaml", "list");
        for kind in ResourceKind::ALL {
            let needed = (kind.group().to_string(), kind.plural().to_string());
            assert!(
                reader.contains(&needed),
                "netpol-reader lacks list on {needed:?}"
            );
        }
        let agent = granted("examples/deploy/rbac.yaml", "watch");
        for kind in ResourceKind::WATCHED {
            let needed = (kind.group().to_string(), kind.plural().to_string());
            assert!(
                agent.contains(&needed),
                "the agent's role lacks watch on {needed:?}"
            );
        }
    }
}
