//! A fast reader for the block YAML that Kubernetes tools write.
//!
//! `kubectl get -o yaml`, `helm template` and most hand-written manifests
//! use a small part of YAML: block mappings and sequences, one-line plain or
//! quoted scalars, comments and empty `{}` / `[]`. This reader handles
//! exactly that part, about ten times faster than the full parser, and
//! declines everything else: anchors and aliases, tags, block and multi-line
//! scalars, non-empty flow collections, directives, tabs, carriage returns,
//! non-ASCII text, duplicate keys, anything it is unsure of. A declined
//! document goes to the full parser ([`super::parse_piece`]), which also
//! gives every error message, so this reader never reports one.
//!
//! The contract: when [`parse`] returns `Some`, the trees are equal to the
//! full parser's, values, keys and locations included. Plain scalars are
//! typed here only where the answer is certain (a word that is no YAML 1.1
//! boolean, null or special float is a string; a short decimal is an
//! integer); any other plain scalar is typed by the full parser itself. The
//! tests compare both readers on every manifest in the repository and on
//! random documents.

use super::{Entry, Location, Node, Value};

/// Words that YAML 1.1 or 1.2 may read as something other than a string
/// (compared case-insensitively); plain scalars spelled so are typed by the
/// full parser.
const RESERVED_WORDS: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf", "infinity",
];

/// Nesting deeper than this is declined: the full parser refuses documents
/// nested more than 64 levels ("budget breached"), and the fast reader must
/// never accept what the full parser refuses.
const MAX_DEPTH: usize = 40;

/// Longest implicit key YAML allows.
const MAX_KEY_LENGTH: usize = 1024;

/// Mappings with more keys than this look for duplicates in a hash set.
const LINEAR_KEYS: usize = 32;

/// Reads one piece of a stream (see [`super::split_documents`]): at most one
/// document, after an optional `---` line. Lines are shifted by
/// `line_offset`. `None` means "not in the subset": use the full parser.
pub(super) fn parse(text: &str, line_offset: u32) -> Option<Vec<Node>> {
    if !text
        .bytes()
        .all(|byte| byte == b'\n' || byte == b'\r' || (0x20..0x7f).contains(&byte))
    {
        return None;
    }
    let lines = significant_lines(text, line_offset)?;
    if lines.is_empty() {
        // An empty document: the full parser decides what it is.
        return None;
    }
    let mut reader = Reader {
        text: text.as_bytes(),
        lines,
        next: 0,
        depth: 0,
    };
    let first = reader.lines[0];
    let root = reader.node(first.indent, -1, true)?;
    if reader.next != reader.lines.len() || !root.value.is_collection() {
        return None;
    }
    Some(vec![root])
}

/// A line with content: not blank, not only a comment.
#[derive(Clone, Copy, Debug)]
struct Line {
    /// Byte offset of the line's first byte.
    start: usize,
    /// Byte offset of the line's end (its `\n`, or the end of the text).
    end: usize,
    /// Spaces before the content.
    indent: usize,
    /// 1-based line number in the whole stream.
    number: u32,
}

/// The lines that carry content, after an optional `---` line and before an
/// optional `...` line. `None` when the piece has anything else around its
/// document (directives, content after `...`, a `---` line with content).
fn significant_lines(text: &str, line_offset: u32) -> Option<Vec<Line>> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut number = line_offset;
    let mut ended = false;
    while start < bytes.len() {
        let (end, next) = line_end(bytes, start)?;
        number += 1;
        let line = &bytes[start..end];
        let indent = line.iter().take_while(|&&byte| byte == b' ').count();
        let content = &line[indent..];
        let blank = content.is_empty() || content[0] == b'#';
        if indent == 0 && (line.starts_with(b"---") || line.starts_with(b"...")) {
            let rest = &line[3..];
            let marker = rest.is_empty() || rest[0] == b' ';
            if marker {
                if !only_comment(rest) {
                    return None;
                }
                if line[0] == b'.' {
                    ended = true;
                } else if !lines.is_empty() || ended {
                    return None;
                }
                start = next;
                continue;
            }
        }
        if !blank {
            if ended || (indent == 0 && content[0] == b'%') {
                return None;
            }
            lines.push(Line {
                start,
                end,
                indent,
                number,
            });
        }
        start = next;
    }
    Some(lines)
}

/// The end of the line starting at `from` (before its `\n` or `\r\n`)
/// and the start of the next one. `None` for a carriage return elsewhere.
fn line_end(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let newline = bytes[from..]
        .iter()
        .position(|&byte| byte == b'\n')
        .map_or(bytes.len(), |offset| from + offset);
    let end = if newline > from && bytes[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    if bytes[from..end].contains(&b'\r') {
        return None;
    }
    Some((end, newline + 1))
}

/// True when `rest` is empty, spaces, or spaces and then a comment.
fn only_comment(rest: &[u8]) -> bool {
    let trimmed = rest.iter().position(|&byte| byte != b' ');
    match trimmed {
        None => true,
        Some(offset) => rest[offset] == b'#' && offset > 0,
    }
}

struct Reader<'a> {
    text: &'a [u8],
    lines: Vec<Line>,
    /// The line being read.
    next: usize,
    /// How many nodes enclose the one being read.
    depth: usize,
}

impl Reader<'_> {
    fn line(&self) -> Option<Line> {
        self.lines.get(self.next).copied()
    }

    fn location(&self, line: Line, column: usize) -> Location {
        Location::new(line.number, u32::try_from(column + 1).unwrap_or(u32::MAX))
    }

    /// Reads the node that starts at `column` of the current line. Lines
    /// that continue it are indented more than `parent_indent`. Collections
    /// may start here unless the node is a mapping value on its key's line.
    fn node(&mut self, column: usize, parent_indent: isize, collections: bool) -> Option<Node> {
        // Deep nesting is declined, so that recursion stays shallow; the
        // full parser has its own limits.
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let node = self.node_at(column, parent_indent, collections);
        self.depth -= 1;
        node
    }

    fn node_at(&mut self, column: usize, parent_indent: isize, collections: bool) -> Option<Node> {
        let line = self.line()?;
        let rest = &self.text[line.start + column..line.end];
        if is_entry_marker(rest) {
            if !collections {
                return None;
            }
            return self.sequence(column, false);
        }
        if collections && let Some(first_key) = self.key_at(line, column) {
            return self.mapping(column, first_key);
        }
        let (value, after) = self.scalar(line, column)?;
        if !only_comment(&self.text[line.start + after..line.end]) {
            return None;
        }
        self.next += 1;
        // A following line indented more would continue a multi-line scalar.
        if let Some(following) = self.line()
            && following.indent as isize > parent_indent
        {
            return None;
        }
        Some(Node {
            value,
            location: self.location(line, column),
        })
    }

    /// A block sequence whose `-` markers are at `indent`.
    fn sequence(&mut self, indent: usize, compact: bool) -> Option<Node> {
        let marker = self.location(self.line()?, indent);
        let mut items = Vec::new();
        while let Some(line) = self.line() {
            // The first `-` may follow another on its line (`- - a`).
            if line.indent != indent && !(items.is_empty() && line.indent < indent) {
                if line.indent > indent {
                    return None;
                }
                break;
            }
            let rest = &self.text[line.start + indent..line.end];
            if !is_entry_marker(rest) {
                break;
            }
            let after_marker = indent + 1;
            let content = after_marker
                + self.text[line.start + after_marker..line.end]
                    .iter()
                    .take_while(|&&byte| byte == b' ')
                    .count();
            if only_comment(&self.text[line.start + after_marker..line.end]) {
                self.next += 1;
                match self.line() {
                    // An item below its `-`: where the full parser places it
                    // depends on the sequence's own indentation; declined.
                    Some(nested) if nested.indent > indent => return None,
                    // `-` alone is null, placed after the marker by the full parser.
                    _ if line.end - line.start <= after_marker + 1
                        && !self.text[line.start + after_marker..line.end].contains(&b'#') =>
                    {
                        items.push(Node {
                            value: Value::Null,
                            location: self.location(line, line.end - line.start),
                        });
                    }
                    _ => return None,
                }
            } else {
                items.push(self.node(content, indent as isize, true)?);
            }
        }
        // The full parser places a sequence at its first `-`, but a
        // sequence at its key's indentation where its first item starts.
        let location = if compact {
            items.first()?.location
        } else {
            marker
        };
        Some(Node {
            value: Value::Sequence(items),
            location,
        })
    }

    /// A block mapping whose keys are at `indent`; its first key, already
    /// read, is `first_key` (the key and the offset after its colon).
    fn mapping(&mut self, indent: usize, first_key: (String, usize)) -> Option<Node> {
        let mut pending_key = Some(first_key);
        let first = self.line()?;
        let location = self.location(first, indent);
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen: Option<std::collections::HashSet<String>> = None;
        while let Some(line) = self.line() {
            // The first key may follow a `- ` on its line; the others start their lines.
            if line.indent != indent && !(entries.is_empty() && line.indent < indent) {
                if line.indent > indent {
                    return None;
                }
                break;
            }
            let (key, after_colon) = match pending_key.take() {
                Some(first) => first,
                None => self.key_at(line, indent)?,
            };
            if key == "<<" {
                return None;
            }
            if entries.len() >= LINEAR_KEYS {
                let set = seen
                    .get_or_insert_with(|| entries.iter().map(|entry| entry.key.clone()).collect());
                if !set.insert(key.clone()) {
                    return None;
                }
            } else if entries.iter().any(|entry| entry.key == key) {
                return None;
            }
            let key_location = self.location(line, indent);
            let rest = &self.text[line.start + after_colon..line.end];
            let value = if only_comment(rest) {
                self.next += 1;
                match self.line() {
                    Some(nested) if nested.indent > indent => {
                        self.node(nested.indent, indent as isize, true)?
                    }
                    Some(nested)
                        if nested.indent == indent
                            && is_entry_marker(&self.text[nested.start + indent..nested.end]) =>
                    {
                        self.sequence(indent, true)?
                    }
                    // `key:` alone is null, placed at the colon by the full parser.
                    _ if rest.is_empty() => Node {
                        value: Value::Null,
                        location: self.location(line, after_colon - 1),
                    },
                    _ => return None,
                }
            } else {
                let spaces = rest.iter().take_while(|&&byte| byte == b' ').count();
                self.node(after_colon + spaces, indent as isize, false)?
            };
            entries.push(Entry {
                key,
                key_location,
                value,
            });
        }
        Some(Node {
            value: Value::Mapping(entries),
            location,
        })
    }

    /// The key at `column` of `line` when the line holds `key:` there
    /// (followed by a space or the end of the line), and the offset after
    /// the colon. Keys that are not certainly strings are declined.
    fn key_at(&self, line: Line, column: usize) -> Option<(String, usize)> {
        let bytes = &self.text[line.start..line.end];
        let rest = &bytes[column..];
        match rest.first()? {
            b'"' | b'\'' => {
                let (key, after) = quoted(bytes, column)?;
                (bytes.get(after) == Some(&b':')
                    && bytes.get(after + 1).is_none_or(|&byte| byte == b' '))
                .then_some((key, after + 1))
            }
            _ => {
                let colon = plain_end(bytes, column)?;
                if bytes.get(colon) != Some(&b':') || colon == column {
                    return None;
                }
                let key = &bytes[column..colon];
                if key.len() > MAX_KEY_LENGTH || key.last() == Some(&b' ') || !certainly_string(key)
                {
                    return None;
                }
                Some((ascii(key), colon + 1))
            }
        }
    }

    /// The scalar at `column` of `line` (not a key), and the offset after it.
    fn scalar(&self, line: Line, column: usize) -> Option<(Value, usize)> {
        let bytes = &self.text[line.start..line.end];
        match bytes[column] {
            b'"' | b'\'' => {
                let (text, after) = quoted(bytes, column)?;
                Some((Value::String(text), after))
            }
            b'{' | b'[' => {
                let mut flow = Flow {
                    reader: self,
                    line,
                    bytes,
                    depth: self.depth,
                };
                let (node, after) = flow.collection(column)?;
                Some((node.value, after))
            }
            first if is_indicator(first) => None,
            _ => {
                let end = plain_end(bytes, column)?;
                if end < bytes.len() && bytes[end] == b':' {
                    // `a: b: c` is not a scalar.
                    return None;
                }
                let mut trimmed = end;
                while bytes[trimmed - 1] == b' ' {
                    trimmed -= 1;
                }
                Some((plain_value(&bytes[column..trimmed])?, trimmed))
            }
        }
    }
}

/// A flow collection written on one line (`{app: web}`, `[TCP, UDP]`).
struct Flow<'r, 'a> {
    reader: &'r Reader<'a>,
    line: Line,
    bytes: &'r [u8],
    depth: usize,
}

impl Flow<'_, '_> {
    fn skip_spaces(&self, mut index: usize) -> usize {
        while self.bytes.get(index) == Some(&b' ') {
            index += 1;
        }
        index
    }

    /// The mapping or sequence opening at `column`, and the offset after it.
    fn collection(&mut self, column: usize) -> Option<(Node, usize)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let mapping = self.bytes[column] == b'{';
        let close = if mapping { b'}' } else { b']' };
        let location = self.reader.location(self.line, column);
        let mut entries: Vec<Entry> = Vec::new();
        let mut items = Vec::new();
        let mut index = self.skip_spaces(column + 1);
        if self.bytes.get(index) == Some(&close) {
            index += 1;
        } else {
            loop {
                if mapping {
                    let key_location = self.reader.location(self.line, index);
                    let (key, after_key) = self.key(index)?;
                    if entries.iter().any(|entry| entry.key == key) {
                        return None;
                    }
                    let value_start = self.skip_spaces(after_key);
                    let (value, after) = self.node(value_start)?;
                    entries.push(Entry {
                        key,
                        key_location,
                        value,
                    });
                    index = after;
                } else {
                    let (item, after) = self.node(index)?;
                    // `[a: b]` is a mapping inside the sequence.
                    if self.bytes.get(after) == Some(&b':') {
                        return None;
                    }
                    items.push(item);
                    index = after;
                }
                index = self.skip_spaces(index);
                match self.bytes.get(index)? {
                    b',' => {
                        index = self.skip_spaces(index + 1);
                        // A trailing comma, or a comment: declined.
                        if matches!(self.bytes.get(index), Some(b'}' | b']' | b'#') | None) {
                            return None;
                        }
                    }
                    &byte if byte == close => {
                        index += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        let value = if mapping {
            Value::Mapping(entries)
        } else {
            Value::Sequence(items)
        };
        Some((Node { value, location }, index))
    }

    /// A key and the offset after its `: `. Keys without a value are declined.
    fn key(&self, column: usize) -> Option<(String, usize)> {
        let (key, after) = match *self.bytes.get(column)? {
            b'"' | b'\'' => quoted(self.bytes, column)?,
            _ => {
                let end = self.plain_end(column)?;
                let key = &self.bytes[column..end];
                if key.len() > MAX_KEY_LENGTH || !certainly_string(key) {
                    return None;
                }
                (ascii(key), end)
            }
        };
        (self.bytes.get(after) == Some(&b':') && self.bytes.get(after + 1) == Some(&b' '))
            .then_some((key, after + 2))
    }

    /// A value inside a flow collection, and the offset after it.
    fn node(&mut self, column: usize) -> Option<(Node, usize)> {
        let location = self.reader.location(self.line, column);
        match *self.bytes.get(column)? {
            b'{' | b'[' => self.collection(column),
            b'"' | b'\'' => {
                let (text, after) = quoted(self.bytes, column)?;
                Some((
                    Node {
                        value: Value::String(text),
                        location,
                    },
                    after,
                ))
            }
            _ => {
                let end = self.plain_end(column)?;
                let value = plain_value(&self.bytes[column..end])?;
                Some((Node { value, location }, end))
            }
        }
    }

    /// Where a plain scalar inside a flow collection ends (trailing spaces
    /// excluded). Scalars with a `:` or ` #` inside are declined.
    fn plain_end(&self, column: usize) -> Option<usize> {
        let first = *self.bytes.get(column)?;
        if is_indicator(first) || first == b' ' {
            return None;
        }
        let mut index = column;
        while let Some(&byte) = self.bytes.get(index) {
            match byte {
                b',' | b'[' | b']' | b'{' | b'}' => break,
                b':' => {
                    if self.bytes.get(index + 1).is_some_and(|&next| next != b' ') {
                        return None;
                    }
                    break;
                }
                b'#' if self.bytes[index - 1] == b' ' => return None,
                _ => index += 1,
            }
        }
        let mut end = index;
        while self.bytes[end - 1] == b' ' {
            end -= 1;
        }
        Some(end)
    }
}

/// True when `rest` starts with a sequence entry marker: `-` followed by a
/// space or the end of the line.
fn is_entry_marker(rest: &[u8]) -> bool {
    rest.first() == Some(&b'-') && rest.get(1).is_none_or(|&byte| byte == b' ')
}

/// YAML's indicator characters, which cannot start a plain scalar here.
fn is_indicator(byte: u8) -> bool {
    matches!(
        byte,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// Where the plain scalar starting at `column` ends: at `: `, at a final
/// `:`, at ` #`, or at the end of the line (trailing spaces included).
/// `None` when it starts with an indicator.
fn plain_end(bytes: &[u8], column: usize) -> Option<usize> {
    if is_indicator(bytes[column]) {
        return None;
    }
    let mut index = column;
    while index < bytes.len() {
        match bytes[index] {
            b':' if bytes.get(index + 1).is_none_or(|&byte| byte == b' ') => return Some(index),
            b'#' if bytes[index - 1] == b' ' => return Some(index),
            _ => index += 1,
        }
    }
    Some(index)
}

/// The quoted scalar starting at `column` (on one line), and the offset
/// after its closing quote.
fn quoted(bytes: &[u8], column: usize) -> Option<(String, usize)> {
    let quote = bytes[column];
    let mut text = String::new();
    let mut index = column + 1;
    loop {
        let byte = *bytes.get(index)?;
        if byte == quote {
            if quote == b'\'' && bytes.get(index + 1) == Some(&b'\'') {
                text.push('\'');
                index += 2;
                continue;
            }
            return Some((text, index + 1));
        }
        if quote == b'"' && byte == b'\\' {
            let (character, length) = escape(&bytes[index + 1..])?;
            text.push(character);
            index += 1 + length;
            continue;
        }
        text.push(char::from(byte));
        index += 1;
    }
}

/// A double-quoted escape (after the backslash): the character and how
/// many bytes it took. Rare escapes are declined.
fn escape(bytes: &[u8]) -> Option<(char, usize)> {
    let simple = match bytes.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'0' => '\0',
        b'a' => '\x07',
        b'b' => '\x08',
        b'v' => '\x0b',
        b'f' => '\x0c',
        b'e' => '\x1b',
        b' ' => ' ',
        b'N' => '\u{85}',
        b'_' => '\u{a0}',
        b'L' => '\u{2028}',
        b'P' => '\u{2029}',
        b'U' => return hex_escape(bytes, 8),
        b'x' => return hex_escape(bytes, 2),
        b'u' => return hex_escape(bytes, 4),
        _ => return None,
    };
    Some((simple, 1))
}

fn hex_escape(bytes: &[u8], digits: usize) -> Option<(char, usize)> {
    let hex = std::str::from_utf8(bytes.get(1..=digits)?).ok()?;
    if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let code = u32::from_str_radix(hex, 16).ok()?;
    Some((char::from_u32(code)?, 1 + digits))
}

/// True when a plain scalar spelled `text` is a string under every YAML
/// schema: it starts with a letter and is not one of [`RESERVED_WORDS`].
fn certainly_string(text: &[u8]) -> bool {
    text.first().is_some_and(u8::is_ascii_alphabetic)
        && !RESERVED_WORDS
            .iter()
            .any(|word| word.as_bytes().eq_ignore_ascii_case(text))
}

/// True for plain scalars that start with no letter but are still strings
/// under every YAML schema: those with a character no number, boolean or
/// null is spelled with (`100m`, `128Mi`, `25%`, `10.0.0.0/8`), and dotted
/// quads like addresses (`10.96.0.10`: no float has two dots).
fn certainly_string_though_not_a_word(text: &[u8]) -> bool {
    let first = text[0];
    if !(first.is_ascii_digit() || first == b'.') {
        return false;
    }
    let numeric = |byte: &u8| byte.is_ascii_hexdigit() || b"+-._:xXoOiInNtTyY".contains(byte);
    if !text.iter().all(numeric) {
        return true;
    }
    // A sign inside a number only follows an exponent's `e` (`1e-5`); a
    // uid or a date has one after a digit.
    let inner_dash = text
        .windows(2)
        .any(|pair| pair[1] == b'-' && !matches!(pair[0], b'e' | b'E'));
    if inner_dash {
        return true;
    }
    text.iter()
        .all(|&byte| byte.is_ascii_digit() || byte == b'.')
        && text.iter().filter(|&&byte| byte == b'.').count() >= 2
        && first.is_ascii_digit()
}

/// The typed value of a plain scalar.
fn plain_value(text: &[u8]) -> Option<Value> {
    if matches!(text, b"~" | b"null" | b"Null" | b"NULL") {
        return Some(Value::Null);
    }
    if matches!(text, b"true" | b"false") {
        return Some(Value::Bool(text == b"true"));
    }
    if certainly_string(text) {
        return Some(Value::String(ascii(text)));
    }
    let short_decimal = text.len() <= 18
        && text.iter().all(u8::is_ascii_digit)
        && (text[0] != b'0' || text.len() == 1);
    if short_decimal {
        return ascii(text).parse().ok().map(Value::Int);
    }
    if certainly_string_though_not_a_word(text) {
        return Some(Value::String(ascii(text)));
    }
    // Anything else (`1.5`, `0755`, `1e3`, `~`, `.inf`): ask the full parser.
    let mut documents = super::parse_with_full_parser(std::str::from_utf8(text).ok()?);
    match (documents.pop(), documents.is_empty()) {
        (Some(Ok(node)), true) if !node.value.is_collection() => Some(node.value),
        _ => None,
    }
}

fn ascii(bytes: &[u8]) -> String {
    // The whole text was checked to be ASCII, so this never fails.
    String::from_utf8(bytes.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::{assert_same_tree, parse_piece_in_full, split_documents};
    use super::*;

    /// Compares the fast reader with the full parser on every piece of
    /// `text`; returns how many pieces the fast reader accepted and how many
    /// there were.
    fn compare(name: &str, text: &str) -> (usize, usize) {
        let pieces = split_documents(text);
        let mut accepted = 0;
        for &(offset, piece) in &pieces {
            let Some(fast) = parse(piece, offset) else {
                continue;
            };
            accepted += 1;
            let full: Vec<Node> = parse_piece_in_full(piece, offset)
                .into_iter()
                .map(|document| {
                    document.unwrap_or_else(|error| {
                        panic!("{name}: the full parser refused what the fast reader read: {error:?}\n{piece}")
                    })
                })
                .collect();
            assert_eq!(fast.len(), full.len(), "{name}: documents in\n{piece}");
            for (fast, full) in fast.iter().zip(&full) {
                assert_same_tree(fast, full, &format!("{name}, in\n{piece}\n"), "");
            }
        }
        (accepted, pieces.len())
    }

    fn manifests(directory: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                manifests(&path, out);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
            {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_fast_reader_agrees_with_the_full_parser_on_every_repository_manifest() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut paths = Vec::new();
        for directory in ["testdata", "examples", "docs"] {
            manifests(&root.join(directory), &mut paths);
        }
        assert!(paths.len() > 100, "found only {} manifests", paths.len());
        let (mut accepted, mut total) = (0, 0);
        for path in &paths {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            let (a, t) = compare(&path.display().to_string(), &text);
            accepted += a;
            total += t;
        }
        eprintln!("fast reader accepted {accepted} of {total} documents");
        // Most manifests are in the subset; the rest check the fallback.
        assert!(accepted * 10 > total * 7, "accepted {accepted} of {total}");
    }

    /// A document to render, with the layout choices made when it is written.
    #[derive(Clone, Debug)]
    enum Tree {
        Scalar {
            text: String,
            quote: Quote,
            comment: bool,
        },
        Mapping {
            entries: Vec<(String, Tree)>,
            flow: bool,
        },
        Sequence {
            items: Vec<Tree>,
            flow: bool,
            compact: bool,
        },
    }

    #[derive(Clone, Copy, Debug)]
    enum Quote {
        Plain,
        Single,
        Double,
    }

    fn scalar_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "[a-z][a-z0-9.-]{0,6}",
            "[0-9.][0-9.]{0,8}",
            "[0-9.+-][0-9a-zA-Z.:/%_+-]{0,7}",
            "[a-zA-Z0-9 .:#~'\"{}\\[\\],_/@$!&*|>%\\\\-]{0,7}",
            proptest::sample::select(vec![
                "yes",
                "No",
                "ON",
                "off",
                "y",
                "n",
                "null",
                "Null",
                "~",
                "true",
                "False",
                "0x1F",
                "0o17",
                "017",
                "0",
                "1.5",
                "1e3",
                ".inf",
                "-.5",
                "+1",
                "-1",
                "100m",
                "1_000",
                "nan",
                ".NaN",
                "<<",
                "=",
                "9223372036854775807",
                "9223372036854775808",
                "99999999999999999999",
                "a b",
                "a: b",
                "a #b",
                "a#b",
                "http://x:80/y",
                "[a]",
                "{}",
                "- a",
                "12:30",
                "2001-12-14",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn key_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            4 => "[a-zA-Z][a-zA-Z0-9./_-]{0,8}",
            1 => scalar_text(),
        ]
    }

    fn tree() -> impl proptest::strategy::Strategy<Value = Tree> {
        use proptest::prelude::*;
        let leaf = (
            scalar_text(),
            prop_oneof![
                6 => Just(Quote::Plain),
                1 => Just(Quote::Single),
                1 => Just(Quote::Double)
            ],
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(text, quote, comment)| Tree::Scalar {
                text,
                quote,
                comment,
            });
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                (
                    proptest::collection::vec((key_text(), inner.clone()), 0..5),
                    proptest::bool::weighted(0.2)
                )
                    .prop_map(|(entries, flow)| Tree::Mapping { entries, flow }),
                (
                    proptest::collection::vec(inner, 0..4),
                    proptest::bool::weighted(0.2),
                    any::<bool>()
                )
                    .prop_map(|(items, flow, compact)| Tree::Sequence {
                        items,
                        flow,
                        compact
                    }),
            ]
        })
    }

    fn quote_text(text: &str, quote: Quote) -> String {
        match quote {
            Quote::Plain => text.to_string(),
            Quote::Single => format!("'{}'", text.replace('\'', "''")),
            Quote::Double => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }

    fn flow_text(tree: &Tree) -> String {
        match tree {
            Tree::Scalar { text, quote, .. } => quote_text(text, *quote),
            Tree::Mapping { entries, .. } => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(key, value)| format!("{key}: {}", flow_text(value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Tree::Sequence { items, .. } => format!(
                "[{}]",
                items.iter().map(flow_text).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn is_block_collection(tree: &Tree) -> bool {
        match tree {
            Tree::Mapping { entries, flow } => !flow && !entries.is_empty(),
            Tree::Sequence { items, flow, .. } => !flow && !items.is_empty(),
            Tree::Scalar { .. } => false,
        }
    }

    /// Writes `tree` as the value after `key:` at indentation `indent`.
    fn render(out: &mut String, tree: &Tree, indent: usize) {
        match tree {
            Tree::Scalar { comment, .. } => {
                out.push(' ');
                out.push_str(&flow_text(tree));
                if *comment {
                    out.push_str("  # note");
                }
                out.push('\n');
            }
            Tree::Mapping { .. } if is_block_collection(tree) => {
                out.push('\n');
                render_block(out, tree, indent + 2, false);
            }
            Tree::Sequence { compact, .. } if is_block_collection(tree) => {
                out.push('\n');
                render_block(out, tree, if *compact { indent } else { indent + 2 }, false);
            }
            _ => {
                out.push(' ');
                out.push_str(&flow_text(tree));
                out.push('\n');
            }
        }
    }

    /// Writes a block collection at `indent`; when `inline`, its first line
    /// continues a `- ` already written.
    fn render_block(out: &mut String, tree: &Tree, indent: usize, inline: bool) {
        let pad = " ".repeat(indent);
        match tree {
            Tree::Mapping { entries, .. } => {
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 || !inline {
                        out.push_str(&pad);
                    }
                    out.push_str(key);
                    out.push(':');
                    render(out, value, indent);
                }
            }
            Tree::Sequence { items, .. } => {
                for (index, item) in items.iter().enumerate() {
                    if index > 0 || !inline {
                        out.push_str(&pad);
                    }
                    out.push('-');
                    if is_block_collection(item) {
                        out.push(' ');
                        render_block(out, item, indent + 2, true);
                    } else {
                        render(out, item, indent);
                    }
                }
            }
            Tree::Scalar { .. } => unreachable!("scalars are not block collections"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the fast reader accepts, the full parser reads the same way.
        #[test]
        fn the_fast_reader_agrees_with_the_full_parser_on_random_documents(
            entries in proptest::collection::vec((key_text(), tree()), 1..6),
            crlf in proptest::bool::weighted(0.1),
            marker in proptest::bool::ANY,
        ) {
            let mut text = String::new();
            if marker {
                text.push_str("---\n");
            }
            for (key, value) in &entries {
                text.push_str(key);
                text.push(':');
                render(&mut text, value, 0);
            }
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            if std::env::var_os("SHOW").is_some() { eprintln!("INPUT {text:?}"); }
            compare("random", &text);
        }
    }

    #[test]
    fn deep_nesting_is_declined_not_a_stack_overflow() {
        let dashes = "- ".repeat(100_000) + "x\n";
        assert!(parse(&dashes, 0).is_none());
        let mut mappings = String::new();
        for depth in 0..5_000 {
            mappings.push_str(&" ".repeat(depth));
            mappings.push_str("a:\n");
        }
        assert!(parse(&mappings, 0).is_none());
        let flows = "a: ".to_string() + &"[".repeat(100_000) + &"]".repeat(100_000) + "\n";
        assert!(parse(&flows, 0).is_none());
        // Nesting within the limits is read.
        let nested = "a:\n".to_string() + &"- ".repeat(30) + "x\n";
        assert!(parse(&nested, 0).is_some());
        let nested_flow = "a: ".to_string() + &"[".repeat(30) + &"]".repeat(30) + "\n";
        assert!(parse(&nested_flow, 0).is_some());
    }

    #[test]
    fn documents_near_the_full_parsers_depth_limit_agree() {
        // A big stack: the full parser recurses deeply in debug builds.
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(|| {
                for depth in 30..=70 {
                    let dashes = "a:\n".to_string() + &"- ".repeat(depth) + "x\n";
                    compare("dashes", &dashes);
                    let flows = "a: ".to_string() + &"[".repeat(depth) + &"]".repeat(depth) + "\n";
                    compare("flows", &flows);
                    let mut mappings = String::new();
                    for level in 0..depth {
                        mappings.push_str(&" ".repeat(level));
                        mappings.push_str("a:\n");
                    }
                    mappings.push_str(&" ".repeat(depth));
                    mappings.push_str("b: c\n");
                    compare("mappings", &mappings);
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// The random documents above are not all declined.
    #[test]
    fn the_random_documents_are_mostly_in_the_subset() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = proptest::collection::vec((key_text(), tree()), 1..4);
        let (mut accepted, total) = (0, 500);
        for _ in 0..total {
            let entries = strategy.new_tree(&mut runner).unwrap().current();
            let mut text = String::new();
            for (key, value) in &entries {
                text.push_str(key);
                text.push(':');
                render(&mut text, value, 0);
            }
            accepted += usize::from(compare("random", &text).0 > 0);
        }
        eprintln!("accepted {accepted} of {total}");
        assert!(accepted > total / 5, "accepted {accepted} of {total}");
    }
}
