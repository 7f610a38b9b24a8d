//! The admin-tier custom resources: AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy (`policy.networking.k8s.io/v1alpha1`) and
//! ClusterNetworkPolicy (`v1alpha2`).
//!
//! They exist only where their CRDs are installed, and k8s-openapi has no
//! types for them: they are read as kube's `DynamicObject` and handed on as
//! their JSON text ([`policy_core::load::AdminJson`]), which the loader
//! reads as it reads a manifest of that text.
//!
//! Whether the API server serves one is asked through discovery:
//! `GET /apis/policy.networking.k8s.io/v1alpha1` (or `/v1alpha2`) answers
//! the group version's `APIResourceList`, or 404 when no CRD of that group
//! version is installed.

use std::collections::HashMap;
use std::time::Duration;

use kube::Client;
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use policy_core::load::{AdminJson, Object};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::kinds::ResourceKind;

/// kube's description of a custom resource kind, for `Api::all_with`.
pub(super) fn api_resource(kind: ResourceKind) -> ApiResource {
    ApiResource {
        group: kind.group().to_owned(),
        version: kind.version().to_owned(),
        api_version: kind.api_version(),
        kind: kind.kind().to_owned(),
        plural: kind.plural().to_owned(),
    }
}

/// A listed or watched admin-tier object, without `managedFields`, as the
/// loader takes it. Items of a list may come without `kind` and
/// `apiVersion`; they are set from `kind`.
pub(super) fn admin_object(
    kind: ResourceKind,
    mut object: DynamicObject,
) -> Result<Object, serde_json::Error> {
    object.metadata.managed_fields = None;
    object.types = Some(TypeMeta {
        api_version: kind.api_version(),
        kind: kind.kind().to_owned(),
    });
    let text = serde_json::to_string(&object)?;
    // The kind was just set, so this cannot fail; if it did, the error
    // says why.
    AdminJson::new(text)
        .map(Object::Admin)
        .map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// How long one discovery answer serves every kind of its group version
/// at most: AdminNetworkPolicy and BaselineAdminNetworkPolicy ask about
/// the same one at the same moments, and one request answers both.
const FRESH: Duration = Duration::from_secs(1);

/// Discovery answers, shared by the kinds of one source.
pub(super) struct Discovery {
    client: Client,
    /// How long an answer is reused: [`FRESH`], or less when the kinds ask
    /// more often than that.
    fresh: Duration,
    /// Per group version: when it was asked, and the resources it served
    /// (none when it answered 404). Locked across the request, so a second
    /// kind of the same group version waits for the answer and reuses it.
    answers: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl Discovery {
    /// Discovery for kinds that ask again every `interval`.
    pub(super) fn new(client: Client, interval: Duration) -> Discovery {
        Discovery {
            client,
            fresh: FRESH.min(interval / 2),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the API server serves `kind` now. A group version it does
    /// not know (404) serves nothing; other failures are errors.
    pub(super) async fn serves(&self, kind: ResourceKind) -> Result<bool, kube::Error> {
        let group_version = kind.api_version();
        let mut answers = self.answers.lock().await;
        if let Some((asked, resources)) = answers.get(&group_version)
            && asked.elapsed() < self.fresh
        {
            return Ok(resources.iter().any(|r| r == kind.plural()));
        }
        let resources = match self.client.list_api_group_resources(&group_version).await {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            Err(error) => return Err(error),
        };
        let served = resources.iter().any(|r| r == kind.plural());
        answers.insert(group_version, (Instant::now(), resources));
        Ok(served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list item without `kind` and `apiVersion` becomes the object the
    /// loader reads, with both set and without managedFields.
    #[test]
    fn a_dynamic_object_becomes_admin_json() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "default", "resourceVersion": "3",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"subject": {"namespaces": {}}},
        }))
        .unwrap();
        let Object::Admin(object) =
            admin_object(ResourceKind::BaselineAdminNetworkPolicy, object).unwrap()
        else {
            panic!("not an admin object")
        };
        assert_eq!(object.name(), Some("default"));
        let value: serde_json::Value = serde_json::from_str(object.text()).unwrap();
        assert_eq!(value["kind"], "BaselineAdminNetworkPolicy");
        assert_eq!(value["apiVersion"], "policy.networking.k8s.io/v1alpha1");
        assert_eq!(
            value["spec"]["subject"]["namespaces"],
            serde_json::json!({})
        );
        assert!(value["metadata"].get("managedFields").is_none());
        assert_eq!(
            api_resource(ResourceKind::ClusterNetworkPolicy).api_version,
            "policy.networking.k8s.io/v1alpha2"
        );
    }
}
