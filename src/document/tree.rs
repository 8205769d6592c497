//! A YAML document as a tree of nodes that remember where they stand in the
//! text. serde deserialisation stops at the first problem and forgets
//! positions; this tree lets later stages report every problem with its line
//! and column.
//!
//! Scalars keep their source text and whether they were quoted: what a scalar
//! *means* (text, number, boolean) depends on what the schema expects there,
//! which is decided in [`super::shape`]. Booleans are strict: only `true` and
//! `false` are booleans, so `country: no` stays the text `no`.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, Span as RawSpan};

/// A position in the text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// The part of the text a node covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First character.
    pub start: Pos,
    /// One past the last character.
    pub end: Pos,
}

impl Span {
    fn from_raw(raw: RawSpan) -> Self {
        Self {
            start: Pos {
                line: raw.start.line(),
                column: raw.start.col() + 1,
            },
            end: Pos {
                line: raw.end.line(),
                column: raw.end.col() + 1,
            },
        }
    }

    /// How many characters to underline: the span on its first line, at least one.
    pub fn width(&self) -> usize {
        if self.end.line == self.start.line {
            self.end.column.saturating_sub(self.start.column).max(1)
        } else {
            1
        }
    }
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Bare: its meaning depends on its text (`true`, `21`, `null`, or text).
    Plain,
    /// Quoted or a block scalar: always text.
    Quoted,
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: Kind,
    /// Where it is.
    pub span: Span,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar with its text after escapes are processed.
    Scalar {
        /// The text.
        text: String,
        /// Plain or quoted.
        style: Style,
    },
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in document order; keys are scalars.
    Map(Vec<(Node, Node)>),
}

/// What a plain scalar means under YAML 1.2's core schema with strict
/// booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// Anything else.
    Text,
}

impl Node {
    /// The node's text when it is a scalar.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What the scalar means when read without a schema. Quoted scalars are
    /// always text; collections are `None`.
    pub fn plain(&self) -> Option<Plain> {
        match &self.kind {
            Kind::Scalar {
                text,
                style: Style::Plain,
            } => Some(read_plain(text)),
            Kind::Scalar { .. } => Some(Plain::Text),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value under `key` when this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// Describes the node's kind for messages: "a list", "the text `x`"…
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
            Kind::Scalar { text, .. } => match self.plain() {
                Some(Plain::Null) => "nothing".into(),
                Some(Plain::Bool(_)) => format!("the boolean `{text}`"),
                Some(Plain::Int(_) | Plain::Float(_)) => format!("the number `{text}`"),
                _ => format!("the text `{}`", shorten(text)),
            },
        }
    }
}

fn shorten(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or("");
    if first_line.chars().count() > 40 || first_line.len() != text.len() {
        let cut: String = first_line.chars().take(40).collect();
        format!("{cut}…")
    } else {
        first_line.to_string()
    }
}

/// Reads a plain scalar's text under the core schema, booleans strict.
pub fn read_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" => return Plain::Bool(true),
        "false" => return Plain::Bool(false),
        ".inf" | "+.inf" => return Plain::Float(f64::INFINITY),
        "-.inf" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Plain::Int(n);
        }
        return Plain::Float(text.parse().unwrap_or(f64::NAN));
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(n) = i64::from_str_radix(hex, 16)
    {
        return Plain::Int(n);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(n) = i64::from_str_radix(oct, 8)
    {
        return Plain::Int(n);
    }
    let looks_numeric = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Plain::Float(f);
    }
    Plain::Text
}

/// Why a text is not a document we can read.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// What to do, when we can tell.
    pub hint: Option<String>,
    /// Where.
    pub span: Span,
    /// A stable name for the kind of problem.
    pub code: &'static str,
}

impl SyntaxError {
    fn new(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Self {
            message: message.into(),
            hint: None,
            span,
            code,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn from_scan(err: &ScanError, text: &str) -> Self {
        let m = err.marker();
        let mut pos = Pos {
            line: m.line(),
            column: m.col() + 1,
        };
        let info = err.info();
        if info.contains("recursion limit") {
            // The parser's own limit on nesting, reached while it reads
            // ahead, before voisin's depth check sees the nodes.
            return Self::new(
                "too-deep",
                format!("lists and mappings nest more than {MAX_DEPTH} levels deep"),
                Span {
                    start: pos,
                    end: pos,
                },
            )
            .hint("a manifest needs five or six levels: check the brackets");
        }
        if info.contains("tab") {
            // The parser reports where the token it was reading began
            // (often the previous line's value); point at the tab itself.
            if let Some(tab) = first_tab_from(text, pos) {
                pos = tab;
            }
            return Self::new(
                "yaml-syntax",
                "the YAML cannot be read: a tab stands where YAML needs spaces",
                Span {
                    start: pos,
                    end: pos,
                },
            )
            .hint("indent with spaces; YAML does not allow tabs for indentation");
        }
        let hint = if info.contains("mapping values are not allowed") {
            Some(
                "a value holding `: ` must be quoted, and keys of one mapping must line up"
                    .to_string(),
            )
        } else if info.contains("tab") {
            Some("indent with spaces; YAML does not allow tabs for indentation".to_string())
        } else if info.contains("did not find expected")
            || info.contains("expected <document start>")
        {
            Some("check the indentation of this line against the lines above it".to_string())
        } else {
            None
        };
        Self {
            message: format!("the YAML cannot be read: {info}"),
            hint,
            span: Span {
                start: pos,
                end: pos,
            },
            code: "yaml-syntax",
        }
    }
}

/// Parses one YAML document. An empty text or one with more than one
/// document is an error: a manifest is one document.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder {
        text,
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        budget: MAX_EXPANDED,
        written: 0,
        depth: 0,
    };
    builder.document()
}

struct Builder<'a> {
    /// The whole text, to find what a parser error points near.
    text: &'a str,
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    /// Anchored nodes with their sizes, for aliases to copy.
    anchors: HashMap<usize, (Node, usize)>,
    /// Values aliases may still copy before the document counts as too large.
    budget: usize,
    /// Values written in the text so far.
    written: usize,
    /// How deep the node being built is.
    depth: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        loop {
            match self.parser.next() {
                None => {
                    return Err(SyntaxError::new(
                        "yaml-syntax",
                        "the YAML ends unexpectedly",
                        Span::default(),
                    ));
                }
                Some(Err(e)) => return Err(SyntaxError::from_scan(&e, self.text)),
                Some(Ok((event, span))) => {
                    if is_comment(&event) {
                        continue;
                    }
                    return Ok((event, Span::from_raw(span)));
                }
            }
        }
    }

    fn document(&mut self) -> Result<Node, SyntaxError> {
        let (first, _) = self.next()?;
        debug_assert!(matches!(first, Event::StreamStart));
        let (event, span) = self.next()?;
        match event {
            Event::StreamEnd => {
                // Point at the top: the end of a file of comments says nothing.
                let top = Span {
                    start: Pos { line: 1, column: 1 },
                    end: Pos { line: 1, column: 1 },
                };
                let message = if self.text.trim().is_empty() {
                    "the file is empty"
                } else {
                    "the file holds only comments"
                };
                return Err(SyntaxError::new("empty-document", message, top)
                    .hint("write the manifest's sections (`association:`, `members:`, `services:`), or run `voisin init` to start one"));
            }
            Event::DocumentStart(..) => {}
            _ => {
                return Err(SyntaxError::new(
                    "yaml-syntax",
                    "expected a YAML document",
                    span,
                ));
            }
        }
        let (event, span) = self.next()?;
        let root = self.node(event, span)?;
        let (end, _) = self.next()?;
        debug_assert!(matches!(end, Event::DocumentEnd));
        let (event, span) = self.next()?;
        match event {
            Event::StreamEnd => Ok(root),
            _ => Err(SyntaxError::new(
                "several-documents",
                "the file holds more than one YAML document",
                span,
            )
            .hint("a manifest is one document: remove the `---` line and merge the parts")),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        self.write_one(span)?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError::new(
                "too-deep",
                format!("lists and mappings nest more than {MAX_DEPTH} levels deep"),
                span,
            ));
        }
        let node = self.node_inner(event, span);
        self.depth -= 1;
        node
    }

    fn node_inner(&mut self, event: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let forced_text = match tag {
                    None => false,
                    Some(tag) if tag.is_yaml_core_schema() && tag.suffix() == "str" => true,
                    Some(tag) => {
                        return Err(SyntaxError::new(
                            "yaml-tag",
                            format!("the tag `{tag}` is not supported"),
                            span,
                        )
                        .hint("remove the tag; quote the value to make it text"));
                    }
                };
                let node = Node {
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        style: if quoted || forced_text {
                            Style::Quoted
                        } else {
                            Style::Plain
                        },
                    },
                    span,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(_, anchor, tag) => {
                reject_tag(tag.is_some(), span)?;
                let mut items = Vec::new();
                let end = loop {
                    let (event, item_span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break item_span;
                    }
                    items.push(self.node(event, item_span)?);
                };
                let node = Node {
                    kind: Kind::Seq(items),
                    span: Span {
                        start: span.start,
                        end: end.end,
                    },
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(_, anchor, tag) => {
                reject_tag(tag.is_some(), span)?;
                let (entries, end) = self.mapping_entries()?;
                let node = Node {
                    kind: Kind::Map(entries),
                    span: Span {
                        start: span.start,
                        end: end.end,
                    },
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => {
                let (mut node, size) = self.anchors.get(&id).cloned().ok_or_else(|| {
                    SyntaxError::new("yaml-syntax", "an alias names an unknown anchor", span)
                })?;
                self.spend(size, span)?;
                // Problems inside an alias are reported where it is used.
                relocate(&mut node, span);
                Ok(node)
            }
            _ => Err(SyntaxError::new(
                "yaml-syntax",
                "unexpected YAML structure",
                span,
            )),
        }
    }

    fn mapping_entries(&mut self) -> Result<(Vec<(Node, Node)>, Span), SyntaxError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        loop {
            let (event, key_span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                return Ok((entries, key_span));
            }
            let key = self.node(event, key_span)?;
            check_key(&key, &entries)?;
            let (event, value_span) = self.next()?;
            let value = self.node(event, value_span)?;
            entries.push((key, value));
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size(node)));
        }
    }

    /// Counts a value written in the text against [`MAX_WRITTEN`].
    fn write_one(&mut self, span: Span) -> Result<(), SyntaxError> {
        self.written += 1;
        if self.written > MAX_WRITTEN {
            return Err(SyntaxError::new(
                "too-large",
                format!("the document holds more than {MAX_WRITTEN} values"),
                span,
            )
            .hint("a manifest holds a few thousand at most: check that this is the right file"));
        }
        Ok(())
    }

    /// Counts the values an alias copies against the budget, so that
    /// aliases of aliases (the "billion laughs") cannot make a small file
    /// expand without end.
    fn spend(&mut self, nodes: usize, span: Span) -> Result<(), SyntaxError> {
        self.budget = self.budget.checked_sub(nodes).ok_or_else(|| {
            SyntaxError::new(
                "too-large",
                format!(
                    "the aliases (`*name`) in this document copy more than {MAX_EXPANDED} values"
                ),
                span,
            )
            .hint("write the values out instead of nesting aliases")
        })?;
        Ok(())
    }
}

/// How many values aliases may copy in all: far beyond what any manifest
/// shares this way, far below what would exhaust memory.
const MAX_EXPANDED: usize = 100_000;

/// How many values a document may spell out: room for tens of thousands of
/// members, while a runaway file (a log named by mistake) is refused.
const MAX_WRITTEN: usize = 1_000_000;

/// How deeply collections may nest: manifests need five or six levels.
const MAX_DEPTH: usize = 64;

fn size(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar { .. } => 1,
        Kind::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
    }
}

/// Refuses keys that are not text, merge keys, and keys already present.
fn check_key(key: &Node, entries: &[(Node, Node)]) -> Result<(), SyntaxError> {
    let Some(key_text) = key.scalar_text() else {
        return Err(SyntaxError::new(
            "complex-key",
            "a key must be plain text, not a list or mapping",
            key.span,
        )
        .hint("write each key on its own, like `members:`; `?` starts a complex key"));
    };
    if key_text == "<<" {
        return Err(
            SyntaxError::new("merge-key", "merge keys (`<<`) are not supported", key.span)
                .hint("write the keys out; each section is read as written"),
        );
    }
    if let Some((first, _)) = entries
        .iter()
        .find(|(k, _)| k.scalar_text() == Some(key_text))
    {
        return Err(SyntaxError::new(
            "duplicate-key",
            format!(
                "the key `{key_text}` appears twice in one mapping (first on line {})",
                first.span.start.line
            ),
            key.span,
        )
        .hint("keep one of them: YAML would silently use only the last"));
    }
    Ok(())
}

/// The first tab on `from`'s line or after it, as a position.
fn first_tab_from(text: &str, from: Pos) -> Option<Pos> {
    for (i, line) in text.lines().enumerate().skip(from.line.saturating_sub(1)) {
        if let Some(col) = line.chars().position(|c| c == '\t') {
            return Some(Pos {
                line: i + 1,
                column: col + 1,
            });
        }
    }
    None
}

fn is_comment(event: &Event<'_>) -> bool {
    matches!(event, Event::Comment(..))
}

fn reject_tag(tagged: bool, span: Span) -> Result<(), SyntaxError> {
    if tagged {
        Err(
            SyntaxError::new("yaml-tag", "tags are not supported here", span)
                .hint("remove the tag"),
        )
    } else {
        Ok(())
    }
}

fn relocate(node: &mut Node, span: Span) {
    node.span = span;
    match &mut node.kind {
        Kind::Scalar { .. } => {}
        Kind::Seq(items) => items.iter_mut().for_each(|n| relocate(n, span)),
        Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            relocate(k, span);
            relocate(v, span);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_strict() {
        assert_eq!(read_plain("true"), Plain::Bool(true));
        assert_eq!(read_plain("yes"), Plain::Text);
        assert_eq!(read_plain("no"), Plain::Text);
        assert_eq!(read_plain("True"), Plain::Text);
    }

    #[test]
    fn numbers_and_nulls_follow_the_core_schema() {
        assert_eq!(read_plain("21"), Plain::Int(21));
        assert_eq!(read_plain("-3"), Plain::Int(-3));
        assert_eq!(read_plain("2.5"), Plain::Float(2.5));
        assert_eq!(read_plain("~"), Plain::Null);
        assert_eq!(read_plain("21d"), Plain::Text);
        assert_eq!(read_plain("1.2.3"), Plain::Text);
        assert_eq!(read_plain("e5"), Plain::Text);
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let root = parse("a:\n  bb: 1\n  cc: [x, 'y']\n").expect("parses");
        let (key, value) = root.get("a").expect("a").entry("cc").expect("cc");
        assert_eq!(key.span.start, Pos { line: 3, column: 3 });
        let Kind::Seq(items) = &value.kind else {
            panic!("a list")
        };
        assert_eq!(
            items[1].span.start,
            Pos {
                line: 3,
                column: 11
            }
        );
        assert_eq!(items[1].plain(), Some(Plain::Text));
    }

    #[test]
    fn rejects_duplicate_keys_at_the_second() {
        let err = parse("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(err.code, "duplicate-key");
        assert_eq!(err.span.start, Pos { line: 3, column: 1 });
    }

    #[test]
    fn resolves_aliases() {
        let root = parse("a: &x [1, 2]\nb: *x\n").expect("parses");
        assert!(matches!(&root.get("b").expect("b").kind, Kind::Seq(v) if v.len() == 2));
    }

    #[test]
    fn refuses_alias_bombs_and_deep_nesting() {
        let mut lines = vec!["a0: &a0 [x, x, x, x, x, x, x, x, x, x]".to_string()];
        for i in 1..8 {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            lines.push(format!("a{i}: &a{i} [{items}]"));
        }
        let bomb = lines.join("\n");
        assert_eq!(parse(&bomb).expect_err("bomb").code, "too-large");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(&deep).expect_err("deep").code, "too-deep");
    }

    #[test]
    fn rejects_empty_and_multi_document_files() {
        assert_eq!(parse("").expect_err("empty").code, "empty-document");
        assert_eq!(
            parse("# only a comment\n").expect_err("empty").code,
            "empty-document"
        );
        assert_eq!(
            parse("a: 1\n---\nb: 2\n").expect_err("two").code,
            "several-documents"
        );
    }
}
