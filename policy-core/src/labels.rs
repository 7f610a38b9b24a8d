//! Labels: small, shared, immutable maps from label keys to values.
//!
//! A cluster holds a label map for every pod, and at 100,000 pods a
//! `BTreeMap<String, String>` each was most of the agent's memory: a
//! B-tree leaf of about 540 bytes and two heap strings per label, for maps
//! that repeat (the pods of one ReplicaSet have equal labels) and strings
//! that repeat even more (every pod has `app.kubernetes.io/name`). A
//! [`Labels`] is one shared, sorted slice of key/value pairs, and each key
//! and value a shared string ([`LabelStr`]); a [`LabelInterner`] (the
//! loader keeps one while it reads) hands out one copy of each distinct
//! string and each distinct label set. Cloning either is a reference count.
//!
//! The API follows the `BTreeMap` it replaced where the code used it
//! (`get`, `iter`, `contains_key`, `len`, `insert`, collecting from pairs,
//! ordering and equality by contents), so readers do not change.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Index};
use std::sync::Arc;

use rustc_hash::FxHashSet;

/// A label key or value: an immutable string, shared by reference count.
/// It compares, orders and hashes as its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelStr(Arc<str>);

impl LabelStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for LabelStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LabelStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for LabelStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LabelStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for LabelStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<&str> for LabelStr {
    fn from(text: &str) -> Self {
        LabelStr(text.into())
    }
}

impl From<String> for LabelStr {
    fn from(text: String) -> Self {
        LabelStr(text.into())
    }
}

impl From<&String> for LabelStr {
    fn from(text: &String) -> Self {
        LabelStr(text.as_str().into())
    }
}

impl From<Arc<str>> for LabelStr {
    fn from(text: Arc<str>) -> Self {
        LabelStr(text)
    }
}

impl From<LabelStr> for String {
    fn from(text: LabelStr) -> Self {
        text.0.to_string()
    }
}

impl PartialEq<str> for LabelStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for LabelStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for LabelStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<LabelStr> for str {
    fn eq(&self, other: &LabelStr) -> bool {
        *self == *other.0
    }
}

impl PartialEq<LabelStr> for &str {
    fn eq(&self, other: &LabelStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<LabelStr> for String {
    fn eq(&self, other: &LabelStr) -> bool {
        **self == *other.0
    }
}

/// One label.
type Pair = (LabelStr, LabelStr);

/// The labels of a pod, namespace, node or Service selector: keys with
/// their values, sorted by key, each key once. See the module
/// documentation. Cloning shares the pairs.
#[derive(Clone, Default)]
pub struct Labels(Option<Arc<[Pair]>>);

impl Labels {
    /// No labels.
    pub const fn new() -> Self {
        Labels(None)
    }

    fn pairs(&self) -> &[Pair] {
        self.0.as_deref().unwrap_or_default()
    }

    /// From pairs sorted by key, without duplicate keys.
    fn from_sorted(pairs: Vec<Pair>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        Labels((!pairs.is_empty()).then(|| pairs.into()))
    }

    /// Sorts `pairs` by key; of pairs with one key, the last is kept (as
    /// inserting them into a map one after another would).
    fn normalise(mut pairs: Vec<Pair>) -> Vec<Pair> {
        // Stable, so equal keys stay in their order and the last one wins.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut normalised: Vec<Pair> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match normalised.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => normalised.push(pair),
            }
        }
        normalised
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.pairs()
            .binary_search_by(|(candidate, _)| candidate.as_str().cmp(key))
    }

    /// The value of `key`, if set.
    pub fn get<K: AsRef<str> + ?Sized>(&self, key: &K) -> Option<&LabelStr> {
        let position = self.position(key.as_ref()).ok()?;
        Some(&self.pairs()[position].1)
    }

    /// True if `key` is set.
    pub fn contains_key<K: AsRef<str> + ?Sized>(&self, key: &K) -> bool {
        self.position(key.as_ref()).is_ok()
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.pairs().len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The labels, sorted by key.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.pairs().iter())
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &LabelStr> + ExactSizeIterator {
        self.pairs().iter().map(|(key, _)| key)
    }

    /// The values, in the order of their keys.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &LabelStr> + ExactSizeIterator {
        self.pairs().iter().map(|(_, value)| value)
    }

    /// Sets `key` to `value`, returning the value it had. Copies the
    /// labels (they are shared and immutable); for building label sets
    /// label by label, collect them instead.
    pub fn insert(
        &mut self,
        key: impl Into<LabelStr>,
        value: impl Into<LabelStr>,
    ) -> Option<LabelStr> {
        let (key, value) = (key.into(), value.into());
        let mut pairs = self.pairs().to_vec();
        let previous = match self.position(&key) {
            Ok(position) => Some(std::mem::replace(&mut pairs[position].1, value)),
            Err(position) => {
                pairs.insert(position, (key, value));
                None
            }
        };
        *self = Labels::from_sorted(pairs);
        previous
    }

    /// Removes `key`, returning its value. Copies the labels, as
    /// [`Labels::insert`] does.
    pub fn remove<K: AsRef<str> + ?Sized>(&mut self, key: &K) -> Option<LabelStr> {
        let position = self.position(key.as_ref()).ok()?;
        let mut pairs = self.pairs().to_vec();
        let (_, value) = pairs.remove(position);
        *self = Labels::from_sorted(pairs);
        Some(value)
    }

    /// True if both share one allocation (then they are equal, but equal
    /// labels need not share one).
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Iterator over [`Labels`], as `(key, value)`, sorted by key.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, Pair>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a LabelStr, &'a LabelStr);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(key, value)| (key, value))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a LabelStr, &'a LabelStr);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.ptr_eq(other) || self.pairs() == other.pairs()
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the slice, so that a set of `Labels` can be searched by slice.
        self.pairs().hash(state);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// As the maps' `(key, value)` sequences, like `BTreeMap`'s order.
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        self.pairs().cmp(other.pairs())
    }
}

impl Borrow<[Pair]> for Labels {
    fn borrow(&self) -> &[Pair] {
        self.pairs()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str> + ?Sized> Index<&K> for Labels {
    type Output = LabelStr;

    /// The value of `key`; panics if it is not set, as `BTreeMap` does.
    fn index(&self, key: &K) -> &LabelStr {
        self.get(key).expect("no such label")
    }
}

impl<K: Into<LabelStr>, V: Into<LabelStr>> FromIterator<(K, V)> for Labels {
    /// Of pairs with one key, the last is kept, as for a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let pairs = pairs
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        Labels::from_sorted(Labels::normalise(pairs))
    }
}

impl<K: Into<LabelStr>, V: Into<LabelStr>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted by key, each key once.
        Labels::from_sorted(
            map.into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

impl From<&Labels> for BTreeMap<String, String> {
    fn from(labels: &Labels) -> Self {
        labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }
}

/// Hands out one shared copy of each distinct label string and each
/// distinct label set it is given, so that equal labels of many objects
/// take memory once. The loader keeps one while it reads.
#[derive(Clone, Default)]
pub struct LabelInterner {
    strings: FxHashSet<LabelStr>,
    sets: FxHashSet<Labels>,
}

impl LabelInterner {
    /// A new interner, holding nothing.
    pub fn new() -> Self {
        LabelInterner::default()
    }

    /// The shared copy of `text`.
    pub fn string(&mut self, text: &str) -> LabelStr {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared = LabelStr::from(text);
        self.strings.insert(shared.clone());
        shared
    }

    /// The shared copy of the labels `pairs` make (of pairs with one key,
    /// the last is kept).
    pub fn labels<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let pairs: Vec<Pair> = pairs
            .into_iter()
            .map(|(key, value)| (self.string(key), self.string(value)))
            .collect();
        let pairs = Labels::normalise(pairs);
        if let Some(shared) = self.sets.get(pairs.as_slice()) {
            return shared.clone();
        }
        let labels = Labels::from_sorted(pairs);
        self.sets.insert(labels.clone());
        labels
    }

    /// The shared copy of `labels`.
    pub fn share(&mut self, labels: &Labels) -> Labels {
        if let Some(shared) = self.sets.get(labels) {
            return shared.clone();
        }
        self.labels(
            labels
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
    }
}

impl fmt::Debug for LabelInterner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelInterner")
            .field("strings", &self.strings.len())
            .field("sets", &self.sets.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_like_the_map_it_replaces() {
        let pairs = [("tier", "web"), ("app", "shop"), ("z", ""), ("app", "cart")];
        let labels: Labels = pairs.iter().copied().collect();
        let mut expected = BTreeMap::new();
        for (k, v) in pairs {
            expected.insert(k.to_string(), v.to_string());
        }
        assert_eq!(BTreeMap::from(&labels), expected);
        assert_eq!(labels.len(), 3);
        assert_eq!(labels.get("app").unwrap(), "cart");
        assert_eq!(labels["tier"], "web");
        assert!(labels.contains_key("z"));
        assert!(labels.get("zz").is_none() && !labels.contains_key(""));
        let keys: Vec<&str> = labels.keys().map(LabelStr::as_str).collect();
        assert_eq!(keys, ["app", "tier", "z"]);
        assert_eq!(format!("{labels:?}"), format!("{expected:?}"));
        assert_eq!(Labels::from(expected), labels);
        assert!(Labels::new().is_empty() && Labels::new().iter().next().is_none());
        assert_eq!(Labels::from(BTreeMap::new()), Labels::new());
    }

    #[test]
    fn insert_and_remove_copy_without_touching_other_holders() {
        let mut labels: Labels = [("b", "2")].into();
        let shared = labels.clone();
        assert_eq!(labels.insert("a", "1"), None);
        assert_eq!(labels.insert("b", "3").unwrap(), "2");
        assert_eq!(BTreeMap::from(&labels), map(&[("a", "1"), ("b", "3")]));
        assert_eq!(BTreeMap::from(&shared), map(&[("b", "2")]));
        assert_eq!(labels.remove("a").unwrap(), "1");
        assert_eq!(labels.remove("a"), None);
        assert_eq!(labels.remove("b").unwrap(), "3");
        assert!(labels.is_empty());
        assert_eq!(labels, Labels::new());
    }

    #[test]
    fn equality_order_and_hash_follow_the_contents() {
        let a: Labels = [("x", "1"), ("y", "2")].into();
        let b: Labels = [("y", "2"), ("x", "1")].into();
        assert!(a == b && !a.ptr_eq(&b));
        let hash = |labels: &Labels| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            labels.hash(&mut hasher);
            hasher.finish()
        };
        assert_eq!(hash(&a), hash(&b));
        // Ordered as the maps would be.
        let maps = [
            map(&[]),
            map(&[("x", "1")]),
            map(&[("x", "1"), ("y", "2")]),
            map(&[("x", "2")]),
            map(&[("y", "0")]),
        ];
        for m in &maps {
            for n in &maps {
                let (l, k) = (Labels::from(m.clone()), Labels::from(n.clone()));
                assert_eq!(l.cmp(&k), m.cmp(n), "{m:?} {n:?}");
                assert_eq!(l == k, m == n);
            }
        }
    }

    #[test]
    fn the_interner_shares_equal_strings_and_sets() {
        let mut interner = LabelInterner::new();
        let a = interner.labels([("app", "web"), ("tier", "front")]);
        let b = interner.labels([("tier", "front"), ("app", "web")]);
        let c = interner.labels([("app", "db")]);
        assert!(a.ptr_eq(&b));
        assert!(!a.ptr_eq(&c));
        let (key_a, _) = a.iter().next().unwrap();
        let (key_c, _) = c.iter().next().unwrap();
        assert!(Arc::ptr_eq(&key_a.0, &key_c.0));
        let d: Labels = [("app", "db")].into();
        assert!(interner.share(&d).ptr_eq(&c));
        assert!(interner.labels([]).is_empty());
    }
}
