//! Documents people write (manifests, catalog entries): read them into a tree
//! that keeps positions, check their shape against a schema, and turn any
//! problem into a [`Diagnostic`] that points at the file, line and column.

pub mod path;
pub mod shape;
pub mod tree;

use serde::de::DeserializeOwned;

pub use path::{Path, Seg};
pub use tree::{Node, Span};

use crate::diagnostic::{Diagnostic, Location};

/// A document read from text, with its name for messages.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file as the user named it.
    pub file: String,
    /// The whole text.
    pub text: String,
    /// The parsed tree.
    pub root: Node,
}

/// A document read into a type.
#[derive(Debug)]
pub struct Read<T> {
    /// The value, with stand-ins where the document was wrong.
    pub value: Option<T>,
    /// Shape problems, located.
    pub diagnostics: Vec<Diagnostic>,
    /// Paths whose values are stand-ins.
    pub replaced: Vec<Path>,
}

impl<T> Read<T> {
    /// True when the document had no shape problem.
    pub fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// True when a diagnostic at `path` would be about a stand-in: the path
    /// is at, below or above a replaced one.
    pub fn touches_replaced(&self, path: &str) -> bool {
        self.replaced.iter().any(|r| {
            let r = r.to_string();
            related(path, &r) || related(&r, path)
        })
    }
}

fn related(longer: &str, prefix: &str) -> bool {
    longer == prefix
        || (longer.starts_with(prefix)
            && matches!(longer.as_bytes().get(prefix.len()), Some(b'.' | b'[')))
}

/// Whether a diagnostic should point at a key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The key (`host` in `host: x`): for problems with the entry itself.
    Key,
    /// The value: for problems with what was written.
    Value,
}

impl Document {
    /// Parses `text`, named `file` in messages.
    pub fn parse(
        file: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, Box<Diagnostic>> {
        let file = file.into();
        let text = text.into();
        match tree::parse(&text) {
            Ok(root) => Ok(Self { file, text, root }),
            Err(e) => {
                let location = location_in(&file, &text, e.span);
                Err(Box::new(
                    Diagnostic::error(e.code, e.message)
                        .at(location)
                        .with_hint_opt(e.hint),
                ))
            }
        }
    }

    /// Checks the document's shape against `schema` and reads it into `T`.
    ///
    /// Shape problems do not stop the reading: wrong or missing values are
    /// replaced by stand-ins so later checks can still run, and the paths of
    /// those stand-ins are returned in [`Read::replaced`] so that nothing is
    /// reported about them twice.
    pub fn read<T: DeserializeOwned>(&self, schema: &serde_json::Value) -> Read<T> {
        let (value, findings) = shape::Shape::new(schema).check(&self.root);
        let replaced = findings.replaced;
        let mut diagnostics: Vec<Diagnostic> = findings
            .problems
            .into_iter()
            .map(|p| {
                Diagnostic::error(p.code, p.message)
                    .with_hint_opt(p.hint)
                    .with_path(p.path.to_string())
                    .at(self.location(p.span))
            })
            .collect();
        let value = match serde_json::from_value(value) {
            Ok(v) => Some(v),
            Err(e) => {
                // The shape check made the value fit the schema, so this is a
                // mismatch between our schema and our types: a bug of ours.
                diagnostics.push(
                    Diagnostic::error(
                        "internal",
                        format!("voisin could not read this document: {e}"),
                    )
                    .at(self.location(self.root.span))
                    .with_hint("this is a bug in voisin; please report it with the file"),
                );
                None
            }
        };
        Read {
            value,
            diagnostics,
            replaced,
        }
    }

    /// The node at `path`, if the document has one there.
    pub fn node(&self, path: &Path) -> Option<(Option<&Node>, &Node)> {
        let mut key = None;
        let mut node = &self.root;
        for seg in path.segs() {
            match (seg, &node.kind) {
                (Seg::Key(k), tree::Kind::Map(_)) => {
                    let (k_node, v) = node.entry(k)?;
                    key = Some(k_node);
                    node = v;
                }
                (Seg::Index(i), tree::Kind::Seq(items)) => {
                    key = None;
                    node = items.get(*i)?;
                }
                _ => return None,
            }
        }
        Some((key, node))
    }

    /// The location of the value (or key) at `path`; the closest existing
    /// parent when the path goes further than the document.
    pub fn locate(&self, path: &Path, target: Target) -> Location {
        let mut probe = path.clone();
        loop {
            if let Some((key, value)) = self.node(&probe) {
                let span = match (target, key) {
                    (Target::Key, Some(k)) => k.span,
                    _ if probe != *path => key.map_or(value.span, |k| k.span),
                    _ => value.span,
                };
                return self.location(span);
            }
            if probe.is_root() {
                return self.location(self.root.span);
            }
            probe.pop();
        }
    }

    /// A diagnostic located at `path`, with the path recorded.
    pub fn diag(&self, diagnostic: Diagnostic, path: &Path, target: Target) -> Diagnostic {
        diagnostic
            .at(self.locate(path, target))
            .with_path(path.to_string())
    }

    /// The location of a span in this document.
    pub fn location(&self, span: Span) -> Location {
        location_in(&self.file, &self.text, span)
    }
}

fn location_in(file: &str, text: &str, span: Span) -> Location {
    let line = span.start.line.max(1);
    let source_line = text.lines().nth(line - 1).unwrap_or("").to_string();
    let line_len = source_line.chars().count();
    let column = span.start.column.max(1);
    let width = span.width().min(line_len.saturating_sub(column - 1)).max(1);
    Location {
        file: file.to_string(),
        line,
        column,
        width,
        source_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_values_and_missing_children() {
        let doc = Document::parse("m.yaml", "a:\n  b: [x, yy]\n").expect("parses");
        let v = doc.locate(&Path::from("a.b[1]"), Target::Value);
        assert_eq!((v.line, v.column, v.width), (2, 10, 2));
        let k = doc.locate(&Path::from("a.b"), Target::Key);
        assert_eq!((k.line, k.column, k.width), (2, 3, 1));
        let missing = doc.locate(&Path::from("a.c"), Target::Value);
        assert_eq!((missing.line, missing.column), (1, 1));
    }

    #[test]
    fn syntax_errors_point_at_their_line() {
        let err = Document::parse("m.yaml", "a: 1\n b: 2\n").expect_err("bad indentation");
        let loc = err.location.expect("located");
        assert_eq!(loc.line, 2);
        assert_eq!(err.code, "yaml-syntax");
    }
}
