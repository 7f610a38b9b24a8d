//! A JSON parser that builds the same [`Node`] trees as the YAML path.
//!
//! `kubectl get -o json` dumps are large (about 11 KB per pod), and JSON
//! needs none of YAML's machinery, so JSON input takes this byte-level
//! recursive-descent parser instead of the YAML one. It gives every value
//! and key its line and column (columns count characters, as the YAML
//! parser does), types scalars as the YAML path types the same JSON text
//! (see [`number`]), and reports duplicate keys as the YAML path does.
//!
//! [`crate::yaml::for_each_document`] picks it when the first
//! non-whitespace byte is `{` or `[`; text that is not JSON (a YAML flow
//! mapping, comments, a stream of documents) goes to the YAML parser as
//! before.

use std::collections::HashSet;

use crate::yaml::{Entry, Location, Node, SyntaxError, Value};

/// Objects with up to this many keys look for duplicates by a linear scan
/// of their keys' hashes.
const LINEAR_KEYS: usize = 32;

/// FNV-1a: keys are short, and a collision only costs a linear scan.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Nesting deeper than this is an error (the YAML path then reads the text).
const MAX_DEPTH: usize = 512;

/// True when `text` starts (after whitespace) with `{` or `[`.
pub fn looks_like_json(text: &str) -> bool {
    matches!(
        text.bytes()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
        Some(b'{' | b'[')
    )
}

/// Parses one JSON text (a single value, with whitespace around it).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
        line_start: 0,
        wide: 0,
        depth: 0,
        scratch: Vec::new(),
        entries: Vec::new(),
        items: Vec::new(),
        hashes: Vec::new(),
    };
    parser.skip_whitespace();
    let node = parser.value()?;
    parser.skip_whitespace();
    if parser.pos < parser.bytes.len() {
        return Err(parser.error_here("expected the end of the text after the JSON value"));
    }
    Ok(node)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    /// 1-based line of `pos`.
    line: u32,
    /// Byte offset where the current line starts.
    line_start: usize,
    /// UTF-8 continuation bytes between `line_start` and `pos`, so that
    /// columns count characters.
    wide: usize,
    depth: usize,
    scratch: Vec<u8>,
    /// The entries of the objects being read, innermost last; each object
    /// moves its own into a `Vec` of exactly their number when it ends.
    entries: Vec<Entry>,
    /// The same for the elements of arrays.
    items: Vec<Node>,
    /// The hashes of the keys in `entries`.
    hashes: Vec<u64>,
}

impl Parser<'_> {
    fn location(&self) -> Location {
        let column = self.pos - self.line_start - self.wide + 1;
        Location::new(self.line, u32::try_from(column).unwrap_or(u32::MAX))
    }

    fn error_at(&self, location: Location, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            message: message.into(),
            location,
            fatal: true,
        }
    }

    fn error_here(&self, message: &str) -> SyntaxError {
        let found = match self.text[self.pos..].chars().next() {
            None => "the end of the text".to_string(),
            Some(c) if c.is_control() => format!("{c:?}"),
            Some(c) => format!("`{c}`"),
        };
        self.error_at(self.location(), format!("{message}, found {found}"))
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(&byte) = self.bytes.get(self.pos) {
            match byte {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                    self.wide = 0;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self) -> Result<Node, SyntaxError> {
        let location = self.location();
        let value = match self.bytes.get(self.pos) {
            Some(b'{') => self.object()?,
            Some(b'[') => self.array()?,
            Some(b'"') => Value::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') if self.bytes[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Value::Bool(true)
            }
            Some(b'f') if self.bytes[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Value::Bool(false)
            }
            Some(b'n') if self.bytes[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Value::Null
            }
            _ => {
                return Err(self.error_here(
                    "expected a JSON value (an object, array, string, number, true, false or null)",
                ));
            }
        };
        Ok(Node { value, location })
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                self.location(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, SyntaxError> {
        self.enter()?;
        self.pos += 1; // `{`
        let start = self.entries.len();
        debug_assert_eq!(start, self.hashes.len());
        // The key hashes, once the object is too large for a linear scan.
        let mut large: Option<HashSet<u64>> = None;
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Mapping(Vec::new()));
        }
        loop {
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error_here("expected a string key in double quotes"));
            }
            let key_location = self.location();
            let key = self.string()?;
            let hash = key_hash(&key);
            let duplicate = match &mut large {
                Some(set) => !set.insert(hash) && self.has_key(start, hash, &key),
                None => self.has_key(start, hash, &key),
            };
            if duplicate {
                // The YAML parser's words, so both paths report it alike.
                return Err(self.error_at(
                    key_location,
                    format!(
                        "duplicate mapping key: {key}, set DuplicateKeyPolicy in Options if acceptable"
                    ),
                ));
            }
            self.skip_whitespace();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error_here("expected `:` after an object key"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value()?;
            self.entries.push(Entry {
                key,
                key_location,
                value,
            });
            self.hashes.push(hash);
            if large.is_none() && self.hashes.len() - start == LINEAR_KEYS {
                large = Some(self.hashes[start..].iter().copied().collect());
            }
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    self.hashes.truncate(start);
                    return Ok(Value::Mapping(self.entries.drain(start..).collect()));
                }
                _ => return Err(self.error_here("expected `,` or `}` after an object entry")),
            }
        }
    }

    /// True when the object whose entries start at `start` has `key` (of `hash`).
    fn has_key(&self, start: usize, hash: u64, key: &str) -> bool {
        self.hashes[start..]
            .iter()
            .zip(&self.entries[start..])
            .any(|(h, entry)| *h == hash && entry.key == key)
    }

    fn array(&mut self) -> Result<Value, SyntaxError> {
        self.enter()?;
        self.pos += 1; // `[`
        let start = self.items.len();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Sequence(Vec::new()));
        }
        loop {
            let item = self.value()?;
            self.items.push(item);
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Sequence(self.items.drain(start..).collect()));
                }
                _ => return Err(self.error_here("expected `,` or `]` after an array element")),
            }
        }
    }

    /// A string at `"`; returns its value and leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos + 1;
        let mut pos = start;
        // The fast path: no escapes.
        loop {
            match self.bytes.get(pos) {
                Some(b'"') => {
                    self.pos = pos + 1;
                    return Ok(self.text[start..pos].to_string());
                }
                Some(b'\\') => break,
                Some(&byte) if byte < 0x20 => {
                    self.pos = pos;
                    return Err(self.error_here(
                        "expected a character or `\"` in a string (control characters must be escaped)",
                    ));
                }
                Some(&byte) => {
                    if byte & 0xC0 == 0x80 {
                        self.wide += 1;
                    }
                    pos += 1;
                }
                None => {
                    self.pos = pos;
                    return Err(self.error_here("expected `\"` to end the string"));
                }
            }
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out.extend_from_slice(&self.bytes[start..pos]);
        self.pos = pos;
        let result = self.string_with_escapes(&mut out);
        let value = result.map(|()| {
            String::from_utf8(out.clone()).expect("escapes decode to UTF-8 and the rest is text")
        });
        self.scratch = out;
        value
    }

    /// The rest of a string from its first `\`, appended to `out`.
    fn string_with_escapes(&mut self, out: &mut Vec<u8>) -> Result<(), SyntaxError> {
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(self.error_here("expected `\"` to end the string"));
            };
            match byte {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    let escape_location = self.location();
                    let Some(&kind) = self.bytes.get(self.pos + 1) else {
                        self.pos += 1;
                        return Err(self.error_here("expected an escape after `\\`"));
                    };
                    let simple = match kind {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0C),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(simple) = simple {
                        out.push(simple);
                        self.pos += 2;
                        continue;
                    }
                    if kind != b'u' {
                        self.pos += 1;
                        return Err(self.error_here(
                            "expected one of `\"`, `\\`, `/`, `b`, `f`, `n`, `r`, `t`, `u` after `\\` in a string",
                        ));
                    }
                    self.pos += 2;
                    let first = self.hex4()?;
                    let code = if (0xD800..0xDC00).contains(&first) {
                        // A high surrogate: a low one must follow.
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error_at(
                                escape_location,
                                format!("\\u{first:04X} is half of a surrogate pair; expected a \\uDC00-\\uDFFF escape after it"),
                            ));
                        }
                        self.pos += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&second) {
                            return Err(self.error_at(
                                escape_location,
                                format!("\\u{first:04X} is half of a surrogate pair; expected a \\uDC00-\\uDFFF escape after it, found \\u{second:04X}"),
                            ));
                        }
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    } else if (0xDC00..0xE000).contains(&first) {
                        return Err(self.error_at(
                            escape_location,
                            format!("\\u{first:04X} is a lone low surrogate, not a character"),
                        ));
                    } else {
                        first
                    };
                    let c = char::from_u32(code).expect("surrogates are handled above");
                    let mut buffer = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                byte if byte < 0x20 => {
                    return Err(self.error_here(
                        "expected a character or `\"` in a string (control characters must be escaped)",
                    ));
                }
                byte => {
                    if byte & 0xC0 == 0x80 {
                        self.wide += 1;
                    }
                    out.push(byte);
                    self.pos += 1;
                }
            }
        }
    }

    /// Four hex digits of a `\\u` escape.
    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .bytes
                .get(self.pos)
                .and_then(|b| (*b as char).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error_here("expected four hex digits after `\\u`"));
            };
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// A number, typed as the YAML path types the same text (see [`number`]).
    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        let bytes = self.bytes;
        let mut pos = start;
        if bytes[pos] == b'-' {
            pos += 1;
        }
        let digits = |pos: &mut usize| {
            let from = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - from
        };
        let int_start = pos;
        let int_digits = digits(&mut pos);
        if int_digits == 0 {
            self.pos = pos;
            return Err(self.error_here("expected a digit"));
        }
        if int_digits > 1 && bytes[int_start] == b'0' {
            self.pos = int_start + 1;
            return Err(self.error_here("expected no digit after a leading 0"));
        }
        let mut integer = true;
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            integer = false;
            if digits(&mut pos) == 0 {
                self.pos = pos;
                return Err(self.error_here("expected a digit after the decimal point"));
            }
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            integer = false;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            if digits(&mut pos) == 0 {
                self.pos = pos;
                return Err(self.error_here("expected a digit in the exponent"));
            }
        }
        let text = &self.text[start..pos];
        match number(text, integer) {
            Some(value) => {
                self.pos = pos;
                Ok(value)
            }
            // The YAML path rejects these too.
            None => Err(self.error_at(
                self.location(),
                format!("non-finite float `{text}` rejected by the configured policy"),
            )),
        }
    }
}

/// The value of a JSON number `text`: an integer when it has no fraction
/// or exponent and fits in `i64` (or, when positive, `u64`), a float
/// otherwise, as the YAML path reads it. `None` when the float is not
/// finite (`1e400`).
fn number(text: &str, integer: bool) -> Option<Value> {
    if integer {
        if let Ok(small) = text.parse::<i64>() {
            return Some(Value::Int(small));
        }
        if let Ok(unsigned) = text.parse::<u64>() {
            return Some(Value::UInt(unsigned));
        }
    }
    let float = text.parse::<f64>().expect("a JSON number is a float");
    float.is_finite().then_some(Value::Float(float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{parse_documents, parse_yaml_documents};

    /// The YAML parser's tree for `text`, which must be one document.
    fn yaml(text: &str) -> Result<Node, SyntaxError> {
        let mut documents = parse_yaml_documents(text);
        assert_eq!(documents.len(), 1, "{text}: {documents:?}");
        documents.remove(0)
    }

    /// Both parsers accept `text` and build the same tree, positions included.
    fn same(text: &str) -> Node {
        let json = parse(text).unwrap_or_else(|e| panic!("JSON parser: {e:?}\n{text}"));
        let yaml = yaml(text).unwrap_or_else(|e| panic!("YAML parser: {e:?}\n{text}"));
        if json != yaml {
            crate::yaml::assert_same_tree(&json, &yaml, text, "");
        }
        json
    }

    fn error(text: &str) -> SyntaxError {
        parse(text).expect_err(text)
    }

    #[test]
    fn keys_and_values_carry_line_and_column() {
        let root = same("{\n  \"a\": {\n    \"b\": [\n      true,\n      null, -2\n    ]\n  }\n}");
        assert_eq!(root.location, Location::new(1, 1));
        let a = root.entry("a").unwrap();
        assert_eq!(a.key_location, Location::new(2, 3));
        assert_eq!(a.value.location, Location::new(2, 8));
        let b = a.value.entry("b").unwrap();
        assert_eq!(b.key_location, Location::new(3, 5));
        let Value::Sequence(items) = &b.value.value else {
            panic!("a sequence")
        };
        assert_eq!(items[0].location, Location::new(4, 7));
        assert_eq!(items[1].location, Location::new(5, 7));
        assert_eq!(items[2].location, Location::new(5, 13));
        assert_eq!(items[2].value, Value::Int(-2));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let root =
            same("{\"é\": \"üü\", \"b\": 1,\n \"c\": \"日本\", \"d\": \"\\u00e9x\", \"e\": 2}");
        assert_eq!(root.entry("b").unwrap().key_location, Location::new(1, 13));
        assert_eq!(root.entry("e").unwrap().key_location, Location::new(2, 29));
    }

    #[test]
    fn escapes_and_surrogate_pairs_decode() {
        let root = same(r#"{"s": "\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\ \u0041", "t": "plain"}"#);
        assert_eq!(
            root.get("s").unwrap().as_str(),
            Some("é😀/\u{8}\u{c}\n\r\t\"\\ A")
        );
        let root = same(r#"{"k\u00e9y": "\uD834\uDD1E"}"#);
        assert_eq!(root.get("kéy").unwrap().as_str(), Some("𝄞"));
    }

    #[test]
    fn numbers_are_typed_as_the_yaml_path_types_them() {
        let root = same(
            "[0, -0, 80, -7, 2.5, -0.0, 1e3, 1E+2, 2.5e-3, 1.0, 9223372036854775807, \
             9223372036854775808, 18446744073709551615, 18446744073709551616, \
             -9223372036854775808, -9223372036854775809, 123456789012345678901234567890]",
        );
        let Value::Sequence(items) = root.value else {
            panic!("a sequence")
        };
        let values: Vec<Value> = items.into_iter().map(|node| node.value).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(0),
                Value::Int(0),
                Value::Int(80),
                Value::Int(-7),
                Value::Float(2.5),
                Value::Float(-0.0),
                Value::Float(1000.0),
                Value::Float(100.0),
                Value::Float(0.0025),
                Value::Float(1.0),
                Value::Int(i64::MAX),
                Value::UInt(1 << 63),
                Value::UInt(u64::MAX),
                Value::Float(18446744073709551616.0),
                Value::Int(i64::MIN),
                Value::Float(-9223372036854775809.0),
                Value::Float(123456789012345678901234567890.0),
            ]
        );
        // Both parsers reject floats that do not fit.
        assert!(parse("[1e400]").is_err() && yaml("[1e400]").is_err());
    }

    #[test]
    fn literals_strings_and_empty_collections() {
        let root = same("  [ {}, [], \"\", true, false, null, {\"a\":1,\n \"b\":\t[ ]\t} ]  \n");
        assert_eq!(root.location, Location::new(1, 3));
    }

    #[test]
    fn duplicate_keys_are_reported_as_the_yaml_path_reports_them() {
        for text in [
            "{\"a\": 1, \"a\": 2}".to_string(),
            // Past the linear scan: the hashed check.
            format!(
                "{{{}, \"k3\": 0}}",
                (0..40)
                    .map(|i| format!("\"k{i}\": {i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ] {
            assert_eq!(
                parse(&text).unwrap_err(),
                yaml(&text).unwrap_err(),
                "{text}"
            );
        }
        // Many distinct keys are fine.
        let text = format!(
            "{{{}}}",
            (0..100)
                .map(|i| format!("\"k{i}\": {i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        same(&text);
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let cases = [
            (
                "{\"a\": 1,\n  \"b\" 2}",
                (2, 7),
                "expected `:` after an object key, found `2`",
            ),
            (
                "{\"a\": [1, 2}",
                (1, 12),
                "expected `,` or `]` after an array element, found `}`",
            ),
            (
                "{\"a\": 1 \"b\": 2}",
                (1, 9),
                "expected `,` or `}` after an object entry, found `\"`",
            ),
            (
                "{\"a\": 1,}",
                (1, 9),
                "expected a string key in double quotes, found `}`",
            ),
            (
                "{a: 1}",
                (1, 2),
                "expected a string key in double quotes, found `a`",
            ),
            (
                "[tru]",
                (1, 2),
                "expected a JSON value (an object, array, string, number, true, false or null), found `t`",
            ),
            (
                "{\"a\": \"x",
                (1, 9),
                "expected `\"` to end the string, found the end of the text",
            ),
            (
                "{\"a\": \"x\ny\"}",
                (1, 9),
                "expected a character or `\"` in a string (control characters must be escaped), found '\\n'",
            ),
            (
                "[\"\\x\"]",
                (1, 4),
                "expected one of `\"`, `\\`, `/`, `b`, `f`, `n`, `r`, `t`, `u` after `\\` in a string, found `x`",
            ),
            (
                "[\"\\u12g4\"]",
                (1, 7),
                "expected four hex digits after `\\u`, found `g`",
            ),
            (
                "[01]",
                (1, 3),
                "expected no digit after a leading 0, found `1`",
            ),
            (
                "[1.]",
                (1, 4),
                "expected a digit after the decimal point, found `]`",
            ),
            (
                "[1e]",
                (1, 4),
                "expected a digit in the exponent, found `]`",
            ),
            ("[-]", (1, 3), "expected a digit, found `]`"),
            (
                "[1e400]",
                (1, 2),
                "non-finite float `1e400` rejected by the configured policy",
            ),
            (
                "{} {}",
                (1, 4),
                "expected the end of the text after the JSON value, found `{`",
            ),
            (
                "[\"\\ud83d\"]",
                (1, 3),
                "\\uD83D is half of a surrogate pair; expected a \\uDC00-\\uDFFF escape after it",
            ),
            (
                "[\"\\ud83d\\u0041\"]",
                (1, 3),
                "\\uD83D is half of a surrogate pair; expected a \\uDC00-\\uDFFF escape after it, found \\u0041",
            ),
            (
                "[\"\\ude00\"]",
                (1, 3),
                "\\uDE00 is a lone low surrogate, not a character",
            ),
        ];
        for (text, (line, column), message) in cases {
            let error = error(text);
            assert_eq!(
                (error.location, error.message.as_str(), error.fatal),
                (Location::new(line, column), message, true),
                "{text}"
            );
        }
        let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
        assert!(error(&deep).message.contains("nesting deeper than 512"));
    }

    #[test]
    fn json_is_detected_and_yaml_flow_text_still_reads_as_yaml() {
        assert!(looks_like_json(" \n\t{\"a\": 1}"));
        assert!(looks_like_json("[1]"));
        assert!(!looks_like_json("a: 1\n"));
        assert!(!looks_like_json("# {\n{}"));
        // Not JSON, but YAML: the YAML parser reads it, as before.
        let documents = parse_documents("{a: 1, b: [x, y],}\n");
        assert_eq!(documents.len(), 1);
        let root = documents[0].as_ref().unwrap();
        assert_eq!(root.get("a").unwrap().value, Value::Int(1));
        // Neither: the JSON parser's error is reported.
        let documents = parse_documents("{\"a\": [1, 2}\n");
        let error = documents[0].as_ref().unwrap_err();
        assert_eq!(error.location, Location::new(1, 12));
        assert!(
            error.message.starts_with("expected `,` or `]`"),
            "{error:?}"
        );
    }

    /// `node` as JSON text: pretty (kubectl's four spaces) or compact.
    fn to_json(node: &Node, pretty: bool, indent: usize, out: &mut String) {
        let newline = |out: &mut String, indent: usize| {
            if pretty {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
            }
        };
        match &node.value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(&b.to_string()),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::UInt(u) => out.push_str(&u.to_string()),
            Value::Float(f) => out.push_str(&format!("{f:?}")),
            Value::String(text) => out.push_str(&serde_json::to_string(text).unwrap()),
            Value::Sequence(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 4);
                    to_json(item, pretty, indent + 4, out);
                }
                if !items.is_empty() {
                    newline(out, indent);
                }
                out.push(']');
            }
            Value::Mapping(entries) => {
                out.push('{');
                for (i, entry) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 4);
                    out.push_str(&serde_json::to_string(&entry.key).unwrap());
                    out.push_str(if pretty { ": " } else { ":" });
                    to_json(&entry.value, pretty, indent + 4, out);
                }
                if !entries.is_empty() {
                    newline(out, indent);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn the_synthetic_kubectl_dump_parses_as_the_yaml_parser_parses_it() {
        let text = netpol_synth::generate_kubectl_json(&netpol_synth::Params::small());
        let root = same(&text);
        let Some(Value::Sequence(items)) = root.get("items").map(|n| &n.value) else {
            panic!("a List")
        };
        assert!(items.len() > 200);
    }

    #[test]
    fn testdata_json_and_manifests_as_json_parse_as_the_yaml_parser_parses_them() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        let mut stack = vec![root];
        let (mut json_files, mut converted) = (0, 0);
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for path in entries {
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let extension = path.extension().and_then(|e| e.to_str());
                if extension == Some("json") && looks_like_json(&text) {
                    same(&text);
                    json_files += 1;
                } else if matches!(extension, Some("yaml" | "yml")) {
                    // Each YAML document, written as JSON both ways.
                    for document in parse_yaml_documents(&text).into_iter().flatten() {
                        if !finite(&document) {
                            continue;
                        }
                        for pretty in [true, false] {
                            let mut json = String::new();
                            to_json(&document, pretty, 0, &mut json);
                            let node = same(&json);
                            if pretty {
                                // Positions differ from the YAML source, but values are equal.
                                assert_eq!(strip(&node), strip(&document), "{}", path.display());
                            }
                        }
                        converted += 1;
                    }
                }
            }
        }
        assert!(json_files >= 20, "{json_files} JSON files");
        assert!(converted >= 200, "{converted} YAML documents");
    }

    /// False when a float is not finite (JSON cannot write it).
    fn finite(node: &Node) -> bool {
        match &node.value {
            Value::Float(f) => f.is_finite(),
            Value::Sequence(items) => items.iter().all(finite),
            Value::Mapping(entries) => entries.iter().all(|e| finite(&e.value)),
            _ => true,
        }
    }

    /// `node` with every location cleared.
    fn strip(node: &Node) -> Node {
        let value = match &node.value {
            Value::Sequence(items) => Value::Sequence(items.iter().map(strip).collect()),
            Value::Mapping(entries) => Value::Mapping(
                entries
                    .iter()
                    .map(|e| Entry {
                        key: e.key.clone(),
                        key_location: Location::default(),
                        value: strip(&e.value),
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
        Node {
            value,
            location: Location::default(),
        }
    }

    proptest::proptest! {
        /// Malformed input is an error with a position, never a panic:
        /// random mixes of JSON tokens, escapes and multi-byte characters.
        #[test]
        fn malformed_input_never_panics(
            text in "[\\[\\]{}:,\"\\\\ubtnrfl0-9a-fA-FeE+.\\- \n\té𝄞\u{0}]{0,48}"
        ) {
            if let Err(error) = parse(&text) {
                // Where: a line of the text (or the one after its end).
                let lines = text.split('\n').count();
                proptest::prop_assert!(
                    (1..=lines + 1).contains(&(error.location.line as usize)),
                    "{:?} for {:?}", error, text
                );
                proptest::prop_assert!(!error.message.is_empty());
            }
        }
    }
}
