//! Diagnostics: what `check` (and every stage that reads a file a person
//! wrote) reports about a problem. Each one names its location, says what is
//! wrong and, where we can tell, what to do about it.
//!
//! Diagnostics are collected, never thrown: a stage pushes every problem it
//! finds into a list so that one run reports them all.

use std::fmt::Write as _;

use serde::Serialize;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is invalid: `check` fails and nothing is deployed.
    Error,
    /// Valid, but probably not what was meant.
    Warning,
}

/// Where a diagnostic points: a file, a 1-based line and column, and how many
/// characters of that line to underline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Characters to underline from `column` (at least 1).
    #[serde(skip)]
    pub width: usize,
    /// The text of the line, for showing it under the message.
    #[serde(skip)]
    pub source_line: String,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable, kebab-case name for the kind of problem (`unknown-key`, …),
    /// for CI and documentation to refer to.
    pub code: &'static str,
    /// What is wrong: lower-case, literals in backticks, no trailing period.
    pub message: String,
    /// What to do about it, when we can tell.
    pub hint: Option<String>,
    /// The key path inside the document (`services.mail.host`), when the
    /// problem is about a value in it.
    pub path: Option<String>,
    /// Where it is.
    pub location: Option<Location>,
}

impl Diagnostic {
    /// An error with a code and a message; location and hint are added by the builders.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            hint: None,
            path: None,
            location: None,
        }
    }

    /// A warning with a code and a message.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint only when there is one.
    #[must_use]
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Sets where it is.
    #[must_use]
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Sets the key path inside the document.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic for a terminal, in the shape compilers use:
    ///
    /// ```text
    /// error[unknown-key]: unknown key `hots` in `services.mail`
    ///   --> voisin.yaml:12:5
    ///    |
    /// 12 |     hots: mail.example.org
    ///    |     ^^^^
    ///    = hint: did you mean `host`?
    /// ```
    pub fn render(&self) -> String {
        self.render_in(crate::cli::Lang::En)
    }

    /// [`Diagnostic::render`] with the words around the message in `lang`
    /// (the message and hint are translated by [`crate::lang::translate`]).
    pub fn render_in(&self, lang: crate::cli::Lang) -> String {
        let french = lang == crate::cli::Lang::Fr;
        let mut out = String::new();
        let level = match (self.severity, french) {
            (Severity::Error, false) => "error",
            (Severity::Warning, false) => "warning",
            (Severity::Error, true) => "erreur",
            (Severity::Warning, true) => "avertissement",
        };
        let _ = writeln!(out, "{level}[{}]: {}", self.code, self.message);
        let gutter = self
            .location
            .as_ref()
            .map_or(1, |l| l.line.to_string().len());
        let pad = " ".repeat(gutter);
        if let Some(loc) = &self.location {
            let _ = writeln!(out, "{pad}--> {}:{}:{}", loc.file, loc.line, loc.column);
            if !loc.source_line.is_empty() {
                let (shown, column, width) =
                    excerpt(loc.source_line.trim_end(), loc.column, loc.width);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{} | {shown}", loc.line);
                // Tabs keep their width under the line so the marker lines up.
                let lead: String = shown
                    .chars()
                    .take(column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(width.max(1)));
            }
        }
        if let Some(hint) = &self.hint {
            let word = if french { "conseil :" } else { "hint:" };
            let _ = writeln!(out, "{pad} = {word} {hint}");
        }
        out
    }
}

/// Characters of a source line shown under a message; longer lines are cut
/// around the marker, so that a minified or generated line stays readable.
const SHOWN_CHARS: usize = 100;

/// The part of `line` to show, with the marker's column and width in it.
fn excerpt(line: &str, column: usize, width: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SHOWN_CHARS {
        return (line.to_string(), column, width);
    }
    let at = column.saturating_sub(1).min(chars.len());
    let width = width.clamp(1, SHOWN_CHARS / 2);
    let start = at.saturating_sub(SHOWN_CHARS / 3);
    let end = (start + SHOWN_CHARS).min(chars.len());
    let start = end.saturating_sub(SHOWN_CHARS).min(start);
    let mut shown = String::new();
    let mut column = at - start + 1;
    if start > 0 {
        shown.push('…');
        column += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, column, width)
}

/// Suggests the candidate closest to `wrong`, if one is close enough to be
/// what was meant.
pub fn did_you_mean<'a, I>(wrong: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(wrong, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `wrong`, if one is close enough to be what was
/// meant (Jaro-Winkler similarity above 0.8, ignoring case).
pub fn closest<'a, I>(wrong: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let wrong_lower = wrong.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wrong_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Lists choices as `a`, `b` or `c` for messages.
pub fn one_of<'a, I>(choices: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    let items: Vec<String> = choices.into_iter().map(|c| format!("`{c}`")).collect();
    match items.as_slice() {
        [] => String::from("nothing"),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["host", "use", "settings", "aliases"];
        assert_eq!(
            did_you_mean("hots", keys),
            Some("did you mean `host`?".into())
        );
        assert_eq!(
            did_you_mean("setings", keys),
            Some("did you mean `settings`?".into())
        );
        assert_eq!(did_you_mean("zebra", keys), None);
    }

    #[test]
    fn lists_choices_in_prose() {
        assert_eq!(one_of(["a"]), "`a`");
        assert_eq!(one_of(["a", "b", "c"]), "`a`, `b` or `c`");
    }

    #[test]
    fn long_lines_are_cut_around_the_marker() {
        let line = format!("{}bad{}", "x".repeat(500), "y".repeat(500));
        let d = Diagnostic::error("c", "m").at(Location {
            file: "v.yaml".into(),
            line: 1,
            column: 501,
            width: 3,
            source_line: line,
        });
        let text = d.render();
        let lines: Vec<&str> = text.lines().collect();
        let shown = lines[3].strip_prefix("1 | ").expect("the source line");
        let marker = lines[4].strip_prefix("  | ").expect("the marker line");
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() <= SHOWN_CHARS + 2, "{shown}");
        let at = marker.find('^').expect("a marker");
        let under: String = shown.chars().skip(at).take(3).collect();
        assert_eq!(under, "bad", "{text}");
    }

    #[test]
    fn renders_with_marker_under_the_column() {
        let d = Diagnostic::error("unknown-key", "unknown key `hots`")
            .at(Location {
                file: "v.yaml".into(),
                line: 3,
                column: 5,
                width: 4,
                source_line: "    hots: x".into(),
            })
            .with_hint("did you mean `host`?");
        assert_eq!(
            d.render(),
            "error[unknown-key]: unknown key `hots`\n --> v.yaml:3:5\n  |\n3 |     hots: x\n  |     ^^^^\n  = hint: did you mean `host`?\n"
        );
    }
}
