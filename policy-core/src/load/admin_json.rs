//! Admin-tier policies given as JSON text rather than typed objects.
//!
//! k8s-openapi has no types for the custom resources of
//! `policy.networking.k8s.io`, and our own ([`crate::admin::api`]) drop
//! the keys they do not know. A program that reads these objects from an
//! API server therefore passes them on as the JSON it received, and the
//! loader reads that text exactly as it reads a manifest of the same text:
//! decoded, unknown fields reported (a peer of a newer CRD that netpol does
//! not know fails closed), validated as the API server would.

use std::fmt;
use std::sync::Arc;

use crate::admin::AdminKind;

/// An AdminNetworkPolicy, BaselineAdminNetworkPolicy or
/// ClusterNetworkPolicy as JSON text, for [`crate::Loader::add_live`] (or
/// [`crate::Loader::add`]) as [`super::Object::Admin`].
#[derive(Clone, PartialEq, Eq)]
pub struct AdminJson {
    kind: AdminKind,
    name: Option<String>,
    text: Arc<str>,
}

/// Why a text is not an [`AdminJson`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminJsonError(String);

impl fmt::Display for AdminJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AdminJsonError {}

impl AdminJson {
    /// Takes the JSON text of one object, reading its `kind` and
    /// `metadata.name`. The rest is read (and checked) by the loader.
    ///
    /// Errors when the text is not a JSON object, or its `kind` is none of
    /// the three admin kinds. A name that is absent or not a string is
    /// left to the loader, which reports it.
    pub fn new(text: impl Into<Arc<str>>) -> Result<AdminJson, AdminJsonError> {
        let text = text.into();
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| AdminJsonError(format!("not JSON: {error}")))?;
        if !value.is_object() {
            return Err(AdminJsonError("not a JSON object".into()));
        }
        let kind = match value["kind"].as_str() {
            Some(kind) => kind,
            None => return Err(AdminJsonError("the object has no `kind`".into())),
        };
        let Some(kind) = AdminKind::from_kind(kind) else {
            return Err(AdminJsonError(format!(
                "kind `{kind}` is not AdminNetworkPolicy, BaselineAdminNetworkPolicy or ClusterNetworkPolicy"
            )));
        };
        let name = value["metadata"]["name"]
            .as_str()
            .filter(|name| !name.is_empty());
        Ok(AdminJson {
            kind,
            name: name.map(str::to_owned),
            text,
        })
    }

    /// Which of the three kinds.
    pub fn kind(&self) -> AdminKind {
        self.kind
    }

    /// `metadata.name`, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for AdminJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AdminJson({} {}, {} bytes)",
            self.kind,
            self.name.as_deref().unwrap_or("<no name>"),
            self.text.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_and_name_are_read_from_the_text() {
        let object = AdminJson::new(
            r#"{"apiVersion":"policy.networking.k8s.io/v1alpha1","kind":"BaselineAdminNetworkPolicy","metadata":{"name":"default","uid":"u"},"spec":{}}"#,
        )
        .unwrap();
        assert_eq!(object.kind(), AdminKind::BaselineAdminNetworkPolicy);
        assert_eq!(object.name(), Some("default"));
        assert!(object.text().contains("\"spec\""));
        let nameless = AdminJson::new(r#"{"kind":"ClusterNetworkPolicy","metadata":{}}"#).unwrap();
        assert_eq!(nameless.name(), None);
    }

    #[test]
    fn other_kinds_and_other_texts_are_refused() {
        let error = AdminJson::new(r#"{"kind":"NetworkPolicy","metadata":{"name":"x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`NetworkPolicy`"), "{error}");
        let error = AdminJson::new("kind: AdminNetworkPolicy")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("not JSON"), "{error}");
        let error = AdminJson::new("[]").unwrap_err().to_string();
        assert_eq!(error, "not a JSON object");
        let error = AdminJson::new(r#"{"metadata":{"name":"x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no `kind`"), "{error}");
    }
}
