//! Objects kept compactly between the source and the planner.
//!
//! A typed object is large whatever it holds: k8s-openapi's structs keep
//! every optional field inline, so an `Object` is over 3 KiB before its
//! strings, and a trimmed Pod with its containers is several more. Held
//! for the 100,000 Pods of an initial list, that was 1.3 GiB, most of the
//! agent's peak, and much of it stayed with the allocator after the first
//! plan. A [`PackedObject`] keeps the object as the JSON the API server
//! would send (the trimmed fields only), well under 1 KiB for a Pod, and
//! is decoded when the planner reads it, one at a time, straight into the
//! loader: typed objects never accumulate. Admin-tier objects
//! ([`Object::Admin`]) are JSON text already and are kept as they are.

use std::fmt;

use policy_core::diagnostic::ObjectRef;
use policy_core::load::{AdminJson, Object};

macro_rules! packable_kinds {
    ($($variant:ident),* $(,)?) => {
        /// Which [`Object`] variant a packed object decodes to.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Tag { $($variant),* }

        /// `None` for [`Object::Admin`], which is text already.
        fn encode(object: &Object) -> Option<Result<(Tag, Vec<u8>), serde_json::Error>> {
            match object {
                $(Object::$variant(inner) => Some(serde_json::to_vec(inner).map(|json| (Tag::$variant, json))),)*
                Object::Admin(_) => None,
            }
        }

        fn decode(tag: Tag, json: &[u8]) -> Result<Object, serde_json::Error> {
            match tag {
                $(Tag::$variant => serde_json::from_slice(json).map(Object::$variant),)*
            }
        }
    };
}

packable_kinds!(
    Namespace,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ReplicationController,
    Job,
    CronJob,
    Service,
    NetworkPolicy,
    Node,
    EndpointSlice,
    Ingress,
    IngressClass,
);

/// A packed object that could not be unpacked. Both directions use
/// k8s-openapi's own serde implementations, so this means a bug, not bad
/// input; the planner reports it and keeps the last good ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackError(String);

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PackError {}

/// One object, as compact JSON, with its identity.
#[derive(Clone)]
pub struct PackedObject {
    identity: Option<ObjectRef>,
    body: Body,
}

#[derive(Clone)]
enum Body {
    Json(Tag, Box<[u8]>),
    /// An admin-tier object: its JSON text, shared.
    Admin(AdminJson),
    /// Kept typed because it could not be encoded: k8s-openapi's types
    /// always encode, but a source must never lose an object.
    Typed(Box<Object>),
}

impl PackedObject {
    /// Packs `object`.
    pub fn pack(object: Object) -> PackedObject {
        let identity = object.identity();
        let body = match (encode(&object), object) {
            (Some(Ok((tag, json))), _) => Body::Json(tag, json.into_boxed_slice()),
            (None, Object::Admin(admin)) => Body::Admin(admin),
            (_, object) => Body::Typed(Box::new(object)),
        };
        PackedObject { identity, body }
    }

    /// Kind, namespace and name, as [`Object::identity`] gives them.
    pub fn identity(&self) -> Option<&ObjectRef> {
        self.identity.as_ref()
    }

    /// The typed object again.
    pub fn unpack(self) -> Result<Object, PackError> {
        match self.body {
            Body::Json(tag, json) => decode(tag, &json).map_err(|error| {
                PackError(format!(
                    "cannot unpack {}: {error}",
                    describe(&self.identity)
                ))
            }),
            Body::Admin(admin) => Ok(Object::Admin(admin)),
            Body::Typed(object) => Ok(*object),
        }
    }

    /// Bytes held for the object's body, if packed.
    pub fn packed_len(&self) -> Option<usize> {
        match &self.body {
            Body::Json(_, json) => Some(json.len()),
            Body::Admin(admin) => Some(admin.text().len()),
            Body::Typed(_) => None,
        }
    }
}

fn describe(identity: &Option<ObjectRef>) -> String {
    match identity {
        Some(identity) => identity.to_string(),
        None => "an object without a name".to_owned(),
    }
}

impl fmt::Debug for PackedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.body {
            Body::Json(_, json) => write!(
                f,
                "PackedObject({}, {} bytes)",
                describe(&self.identity),
                json.len()
            ),
            Body::Admin(admin) => write!(f, "PackedObject({admin:?})"),
            Body::Typed(object) => write!(f, "PackedObject({object:?})"),
        }
    }
}

/// A list of objects in a given order, kept packed until read.
#[derive(Clone, Debug, Default)]
pub struct PackedObjects(Vec<PackedObject>);

impl PackedObjects {
    /// How many objects.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The packed objects, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, PackedObject> {
        self.0.iter()
    }

    /// Unpacks the objects one at a time, freeing each packed object as it
    /// goes, so only one typed object exists at once.
    pub fn unpack_each(self) -> impl Iterator<Item = Result<Object, PackError>> {
        self.0.into_iter().map(PackedObject::unpack)
    }

    /// All objects, typed.
    pub fn unpack(self) -> Result<Vec<Object>, PackError> {
        self.unpack_each().collect()
    }
}

impl FromIterator<Object> for PackedObjects {
    fn from_iter<I: IntoIterator<Item = Object>>(objects: I) -> Self {
        PackedObjects(objects.into_iter().map(PackedObject::pack).collect())
    }
}

impl FromIterator<PackedObject> for PackedObjects {
    fn from_iter<I: IntoIterator<Item = PackedObject>>(objects: I) -> Self {
        PackedObjects(objects.into_iter().collect())
    }
}

impl IntoIterator for PackedObjects {
    type Item = PackedObject;
    type IntoIter = std::vec::IntoIter<PackedObject>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    /// Every kind the loader reads comes back as it went in, including
    /// fields that JSON could bend: int-or-string ports, quantities,
    /// timestamps, empty maps and lists.
    #[test]
    fn objects_unpack_as_they_were_packed() {
        let pods: serde_json::Value =
            serde_json::from_str(include_str!("../../../kube-fake/fixtures/pods.json")).unwrap();
        let mut objects: Vec<Object> = serde_json::from_value::<Vec<Pod>>(pods["items"].clone())
            .unwrap()
            .into_iter()
            .map(Object::Pod)
            .collect();
        let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "labels": {},
                "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": [{"port": "http"}, {"port": 80, "endPort": 90}], "from": []}],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}
        }))
        .unwrap();
        objects.push(Object::NetworkPolicy(policy));
        let deployment: k8s_openapi::api::apps::v1::Deployment =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "d"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m"}}}]}}}
            }))
            .unwrap();
        objects.push(Object::Deployment(deployment));
        let admin = policy_core::load::AdminJson::new(
            r#"{"apiVersion":"policy.networking.k8s.io/v1alpha2","kind":"ClusterNetworkPolicy","metadata":{"name":"c"},"spec":{"tier":"Admin","priority":1}}"#,
        )
        .unwrap();
        objects.push(Object::Admin(admin));

        let packed: PackedObjects = objects.iter().cloned().collect();
        assert_eq!(packed.len(), objects.len());
        let identities: Vec<_> = packed.iter().map(|p| p.identity().cloned()).collect();
        assert_eq!(
            identities,
            objects.iter().map(Object::identity).collect::<Vec<_>>()
        );
        let unpacked = packed.unpack().unwrap();
        // Object has no PartialEq; compare the serialized forms and the
        // debug forms, which show every field.
        assert_eq!(format!("{unpacked:?}"), format!("{objects:?}"));
        // An admin object's Debug shows its size only: compare its text.
        match (unpacked.last(), objects.last()) {
            (Some(Object::Admin(after)), Some(Object::Admin(before))) => assert_eq!(after, before),
            other => panic!("expected the admin object last: {other:?}"),
        }
    }

    /// Packing is what makes the initial list small: a recorded Pod,
    /// trimmed, packs to less than half of what its typed form takes
    /// inline, before any of its strings, maps and lists.
    #[test]
    fn a_packed_pod_is_a_fraction_of_a_typed_one() {
        let pods: serde_json::Value =
            serde_json::from_str(include_str!("../../../kube-fake/fixtures/pods.json")).unwrap();
        let mut pod: Pod = serde_json::from_value(pods["items"][0].clone()).unwrap();
        crate::source::kube::trim_pod(&mut pod);
        let packed = PackedObject::pack(Object::Pod(pod)).packed_len().unwrap();
        assert!(
            packed * 2 < std::mem::size_of::<Object>(),
            "{packed} bytes packed, {} typed before any heap data",
            std::mem::size_of::<Object>()
        );
    }
}
