//! Typed settings of a catalog entry, and the check of a value a manifest
//! gives for one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostic::{did_you_mean, one_of};
use crate::names;
use crate::units;

/// A setting a manifest may give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The kind of value.
    #[serde(rename = "type")]
    pub kind: SettingKind,
    /// What it does, for `voisin catalog show` and editors.
    pub doc: String,
    /// The value used when the manifest gives none; no default makes the setting required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The allowed values, for `enum` settings and lists of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// The kind of each item, for `list` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<SettingKind>,
    /// Smallest allowed whole number, for `integer` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest allowed whole number, for `integer` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

/// Kinds of setting values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettingKind {
    /// Any text.
    String,
    /// A whole number, within `min` and `max`.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A size like `5 GB`.
    Size,
    /// A duration like `21d`.
    Duration,
    /// One of `values`.
    Enum,
    /// A list of `items`.
    List,
    /// A mail address.
    Email,
    /// A DNS host name.
    Hostname,
}

impl SettingKind {
    /// How the kind reads in messages and `catalog show`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Integer => "whole number",
            Self::Boolean => "boolean",
            Self::Size => "size",
            Self::Duration => "duration",
            Self::Enum => "choice",
            Self::List => "list",
            Self::Email => "mail address",
            Self::Hostname => "host name",
        }
    }
}

/// Why a value does not fit a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
    /// For lists: the index of the item at fault.
    pub item: Option<usize>,
}

impl Misfit {
    fn new(message: String, hint: Option<String>) -> Self {
        Self {
            message,
            hint,
            item: None,
        }
    }
}

impl Setting {
    /// A one-line description of the type: `list of choice (a, b)`.
    pub fn type_label(&self) -> String {
        match self.kind {
            SettingKind::Enum => format!("one of {}", self.values.join(", ")),
            SettingKind::List => {
                let item = self.items.unwrap_or(SettingKind::String);
                if item == SettingKind::Enum {
                    format!("list of {}", self.values.join(", "))
                } else {
                    format!("list of {}", item.describe())
                }
            }
            SettingKind::Integer => match (self.min, self.max) {
                (Some(a), Some(b)) => format!("whole number {a}–{b}"),
                (Some(a), None) => format!("whole number ≥ {a}"),
                (None, Some(b)) => format!("whole number ≤ {b}"),
                (None, None) => "whole number".into(),
            },
            other => other.describe().into(),
        }
    }

    /// Checks a value a manifest gives for this setting.
    pub fn check(&self, value: &Value) -> Result<(), Misfit> {
        if self.kind == SettingKind::List {
            let Value::Array(items) = value else {
                return Err(Misfit::new(
                    format!("must be a list, not {}", describe(value)),
                    Some(format!("write a list, like `[{}]`", plain(value))),
                ));
            };
            let item_kind = self.items.unwrap_or(SettingKind::String);
            for (i, item) in items.iter().enumerate() {
                // Containers receive lists comma-separated: a comma inside
                // one item would silently make two.
                if let Value::String(text) = item
                    && text.contains(',')
                {
                    let parts: Vec<&str> = text
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .collect();
                    return Err(Misfit {
                        message: format!("`{text}` holds a comma, which separates items"),
                        hint: Some(format!(
                            "write separate items, like `[{}]`, or join the words another way, like `{}`",
                            parts.join(", "),
                            parts.join(" & ")
                        )),
                        item: Some(i),
                    });
                }
                if let Err(mut m) = self.check_one(item_kind, item) {
                    m.item = Some(i);
                    return Err(m);
                }
            }
            return Ok(());
        }
        self.check_one(self.kind, value)
    }

    fn check_one(&self, kind: SettingKind, value: &Value) -> Result<(), Misfit> {
        let text = match value {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        let wrong = |what: &str, hint: &str| {
            Err(Misfit::new(
                format!("must be {what}, not {}", describe(value)),
                Some(hint.to_string()),
            ))
        };
        match kind {
            SettingKind::String => match value {
                Value::String(_) | Value::Number(_) => Ok(()),
                _ => wrong(
                    "text",
                    "write text, quoted if it could be read as something else",
                ),
            },
            SettingKind::Boolean => match value {
                Value::Bool(_) => Ok(()),
                Value::String(s) if ["yes", "on", "y"].contains(&s.to_lowercase().as_str()) => {
                    wrong(
                        "`true` or `false`",
                        "write `true`: voisin reads only `true` and `false` as booleans",
                    )
                }
                Value::String(s) if ["no", "off", "n"].contains(&s.to_lowercase().as_str()) => {
                    wrong(
                        "`true` or `false`",
                        "write `false`: voisin reads only `true` and `false` as booleans",
                    )
                }
                _ => wrong("`true` or `false`", "write `true` or `false`"),
            },
            SettingKind::Integer => {
                let Some(n) = value.as_i64() else {
                    return wrong("a whole number", "write a whole number, like `21`");
                };
                if self.min.is_some_and(|m| n < m) || self.max.is_some_and(|m| n > m) {
                    return Err(Misfit::new(
                        format!("`{n}` is out of range"),
                        Some(format!("write a {}", self.type_label())),
                    ));
                }
                Ok(())
            }
            SettingKind::Size | SettingKind::Duration => measure(kind, value),
            SettingKind::Enum => {
                let given = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
                if self.values.contains(&given) {
                    return Ok(());
                }
                let choices = || self.values.iter().map(String::as_str);
                Err(Misfit::new(
                    format!("must be {}, not {}", one_of(choices()), describe(value)),
                    did_you_mean(&given, choices())
                        .or_else(|| Some(format!("write {}", one_of(choices())))),
                ))
            }
            SettingKind::Email => match text {
                Some(t) => names::check_email(t).map(|_| ()).map_err(|why| {
                    Misfit::new(format!("`{t}` is not a mail address: {why}"), None)
                }),
                None => wrong(
                    "a mail address",
                    "write an address, like `bureau@example.org`",
                ),
            },
            SettingKind::Hostname => match text {
                Some(t) => names::check_dns_name(t).map_err(|why| {
                    Misfit::new(format!("`{t}` is not a valid host name: {why}"), None)
                }),
                None => wrong("a host name", "write a host name, like `mail.example.org`"),
            },
            SettingKind::List => wrong("a single value", "lists of lists are not supported"),
        }
    }
}

/// Checks a size or a duration: text with a unit. A bare number gets a hint
/// that suggests the units, since `21` alone could mean days or hours.
fn measure(kind: SettingKind, value: &Value) -> Result<(), Misfit> {
    let size = kind == SettingKind::Size;
    match value {
        Value::String(t) => {
            let read = if size {
                units::parse_size(t).map(|_| ())
            } else {
                units::parse_duration(t).map(|_| ())
            };
            read.map_err(|e| Misfit::new(e.message, Some(e.hint)))
        }
        Value::Number(n) if size => Err(Misfit::new(
            format!("the size `{n}` has no unit"),
            Some(format!("write `{n} GB` or `{n} MB`")),
        )),
        Value::Number(n) => Err(Misfit::new(
            format!("the duration `{n}` has no unit"),
            Some(format!("write `{n}d` for days or `{n}h` for hours")),
        )),
        other if size => Err(Misfit::new(
            format!("must be a size, not {}", describe(other)),
            Some("write a size, like `5 GB`".into()),
        )),
        other => Err(Misfit::new(
            format!("must be a duration, not {}", describe(other)),
            Some("write a duration, like `21d`".into()),
        )),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the text `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setting(kind: SettingKind) -> Setting {
        Setting {
            kind,
            doc: String::new(),
            default: None,
            values: vec!["livres".into(), "dvd".into()],
            items: Some(SettingKind::Enum),
            min: Some(1),
            max: Some(365),
        }
    }

    #[test]
    fn sizes_need_units() {
        let s = setting(SettingKind::Size);
        assert!(s.check(&json!("5 GB")).is_ok());
        assert_eq!(
            s.check(&json!(5)).expect_err("no unit").message,
            "the size `5` has no unit"
        );
    }

    #[test]
    fn integers_respect_their_range() {
        let s = setting(SettingKind::Integer);
        assert!(s.check(&json!(21)).is_ok());
        assert!(s.check(&json!(0)).is_err());
        assert!(s.check(&json!("21")).is_err());
    }

    #[test]
    fn list_items_are_checked_one_by_one() {
        let s = setting(SettingKind::List);
        assert!(s.check(&json!(["livres", "dvd"])).is_ok());
        let m = s.check(&json!(["livres", "dvds"])).expect_err("bad item");
        assert_eq!(m.item, Some(1));
        assert_eq!(m.hint.as_deref(), Some("did you mean `dvd`?"));
    }

    #[test]
    fn booleans_are_strict() {
        let s = setting(SettingKind::Boolean);
        assert!(s.check(&json!(true)).is_ok());
        assert!(
            s.check(&json!("yes"))
                .expect_err("yes")
                .hint
                .expect("hint")
                .starts_with("write `true`")
        );
    }
}
