//! Decoding a spanned [`Node`] tree into typed Kubernetes objects.
//!
//! This is a [`serde::Deserializer`] over the tree. It does what a plain
//! `serde_json::from_value` cannot:
//! - every error names the field path and line of the value at fault;
//! - every key that the target type does not know is recorded as an
//!   [`UnknownField`] instead of being silently dropped. k8s-openapi's
//!   generated code passes its complete field list to `deserialize_struct`,
//!   which is where the check happens.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::path::{FieldPath, Segment};
use crate::yaml::{Entry, Location, Node, Value};

/// A key that the target type does not define.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// Path of the unknown key, e.g. `spec.ingres`.
    pub path: FieldPath,
    /// Where the key is written.
    pub location: Location,
    /// The fields the enclosing object does define, for "did you mean" hints.
    pub known_fields: &'static [&'static str],
}

/// A value that does not fit its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong, in serde's words (e.g. "invalid type: string, expected i32").
    pub message: String,
    /// Path of the field at fault.
    pub path: FieldPath,
    /// Where the value is written.
    pub location: Location,
    located: bool,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DecodeError {
            message: message.to_string(),
            path: FieldPath::default(),
            location: Location::default(),
            located: false,
        }
    }
}

/// The outcome of decoding one object: the value (if it fits its type) and
/// the unknown fields met on the way.
#[derive(Debug)]
pub struct Decoded<T> {
    /// The typed value, or the first error.
    pub value: Result<T, DecodeError>,
    /// Keys the type does not define, in document order.
    pub unknown_fields: Vec<UnknownField>,
}

/// Decodes `node` into `T`, collecting unknown fields.
///
/// Top-level `status` keys are accepted for every kind: they are written by
/// the server (`kubectl get -o yaml`), never by authors, and some kinds no
/// longer define one.
pub fn decode<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Decoded<T> {
    decode_with(node, Context::default())
}

/// [`decode`], but every `metadata.managedFields[].fieldsV1` is read as
/// `null`. A `FieldsV1` holds any JSON value, so nothing in it can be an
/// unknown field or a type error: the diagnostics are those of [`decode`].
/// It is most of a Pod as the API server returns it, and the loader never
/// reads it.
pub fn decode_lean<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Decoded<T> {
    decode_with(
        node,
        Context {
            skip_fields_v1: true,
            ..Context::default()
        },
    )
}

fn decode_with<'de, T: de::Deserialize<'de>>(node: &'de Node, context: Context<'de>) -> Decoded<T> {
    let value = T::deserialize(NodeDeserializer {
        node,
        context: &context,
    });
    let mut unknown_fields = context.unknown.into_inner();
    unknown_fields.retain(|field| !(field.path.len() == 1 && field.path.to_string() == "status"));
    Decoded {
        value,
        unknown_fields,
    }
}

#[derive(Default)]
struct Context<'de> {
    path: RefCell<Vec<Segment<'de>>>,
    unknown: RefCell<Vec<UnknownField>>,
    /// Read every `FieldsV1` as `null` (see [`decode_lean`]).
    skip_fields_v1: bool,
}

impl<'de> Context<'de> {
    fn current_path(&self) -> FieldPath {
        FieldPath::from_segments(&self.path.borrow())
    }

    /// Runs `f` with `segment` pushed on the path, and pops it whatever happens.
    fn within<R>(&self, segment: Segment<'de>, f: impl FnOnce() -> R) -> R {
        self.path.borrow_mut().push(segment);
        let result = f();
        self.path.borrow_mut().pop();
        result
    }
}

struct NodeDeserializer<'de, 'c> {
    node: &'de Node,
    context: &'c Context<'de>,
}

impl<'de> NodeDeserializer<'de, '_> {
    /// Gives an error from a visitor this node's path and location, once:
    /// the innermost node that sees the error is the one at fault.
    fn locate(&self, mut error: DecodeError) -> DecodeError {
        if !error.located {
            error.located = true;
            error.path = self.context.current_path();
            error.location = self.node.location;
            error.message = humanize(&error.message, self.node);
        }
        error
    }

    fn locate_result<T>(&self, result: Result<T, DecodeError>) -> Result<T, DecodeError> {
        result.map_err(|error| self.locate(error))
    }

    fn visit_mapping<V: Visitor<'de>>(
        &self,
        entries: &'de [Entry],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let access = MappingAccess {
            entries: entries.iter(),
            pending: None,
            context: self.context,
        };
        self.locate_result(visitor.visit_map(access))
    }
}

/// Rewrites serde's type names into the words a manifest author uses.
fn humanize(message: &str, node: &Node) -> String {
    let message = message
        .replace("expected i32", "expected a 32-bit integer")
        .replace("expected i64", "expected an integer")
        .replace("expected a borrowed string", "expected a string");
    if let Value::String(text) = &node.value
        && message.starts_with("invalid type: string")
    {
        return message.replacen(
            "invalid type: string",
            &format!("invalid type: string {text:?}"),
            1,
        );
    }
    if matches!(
        node.value,
        Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_)
    ) && message.contains("expected a string")
    {
        // The classic YAML trap, which kubectl falls into as well.
        return format!(
            "{message}: YAML reads unquoted numbers and y, n, yes, no, on, off, true, false as non-strings; quote the value"
        );
    }
    message
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::Int(value) => visitor.visit_i64(*value),
            Value::UInt(value) => visitor.visit_u64(*value),
            Value::Float(value) => visitor.visit_f64(*value),
            Value::String(value) => visitor.visit_borrowed_str(value),
            Value::Sequence(items) => {
                let access = SequenceAccess {
                    items: items.iter().enumerate(),
                    context: self.context,
                };
                visitor.visit_seq(access)
            }
            Value::Mapping(entries) => return self.visit_mapping(entries, visitor),
        };
        self.locate_result(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Value::Null => self.locate_result(visitor.visit_none()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match &self.node.value {
            Value::Mapping(entries) => {
                for entry in entries {
                    if !fields.contains(&entry.key.as_str()) {
                        let path = self
                            .context
                            .within(Segment::Key(&entry.key), || self.context.current_path());
                        self.context.unknown.borrow_mut().push(UnknownField {
                            path,
                            location: entry.key_location,
                            known_fields: fields,
                        });
                    }
                }
                self.visit_mapping(entries, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == "FieldsV1" && self.context.skip_fields_v1 {
            let null: de::value::UnitDeserializer<DecodeError> = ().into_deserializer();
            return visitor.visit_newtype_struct(null);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match &self.node.value {
            Value::String(text) => {
                let result = visitor.visit_enum(text.as_str().into_deserializer());
                self.locate_result(result)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct SequenceAccess<'de, 'c> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Node>>,
    context: &'c Context<'de>,
}

impl<'de> de::SeqAccess<'de> for SequenceAccess<'de, '_> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((index, node)) = self.items.next() else {
            return Ok(None);
        };
        let context = self.context;
        context.within(Segment::Index(index), || {
            seed.deserialize(NodeDeserializer { node, context })
                .map(Some)
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MappingAccess<'de, 'c> {
    entries: std::slice::Iter<'de, Entry>,
    pending: Option<&'de Entry>,
    context: &'c Context<'de>,
}

impl<'de> de::MapAccess<'de> for MappingAccess<'de, '_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        let key: de::value::BorrowedStrDeserializer<'de, DecodeError> =
            de::value::BorrowedStrDeserializer::new(&entry.key);
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let entry = self
            .pending
            .take()
            .ok_or_else(|| <DecodeError as de::Error>::custom("value requested before its key"))?;
        let context = self.context;
        context.within(Segment::Key(&entry.key), || {
            seed.deserialize(NodeDeserializer {
                node: &entry.value,
                context,
            })
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    fn parse(text: &str) -> Node {
        parse_documents(text).remove(0).unwrap()
    }

    #[test]
    fn a_misspelled_field_is_reported_with_its_path_and_line() {
        let node = parse(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\nspec:\n  podSelector: {}\n  ingres:\n  - {}\n",
        );
        let decoded = decode::<NetworkPolicy>(&node);
        assert!(decoded.value.is_ok());
        assert_eq!(decoded.unknown_fields.len(), 1);
        let unknown = &decoded.unknown_fields[0];
        assert_eq!(unknown.path.to_string(), "spec.ingres");
        assert_eq!(unknown.location.line, 7);
        assert!(unknown.known_fields.contains(&"ingress"));
    }

    #[test]
    fn unknown_fields_deep_in_lists_carry_indices() {
        let node = parse(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - from:\n    - podSelecter: {}\n",
        );
        let decoded = decode::<NetworkPolicy>(&node);
        assert_eq!(
            decoded.unknown_fields[0].path.to_string(),
            "spec.ingress[0].from[0].podSelecter"
        );
        assert_eq!(decoded.unknown_fields[0].location.line, 7);
    }

    #[test]
    fn a_wrongly_typed_value_names_its_field_and_line() {
        let node = parse(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - ports:\n    - port: 80\n      endPort: eighty\n",
        );
        let error = decode::<NetworkPolicy>(&node).value.unwrap_err();
        assert_eq!(error.path.to_string(), "spec.ingress[0].ports[0].endPort");
        assert_eq!(error.location.line, 8);
        assert!(error.message.contains("\"eighty\""), "{}", error.message);
    }

    #[test]
    fn unquoted_yaml_booleans_and_numbers_in_string_fields_get_a_hint() {
        let node = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns1, labels: {enabled: yes, version: 1.0}}\n",
        );
        let error = decode::<k8s_openapi::api::core::v1::Namespace>(&node)
            .value
            .unwrap_err();
        assert_eq!(error.path.to_string(), "metadata.labels.enabled");
        assert!(
            error.message.contains("quote the value"),
            "{}",
            error.message
        );
    }

    #[test]
    fn null_values_are_absent_fields() {
        let node = parse(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, labels: null}\nspec:\n  podSelector:\n  ingress: null\n",
        );
        let policy = decode::<NetworkPolicy>(&node).value.unwrap();
        let spec = policy.spec.unwrap();
        assert!(spec.pod_selector.is_none());
        assert!(spec.ingress.is_none());
    }

    #[test]
    fn lean_decoding_reads_field_sets_as_null_and_reports_the_same() {
        let node = parse(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  managedFields:\n  - manager: m\n    fieldsType: FieldsV1\n    fieldsV1: {f:spec: {f:containers: {}}}\n    bogus: 1\n    time: 7\nspec: {containers: [{name: c, image: i}]}\n",
        );
        let full = decode::<k8s_openapi::api::core::v1::Pod>(&node);
        let lean = decode_lean::<k8s_openapi::api::core::v1::Pod>(&node);
        assert_eq!(full.unknown_fields, lean.unknown_fields);
        assert_eq!(full.unknown_fields.len(), 1);
        let (full, lean) = (full.value.unwrap_err(), lean.value.unwrap_err());
        assert_eq!(full, lean);
        assert_eq!(full.path.to_string(), "metadata.managedFields[0].time");
        let node = parse(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  managedFields:\n  - manager: m\n    fieldsV1: {f:spec: {f:containers: {}}}\n",
        );
        let pod = decode_lean::<k8s_openapi::api::core::v1::Pod>(&node)
            .value
            .unwrap();
        let entry = &pod.metadata.managed_fields.unwrap()[0];
        assert_eq!(entry.manager.as_deref(), Some("m"));
        assert_eq!(entry.fields_v1.as_ref().unwrap().0, serde_json::Value::Null);
    }

    #[test]
    fn server_written_status_is_not_an_unknown_field() {
        let node = parse(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nstatus: {}\n",
        );
        assert!(decode::<NetworkPolicy>(&node).unknown_fields.is_empty());
    }
}
