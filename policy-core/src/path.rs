//! Field paths such as `spec.ingress[0].ports[1].endPort`.

use std::fmt;

use crate::yaml::{Location, Node, Value};

/// One step of a [`FieldPath`], borrowed from the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A list index.
    Index(usize),
}

/// One step of an owned [`FieldPath`].
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PathStep {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// The path of a field inside one object, printed the way `kubectl explain`
/// and API server errors print it: `spec.ingress[0].from[1].ipBlock.cidr`.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct FieldPath {
    steps: Vec<PathStep>,
}

impl FieldPath {
    /// The empty path (the object itself).
    pub fn root() -> Self {
        FieldPath::default()
    }

    pub(crate) fn from_segments(segments: &[Segment<'_>]) -> Self {
        FieldPath {
            steps: segments
                .iter()
                .map(|segment| match segment {
                    Segment::Key(key) => PathStep::Key((*key).to_string()),
                    Segment::Index(index) => PathStep::Index(*index),
                })
                .collect(),
        }
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut steps = self.steps.clone();
        steps.push(PathStep::Key(key.to_string()));
        FieldPath { steps }
    }

    /// This path extended by a list index.
    pub fn index(&self, index: usize) -> Self {
        let mut steps = self.steps.clone();
        steps.push(PathStep::Index(index));
        FieldPath { steps }
    }

    /// Parses a dotted path such as `spec.ingress[0].from`.
    ///
    /// Keys with dots may be written in brackets: `metadata.labels["a.b/c"]`.
    pub fn parse(text: &str) -> Self {
        let mut steps = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("[\"") {
                let end = after.find("\"]").unwrap_or(after.len());
                steps.push(PathStep::Key(after[..end].to_string()));
                rest = after.get(end + 2..).unwrap_or("");
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').unwrap_or(after.len());
                if let Ok(index) = after[..end].parse() {
                    steps.push(PathStep::Index(index));
                }
                rest = after.get(end + 1..).unwrap_or("");
            } else {
                let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
                let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
                if end > 0 {
                    steps.push(PathStep::Key(rest_trimmed[..end].to_string()));
                }
                rest = &rest_trimmed[end..];
                if end == 0 && rest_trimmed.len() == rest.len() && !rest.starts_with('[') {
                    break;
                }
            }
        }
        FieldPath { steps }
    }

    /// The steps of the path.
    pub fn steps(&self) -> &[PathStep] {
        &self.steps
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True for the root path.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The node this path names in `root`, if it is there.
    pub fn resolve<'a>(&self, root: &'a Node) -> Option<&'a Node> {
        let mut node = root;
        for step in &self.steps {
            node = match (step, &node.value) {
                (PathStep::Key(key), Value::Mapping(entries)) => {
                    &entries.iter().find(|e| &e.key == key)?.value
                }
                (PathStep::Index(index), Value::Sequence(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The location of the field this path names in `root`: the key's
    /// location for a mapping entry, the item's for a list element. Falls back
    /// to the deepest ancestor that exists, so a missing field still points
    /// at the object that lacks it.
    pub fn locate(&self, root: &Node) -> Location {
        let mut node = root;
        let mut location = root.location;
        for step in &self.steps {
            match (step, &node.value) {
                (PathStep::Key(key), Value::Mapping(entries)) => {
                    match entries.iter().find(|e| &e.key == key) {
                        Some(entry) => {
                            location = entry.key_location;
                            node = &entry.value;
                        }
                        None => break,
                    }
                }
                (PathStep::Index(index), Value::Sequence(items)) => match items.get(*index) {
                    Some(item) => {
                        location = item.location;
                        node = item;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        location
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Index(index) => write!(f, "[{index}]")?,
                PathStep::Key(key) if is_plain_key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    #[test]
    fn paths_print_like_api_server_errors() {
        let path = FieldPath::root()
            .key("spec")
            .key("ingress")
            .index(0)
            .key("from");
        assert_eq!(path.to_string(), "spec.ingress[0].from");
        let label = FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(
            label.to_string(),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
    }

    #[test]
    fn parse_inverts_display() {
        for text in [
            "spec.ingress[0].from[1].ipBlock.cidr",
            "metadata.labels[\"a.b/c\"]",
            "spec",
            "",
        ] {
            assert_eq!(FieldPath::parse(text).to_string(), text);
        }
    }

    #[test]
    fn locate_finds_the_key_or_the_nearest_ancestor() {
        let node = parse_documents("spec:\n  ingress:\n  - from:\n    - podSelector: {}\n")
            .remove(0)
            .unwrap();
        assert_eq!(
            FieldPath::parse("spec.ingress[0].from[0].podSelector")
                .locate(&node)
                .line,
            4
        );
        assert_eq!(
            FieldPath::parse("spec.ingress[0].ports").locate(&node).line,
            3
        );
    }
}
