//! Key paths inside a document (`services.mail.host`, `members[2].id`): how
//! diagnostics name a value, and how later stages find its position again.

use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key of a mapping.
    Key(String),
    /// A 0-based index into a list.
    Index(usize),
}

/// A path from the root of a document to one of its values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(Vec<Seg>);

impl Path {
    /// Builds a path from steps.
    pub fn new(segs: Vec<Seg>) -> Self {
        Self(segs)
    }

    /// The steps.
    pub fn segs(&self) -> &[Seg] {
        &self.0
    }

    /// True for the document's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends a step.
    pub fn push(&mut self, seg: Seg) {
        self.0.push(seg);
    }

    /// Removes the last step.
    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// A copy with one more key.
    #[must_use]
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.push(Seg::Key(key.into()));
        p
    }

    /// A copy with one more index.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.push(Seg::Index(index));
        p
    }
}

/// Builds a path from a dotted literal with `[n]` indices, for code that
/// names fixed places (`path!("association.domain")`).
impl From<&str> for Path {
    fn from(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                segs.push(Seg::Key(rest[..open].to_string()));
                rest = &rest[open..];
                while let Some(close) = rest.find(']') {
                    if let Ok(i) = rest[1..close].parse() {
                        segs.push(Seg::Index(i));
                    }
                    rest = &rest[close + 1..];
                }
            } else {
                segs.push(Seg::Key(rest.to_string()));
            }
        }
        Self(segs)
    }
}

impl Path {
    /// The path as messages say it to people, who count from 1:
    /// ``item 3 of `members` `` for `members[2]`, and
    /// ``` `roles` in item 1 of `members` ``` for `members[0].roles`.
    /// (`path` in JSON output stays 0-based, as programs count.)
    pub fn for_people(&self) -> String {
        let Some(last) = self.0.iter().rposition(|s| matches!(s, Seg::Index(_))) else {
            return format!("`{self}`");
        };
        let Seg::Index(n) = self.0[last] else {
            return format!("`{self}`");
        };
        let outer = Self(self.0[..last].to_vec());
        let item = if outer.is_root() {
            format!("item {}", n + 1)
        } else {
            format!("item {} of {}", n + 1, outer.for_people())
        };
        let inner = Self(self.0[last + 1..].to_vec());
        if inner.is_root() {
            item
        } else {
            format!("`{inner}` in {item}")
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(the document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_reads_back() {
        let p = Path::from("members[2].id");
        assert_eq!(
            p.segs(),
            &[
                Seg::Key("members".into()),
                Seg::Index(2),
                Seg::Key("id".into())
            ]
        );
        assert_eq!(p.to_string(), "members[2].id");
        assert_eq!(
            Path::from("services.mail.host").to_string(),
            "services.mail.host"
        );
    }

    #[test]
    fn people_count_items_from_one() {
        assert_eq!(Path::from("members[2]").for_people(), "item 3 of `members`");
        assert_eq!(
            Path::from("members[0].roles").for_people(),
            "`roles` in item 1 of `members`"
        );
        assert_eq!(Path::from("services.mail").for_people(), "`services.mail`");
    }
}
