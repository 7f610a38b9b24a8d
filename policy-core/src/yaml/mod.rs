//! Spanned YAML (and JSON) document trees.
//!
//! Manifests are parsed once into a [`Node`] tree that remembers where every
//! value and every mapping key came from. Decoding into Kubernetes types then
//! runs over that tree (see [`crate::decode`]), so every error and every
//! unknown field can name its line and field path.
//!
//! JSON is a subset of YAML 1.2 flow syntax, so the YAML parser reads both;
//! but JSON text goes to the faster [`crate::json`] parser, which builds the
//! same trees.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

mod block;

/// A 1-based line and column in a source text. Line 0 means "unknown".
#[derive(
    Clone,
    Copy,
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
pub struct Location {
    /// 1-based line number; 0 when unknown.
    pub line: u32,
    /// 1-based column number; 0 when unknown.
    pub column: u32,
}

impl Location {
    /// A location at `line`, `column` (both 1-based).
    pub fn new(line: u32, column: u32) -> Self {
        Location { line, column }
    }

    fn from_saphyr(location: serde_saphyr::Location) -> Self {
        Location {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value with the location it was written at.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value, after YAML's implicit typing (`80` is an integer, `"80"` a string).
    pub value: Value,
    /// Where the value starts.
    pub location: Location,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string scalar.
    String(String),
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, in source order.
    Mapping(Vec<Entry>),
}

/// One `key: value` pair of a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key is written; diagnostics about a field point here.
    pub key_location: Location,
    /// The value.
    pub value: Node,
}

impl Value {
    /// True for a sequence or a mapping.
    pub fn is_collection(&self) -> bool {
        matches!(self, Value::Sequence(_) | Value::Mapping(_))
    }
}

impl Node {
    fn shift_lines(&mut self, lines: u32) {
        if self.location.line > 0 {
            self.location.line += lines;
        }
        match &mut self.value {
            Value::Sequence(items) => items.iter_mut().for_each(|item| item.shift_lines(lines)),
            Value::Mapping(entries) => {
                for entry in entries {
                    if entry.key_location.line > 0 {
                        entry.key_location.line += lines;
                    }
                    entry.value.shift_lines(lines);
                }
            }
            _ => {}
        }
    }

    /// The entry for `key` when this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Mapping(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|entry| &entry.value)
    }

    /// The string value, when this node is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// A short name for the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }
}

/// A document that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// What the parser said, without its source snippet.
    pub message: String,
    /// Where it happened, when the parser knows.
    pub location: Location,
    /// True when the parser could not read the rest of the document.
    pub fatal: bool,
}

/// Parses every document of a YAML stream (or one JSON text).
///
/// Empty documents are skipped. A document with a syntax error yields an
/// `Err` and the others are still returned. See [`for_each_document`].
pub fn parse_documents(text: &str) -> Vec<Result<Node, SyntaxError>> {
    let mut documents = Vec::new();
    for_each_document(text, |document| documents.push(document));
    documents
}

/// Below this size a stream is parsed on the calling thread.
const PARALLEL_THRESHOLD: usize = 512 * 1024;
/// Documents are parsed in batches of about this much text, so that only a
/// batch's trees are alive at once.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Parses every document of a stream and hands each to `visit`, in order.
///
/// The stream is split before every line that starts a document (`---` at
/// the start of a line, which YAML forbids inside any content), and each
/// document is parsed on its own. So a syntax error loses at most the rest of
/// its document, and large streams parse on every core: this function starts
/// threads, but does no I/O.
///
/// A text whose first non-whitespace byte is `{` or `[` is read as JSON (see
/// [`crate::json`]). If it is not JSON, the YAML parser reads it, as it would
/// a YAML flow collection; if that fails too, the JSON parser's error is the
/// one reported.
pub fn for_each_document(text: &str, mut visit: impl FnMut(Result<Node, SyntaxError>)) {
    if crate::json::looks_like_json(text) {
        match crate::json::parse(text) {
            Ok(node) => visit(Ok(node)),
            Err(json_error) => {
                let documents = parse_yaml_documents(text);
                if documents.iter().all(Result::is_ok) {
                    documents.into_iter().for_each(visit);
                } else {
                    visit(Err(json_error));
                }
            }
        }
        return;
    }
    for_each_yaml_document(text, visit);
}

/// Parses every document of a YAML stream with the YAML parser, even when
/// the text is JSON (for comparisons and benchmarks).
pub fn parse_yaml_documents(text: &str) -> Vec<Result<Node, SyntaxError>> {
    let mut documents = Vec::new();
    for_each_yaml_document(text, |document| documents.push(document));
    documents
}

/// [`for_each_document`] with the YAML parser.
///
/// Large streams are parsed in batches on a background thread (each batch
/// on every core) while the caller visits the previous batch, so decoding
/// overlaps parsing. At most three batches of trees are alive at once.
fn for_each_yaml_document(text: &str, mut visit: impl FnMut(Result<Node, SyntaxError>)) {
    let pieces = split_documents(text);
    let threads = if text.len() < PARALLEL_THRESHOLD {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    };
    let mut batches = Vec::new();
    let mut start = 0;
    while start < pieces.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < pieces.len() && (end == start || bytes < BATCH_BYTES) {
            bytes += pieces[end].1.len();
            end += 1;
        }
        batches.push(start..end);
        start = end;
    }
    let mut visit_batch = |parsed: Vec<Vec<Result<Node, SyntaxError>>>| {
        for document in parsed.into_iter().flatten() {
            visit(document);
        }
    };
    if threads <= 1 || batches.len() <= 1 {
        for batch in batches {
            visit_batch(parse_pieces(&pieces[batch], threads));
        }
        return;
    }
    let pieces = &pieces;
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for batch in batches {
                // The receiver only goes away when the caller is done.
                if sender.send(parse_pieces(&pieces[batch], threads)).is_err() {
                    break;
                }
            }
        });
        for parsed in receiver {
            visit_batch(parsed);
        }
    });
}

/// Parses pieces, on up to `threads` threads, keeping their order.
fn parse_pieces(pieces: &[(u32, &str)], threads: usize) -> Vec<Vec<Result<Node, SyntaxError>>> {
    if threads <= 1 || pieces.len() < 2 {
        return pieces
            .iter()
            .map(|&(offset, piece)| parse_piece(piece, offset))
            .collect();
    }
    // Contiguous groups of about equal size, one per thread.
    let total: usize = pieces.iter().map(|(_, piece)| piece.len()).sum();
    let share = total.div_ceil(threads);
    let mut groups: Vec<&[(u32, &str)]> = Vec::with_capacity(threads);
    let mut group_start = 0;
    let mut group_bytes = 0;
    for (index, (_, piece)) in pieces.iter().enumerate() {
        group_bytes += piece.len();
        if group_bytes >= share && groups.len() + 1 < threads {
            groups.push(&pieces[group_start..=index]);
            group_start = index + 1;
            group_bytes = 0;
        }
    }
    if group_start < pieces.len() {
        groups.push(&pieces[group_start..]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .iter()
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|&(offset, piece)| parse_piece(piece, offset))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("the YAML parser does not panic"))
            .collect()
    })
}

/// Splits a stream before each line that starts a document, keeping any
/// directive lines (`%YAML`, `%TAG`) with the document they precede. Each
/// piece comes with the number of lines before it.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut piece_line = 0u32;
    // The start of the current run of directive lines, if the previous lines are directives.
    let mut directives: Option<(usize, u32)> = None;
    let mut offset = 0;
    for (line, text_line) in text.split_inclusive('\n').enumerate() {
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        let starts_document = text_line.starts_with("---")
            && text_line[3..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace());
        if starts_document {
            let (split_at, split_line) = directives.unwrap_or((offset, line));
            if split_at > piece_start {
                pieces.push((piece_line, &text[piece_start..split_at]));
            }
            piece_start = split_at;
            piece_line = split_line;
            directives = None;
        } else if text_line.starts_with('%') {
            directives.get_or_insert((offset, line));
        } else if !text_line.trim().is_empty() && !text_line.starts_with('#') {
            directives = None;
        }
        offset += text_line.len();
    }
    if piece_start < text.len() {
        pieces.push((piece_line, &text[piece_start..]));
    }
    pieces
}

/// Parses one piece of a stream (normally one document); locations are
/// shifted by `line_offset`. A syntax error loses the rest of the piece.
///
/// Block YAML as Kubernetes tools write it goes to the fast [`block`]
/// reader; whatever it declines goes to the full parser.
fn parse_piece(text: &str, line_offset: u32) -> Vec<Result<Node, SyntaxError>> {
    match block::parse(text, line_offset) {
        Some(documents) => documents.into_iter().map(Ok).collect(),
        None => parse_piece_in_full(text, line_offset),
    }
}

/// Parses every document of `text` with the full YAML parser only (for the
/// scalars the fast reader does not type).
fn parse_with_full_parser(text: &str) -> Vec<Result<Node, SyntaxError>> {
    parse_piece_in_full(text, 0)
}

/// [`parse_piece`] with the full parser (serde-saphyr).
fn parse_piece_in_full(text: &str, line_offset: u32) -> Vec<Result<Node, SyntaxError>> {
    // The text is already in memory, so counts bounded by its size cannot
    // exhaust anything: the default caps (1,024 documents, 250,000 nodes) are
    // far below a large document. Alias replay stays capped, since that is
    // what can blow up beyond the input size.
    let generous = text.len().saturating_mul(4).saturating_add(1 << 16);
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: generous,
            max_nodes: generous,
            max_events: generous,
            max_total_scalar_bytes: generous,
        },
    };
    match serde_saphyr::from_multiple_with_options::<Spanned<Value>>(text, options) {
        Ok(documents) => documents
            .into_iter()
            .map(|spanned| {
                let mut node = Node {
                    value: spanned.value,
                    location: Location::from_saphyr(spanned.referenced),
                };
                if line_offset > 0 {
                    node.shift_lines(line_offset);
                }
                Ok(node)
            })
            .collect(),
        Err(error) => {
            let mut location = error
                .location()
                .map(Location::from_saphyr)
                .unwrap_or_default();
            if location.line > 0 {
                location.line += line_offset;
            }
            vec![Err(SyntaxError {
                message: plain_message(&error),
                location,
                fatal: true,
            })]
        }
    }
}

fn plain_message(error: &serde_saphyr::Error) -> String {
    let inner = error.without_snippet();
    let text = inner.to_string();
    // The parser appends " at line X column Y"; the location is reported separately.
    match text.find(" at line ") {
        Some(index) => text[..index].to_string(),
        None => text,
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            value: spanned.value,
            location: Location::from_saphyr(spanned.referenced),
        })
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Int(value))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        match i64::try_from(value) {
            Ok(small) => Ok(Value::Int(small)),
            Err(_) => match u64::try_from(value) {
                Ok(unsigned) => Ok(Value::UInt(unsigned)),
                Err(_) => Ok(Value::Float(value as f64)),
            },
        }
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(match i64::try_from(value) {
            Ok(small) => Value::Int(small),
            Err(_) => Value::UInt(value),
        })
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        match u64::try_from(value) {
            Ok(small) => self.visit_u64(small),
            Err(_) => Ok(Value::Float(value as f64)),
        }
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_bytes<E>(self, value: &[u8]) -> Result<Value, E> {
        Ok(Value::String(String::from_utf8_lossy(value).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: key.value.0,
                key_location: Location::from_saphyr(key.referenced),
                value,
            });
        }
        Ok(Value::Mapping(entries))
    }
}

/// A mapping key as text. Kubernetes keys are strings, but YAML allows `80:`
/// or `true:`; those are kept as their text so that decoding can reject them
/// with a location instead of failing the whole document here.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, value: &str) -> Result<KeyText, E> {
                Ok(KeyText(value.to_string()))
            }
            fn visit_string<E>(self, value: String) -> Result<KeyText, E> {
                Ok(KeyText(value))
            }
            fn visit_bool<E>(self, value: bool) -> Result<KeyText, E> {
                Ok(KeyText(value.to_string()))
            }
            fn visit_i64<E>(self, value: i64) -> Result<KeyText, E> {
                Ok(KeyText(value.to_string()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<KeyText, E> {
                Ok(KeyText(value.to_string()))
            }
            fn visit_f64<E>(self, value: f64) -> Result<KeyText, E> {
                Ok(KeyText(value.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// Asserts that two trees are equal, values, keys and locations, naming the
/// first difference; for tests that compare two parsers.
#[cfg(test)]
pub(crate) fn assert_same_tree(a: &Node, b: &Node, context: &str, path: &str) {
    assert_eq!(a.location, b.location, "{context}: location of `{path}`");
    match (&a.value, &b.value) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            assert_eq!(x.len(), y.len(), "{context}: size of `{path}`");
            for (x, y) in x.iter().zip(y) {
                let here = format!("{path}.{}", x.key);
                assert_eq!(x.key, y.key, "{context}: key at `{here}`");
                assert_eq!(
                    x.key_location, y.key_location,
                    "{context}: key location of `{here}`"
                );
                assert_same_tree(&x.value, &y.value, context, &here);
            }
        }
        (Value::Sequence(x), Value::Sequence(y)) => {
            assert_eq!(x.len(), y.len(), "{context}: size of `{path}`");
            for (index, (x, y)) in x.iter().zip(y).enumerate() {
                assert_same_tree(x, y, context, &format!("{path}[{index}]"));
            }
        }
        (x, y) => assert_eq!(x, y, "{context}: value of `{path}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_carry_their_lines() {
        let docs = parse_documents("a: 1\nb:\n  c: [x, \"y\"]\n");
        let root = docs[0].as_ref().unwrap();
        let b = root.entry("b").unwrap();
        assert_eq!(b.key_location.line, 2);
        let c = b.value.entry("c").unwrap();
        assert_eq!(c.key_location, Location::new(3, 3));
        match &c.value.value {
            Value::Sequence(items) => {
                assert_eq!(items[0].value, Value::String("x".into()));
                assert_eq!(items[1].location.line, 3);
            }
            other => panic!("expected a sequence, got {other:?}"),
        }
    }

    #[test]
    fn implicit_typing_distinguishes_numbers_from_quoted_strings() {
        let docs = parse_documents("port: 80\nname: \"80\"\nok: true\nnothing:\n");
        let root = docs[0].as_ref().unwrap();
        assert_eq!(root.get("port").unwrap().value, Value::Int(80));
        assert_eq!(root.get("name").unwrap().value, Value::String("80".into()));
        assert_eq!(root.get("ok").unwrap().value, Value::Bool(true));
        assert_eq!(root.get("nothing").unwrap().value, Value::Null);
    }

    #[test]
    fn every_document_of_a_stream_is_returned_and_empty_ones_skipped() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n...\n---\nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[2].as_ref().unwrap().location.line, 7);
    }

    #[test]
    fn json_parses_with_the_same_parser() {
        let docs = parse_documents("{\"kind\": \"List\", \"items\": [{\"a\": 1}]}");
        let root = docs[0].as_ref().unwrap();
        assert_eq!(root.get("kind").unwrap().as_str(), Some("List"));
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let docs = parse_documents("a: 1\nb: [unclosed\nc: 2\n");
        let error = docs
            .iter()
            .find_map(|d| d.as_ref().err())
            .expect("an error");
        assert!(error.location.line >= 2, "{error:?}");
    }

    #[test]
    fn large_streams_are_not_capped_by_default_budgets() {
        let text: String = (0..3000).map(|i| format!("---\nkind: Pod\nmetadata: {{name: p{i}, labels: {{a: b, c: d}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 80}}]}}]}}\n")).collect();
        let docs = parse_documents(&text);
        assert_eq!(docs.len(), 3000);
        assert!(docs.iter().all(Result::is_ok));
    }

    #[test]
    fn alias_bombs_are_still_stopped() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, previous) in ["b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g"])
        {
            let refs = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let docs = parse_documents(&text);
        assert!(docs[0].is_err());
    }

    #[test]
    fn a_syntax_error_loses_only_its_own_document() {
        let docs = parse_documents("a: 1\n---\nb: [unclosed\nc: 2\n---\nd: 4\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_ok());
        assert!(
            docs[1]
                .as_ref()
                .is_err_and(|e| e.fatal && e.location.line >= 3)
        );
        let last = docs[2].as_ref().unwrap();
        assert_eq!(last.get("d").unwrap().location.line, 6);
    }

    #[test]
    fn directives_stay_with_their_document_and_markers_need_a_line_start() {
        let docs =
            parse_documents("a: |\n  --- not a marker\n---\n%YAML 1.2\n---\nb: 2\n---x: 3\n");
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(
            docs[0].as_ref().unwrap().get("a").unwrap().as_str(),
            Some("--- not a marker\n")
        );
        assert!(docs[1].as_ref().unwrap().get("---x").is_some());
    }

    #[test]
    fn large_streams_parse_in_parallel_with_exact_lines() {
        let text: String = (0..20_000)
            .map(|i| format!("---\n# pod {i}\nkind: Pod\nmetadata: {{name: p{i}}}\n"))
            .collect();
        assert!(text.len() > PARALLEL_THRESHOLD);
        let docs = parse_documents(&text);
        assert_eq!(docs.len(), 20_000);
        for (i, doc) in docs.iter().enumerate().step_by(997) {
            let doc = doc.as_ref().unwrap();
            assert_eq!(
                doc.entry("kind").unwrap().key_location.line as usize,
                4 * i + 3
            );
            assert_eq!(
                doc.get("metadata").unwrap().get("name").unwrap().as_str(),
                Some(format!("p{i}").as_str())
            );
        }
    }

    #[test]
    fn streams_of_several_batches_keep_their_order_and_lines() {
        let text: String = (0..90_000)
            .map(|i| {
                format!(
                    "---\nkind: Pod\nmetadata:\n  name: p{i}\n  note: x{:0>200}\n",
                    i
                )
            })
            .collect();
        assert!(text.len() > 2 * BATCH_BYTES);
        let mut seen = 0;
        for_each_document(&text, |document| {
            let document = document.unwrap();
            let name = document.get("metadata").unwrap().get("name").unwrap();
            assert_eq!(name.as_str(), Some(format!("p{seen}").as_str()));
            assert_eq!(name.location.line as usize, 5 * seen + 4);
            seen += 1;
        });
        assert_eq!(seen, 90_000);
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let docs = parse_documents("a: 1\na: 2\n");
        let error = docs[0].as_ref().unwrap_err();
        assert!(
            error.message.to_lowercase().contains("duplicate"),
            "{error:?}"
        );
    }
}
