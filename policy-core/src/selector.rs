//! Label selectors, normalised.
//!
//! A `matchLabels` entry `k: v` is the requirement `k In (v)`; all
//! requirements are ANDed (apimachinery `LabelSelectorAsSelector`). The
//! requirements are kept sorted so that equal selectors compare equal, which
//! lets the model evaluate each distinct selector once.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::path::FieldPath;
use crate::validate;

pub use crate::labels::{LabelStr, Labels};

/// A normalised label selector. The empty selector matches everything.
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
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One requirement of a [`Selector`].
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// What the key's value must satisfy.
    pub operator: Operator,
}

/// A selector operator with its values (sorted, without duplicates).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Operator {
    /// The key is present and its value is one of these.
    In(Vec<String>),
    /// The key is absent, or its value is none of these (apimachinery
    /// `selector.go`: NotIn matches a missing key).
    NotIn(Vec<String>),
    /// The key is present.
    Exists,
    /// The key is absent.
    DoesNotExist,
}

impl Requirement {
    /// True if `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        let listed = |values: &[String], value: &str| {
            values
                .binary_search_by(|candidate| candidate.as_str().cmp(value))
                .is_ok()
        };
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| listed(values, v)),
            Operator::NotIn(values) => value.is_none_or(|v| !listed(values, v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl Selector {
    /// The selector that matches everything (`{}`).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// A selector from requirements, normalised.
    pub fn new(mut requirements: Vec<Requirement>) -> Self {
        for requirement in &mut requirements {
            if let Operator::In(values) | Operator::NotIn(values) = &mut requirement.operator {
                values.sort();
                values.dedup();
            }
        }
        requirements.sort();
        requirements.dedup();
        Selector { requirements }
    }

    /// `key=value` for each pair.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Selector::new(
            labels
                .into_iter()
                .map(|(key, value)| Requirement {
                    key: key.to_string(),
                    operator: Operator::In(vec![value.to_string()]),
                })
                .collect(),
        )
    }

    /// True for `{}`.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True if `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements
            .iter()
            .all(|requirement| requirement.matches(labels))
    }

    /// Converts and validates a Kubernetes `LabelSelector` found at `path`.
    ///
    /// Problems the API server would reject (LS meta/v1/validation.go:
    /// unknown operators, missing or forbidden values, malformed keys and
    /// values) are pushed to `problems`; the result is `None` if there were any.
    pub fn from_label_selector(
        selector: &LabelSelector,
        path: &FieldPath,
        problems: &mut Vec<(FieldPath, String)>,
    ) -> Option<Selector> {
        let before = problems.len();
        let mut requirements = Vec::new();
        if let Some(match_labels) = &selector.match_labels {
            let labels_path = path.key("matchLabels");
            for (key, value) in match_labels {
                if let Err(message) = validate::label_key(key) {
                    problems.push((labels_path.key(key), message));
                }
                if let Err(message) = validate::label_value(value) {
                    problems.push((labels_path.key(key), message));
                }
                requirements.push(Requirement {
                    key: key.clone(),
                    operator: Operator::In(vec![value.clone()]),
                });
            }
        }
        for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
            let expression_path = path.key("matchExpressions").index(index);
            if let Err(message) = validate::label_key(&expression.key) {
                problems.push((expression_path.key("key"), message));
            }
            let values = expression.values.clone().unwrap_or_default();
            let operator = match expression.operator.as_str() {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        problems.push((
                            expression_path.key("values"),
                            format!(
                                "must be specified when `operator` is {:?}",
                                expression.operator
                            ),
                        ));
                    }
                    for (value_index, value) in values.iter().enumerate() {
                        if let Err(message) = validate::label_value(value) {
                            problems
                                .push((expression_path.key("values").index(value_index), message));
                        }
                    }
                    if expression.operator == "In" {
                        Operator::In(values)
                    } else {
                        Operator::NotIn(values)
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        problems.push((
                            expression_path.key("values"),
                            format!(
                                "may not be specified when `operator` is {:?}",
                                expression.operator
                            ),
                        ));
                    }
                    if expression.operator == "Exists" {
                        Operator::Exists
                    } else {
                        Operator::DoesNotExist
                    }
                }
                other => {
                    problems.push((
                        expression_path.key("operator"),
                        format!("{other:?} is not a valid selector operator: use In, NotIn, Exists or DoesNotExist"),
                    ));
                    continue;
                }
            };
            requirements.push(Requirement {
                key: expression.key.clone(),
                operator,
            });
        }
        (problems.len() == before).then(|| Selector::new(requirements))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.operator {
            Operator::In(values) if values.len() == 1 => write!(f, "{}={}", self.key, values[0]),
            Operator::In(values) => write!(f, "{} in ({})", self.key, values.join(",")),
            Operator::NotIn(values) if values.len() == 1 => {
                write!(f, "{}!={}", self.key, values[0])
            }
            Operator::NotIn(values) => write!(f, "{} notin ({})", self.key, values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax (`app=web,tier in (a,b),!canary`); `{}` for the empty selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        for (index, requirement) in self.requirements.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn not_in_matches_pods_without_the_key() {
        let selector = Selector::new(vec![Requirement {
            key: "env".into(),
            operator: Operator::NotIn(vec!["prod".into()]),
        }]);
        assert!(selector.matches(&labels(&[])));
        assert!(selector.matches(&labels(&[("env", "dev")])));
        assert!(!selector.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                expression("tier", "In", &["a", "b"]),
                expression("canary", "DoesNotExist", &[]),
            ]),
        };
        let selector =
            Selector::from_label_selector(&selector, &FieldPath::root(), &mut Vec::new()).unwrap();
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "b")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "")])));
        assert_eq!(selector.to_string(), "app=web,!canary,tier in (a,b)");
    }

    #[test]
    fn the_empty_selector_matches_everything() {
        assert!(Selector::everything().matches(&labels(&[("x", "y")])));
        let selector = Selector::from_label_selector(
            &LabelSelector::default(),
            &FieldPath::root(),
            &mut Vec::new(),
        );
        assert_eq!(selector, Some(Selector::everything()));
    }

    #[test]
    fn equal_selectors_written_differently_compare_equal() {
        let a = Selector::from_labels([("b", "2"), ("a", "1")]);
        let b = Selector::from_labels([("a", "1"), ("b", "2")]);
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_selectors_are_rejected_with_paths() {
        let selector = LabelSelector {
            match_labels: Some([("app@b".to_string(), "x".to_string())].into()),
            match_expressions: Some(vec![
                expression("a", "Gt", &["1"]),
                expression("b", "In", &[]),
                expression("c", "Exists", &["x"]),
            ]),
        };
        let mut problems = Vec::new();
        let path = FieldPath::parse("spec.podSelector");
        assert!(Selector::from_label_selector(&selector, &path, &mut problems).is_none());
        let paths: Vec<String> = problems.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            paths,
            [
                "spec.podSelector.matchLabels[\"app@b\"]",
                "spec.podSelector.matchExpressions[0].operator",
                "spec.podSelector.matchExpressions[1].values",
                "spec.podSelector.matchExpressions[2].values",
            ]
        );
    }
}
