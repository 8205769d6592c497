//! The language voisin's diagnostics speak: English, or French for the
//! associations whose manifest says `locale: fr`. The `code` of a
//! diagnostic never changes, so CI and documentation keep working; only
//! its words do.
//!
//! Messages are written in English where they are found (one place per
//! problem, with its values); `lang/fr.yaml` holds each English template
//! with its French. Translating matches a message against the templates and
//! refills the French one, translating the values that are words in turn.
//! A test keeps every message the check corpus produces fully translated.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

pub use crate::cli::Lang;
use crate::diagnostic::Diagnostic;

/// The French texts, as written in `lang/fr.yaml`.
#[derive(Debug, Deserialize)]
struct Texts {
    codes: BTreeMap<String, (String, String)>,
    texts: Vec<(String, String)>,
}

/// One part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A value: `literal` between backticks (kept), `keep` marked `{x*}`.
    Hole {
        name: String,
        literal: bool,
        keep: bool,
    },
}

struct Table {
    codes: BTreeMap<String, (String, String)>,
    /// (English parts, French template), most specific first.
    texts: Vec<(Vec<Part>, String)>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The file is part of the binary and read by a test: it parses.
        let texts: Texts = serde_saphyr::from_str(include_str!("lang/fr.yaml")).unwrap_or(Texts {
            codes: BTreeMap::new(),
            texts: Vec::new(),
        });
        let mut parsed: Vec<(Vec<Part>, String)> = texts
            .texts
            .into_iter()
            .map(|(en, fr)| (parts(&en), fr))
            .collect();
        // A template with more fixed words is a better match than a general one.
        parsed.sort_by_key(|(p, _)| std::cmp::Reverse(literal_len(p)));
        Table {
            codes: texts.codes,
            texts: parsed,
        }
    })
}

fn literal_len(parts: &[Part]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Literal(l) => l.len(),
            Part::Hole { .. } => 0,
        })
        .sum()
}

/// Splits a template into literals and holes.
fn parts(template: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        let name = &rest[open + 1..close];
        if name.is_empty() || name.contains(' ') || name.contains(':') {
            // Braces that are text, like `{ ipv4: … }`.
            out.push(Part::Literal(rest[..=open].to_string()));
            rest = &rest[open + 1..];
            continue;
        }
        out.push(Part::Literal(rest[..open].to_string()));
        // Inside backticks when an odd number of them stand before it.
        let before = template.len() - rest.len() + open;
        let literal = template[..before].matches('`').count() % 2 == 1;
        out.push(Part::Hole {
            name: name.trim_end_matches('*').to_string(),
            literal,
            keep: name.ends_with('*'),
        });
        rest = &rest[close + 1..];
    }
    out.push(Part::Literal(rest.to_string()));
    // Merge neighbouring literals (from braces that were text).
    let mut merged: Vec<Part> = Vec::new();
    for part in out {
        match (merged.last_mut(), part) {
            (Some(Part::Literal(a)), Part::Literal(b)) => a.push_str(&b),
            (_, part) => merged.push(part),
        }
    }
    merged.retain(|p| !matches!(p, Part::Literal(l) if l.is_empty()));
    merged
}

/// Matches `text` against `parts`, capturing each hole (never empty).
fn matches<'t>(parts: &[Part], text: &'t str, caps: &mut Vec<(&'t str, usize)>) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    match first {
        Part::Literal(l) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| matches(rest, t, caps)),
        Part::Hole { .. } => {
            for (end, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
                caps.push((&text[..end], 0));
                if matches(rest, &text[end..], caps) {
                    return true;
                }
                caps.pop();
            }
            false
        }
    }
}

/// True when `text` has no words outside backticks: nothing to translate.
fn only_literals(text: &str) -> bool {
    text.split('`')
        .step_by(2)
        .all(|outside| !outside.chars().any(|c| c.is_ascii_alphabetic()))
}

/// The French for an English text, and whether every word of it was
/// translated. `None` when no template matches.
pub fn french(english: &str) -> Option<(String, bool)> {
    for (parts, fr) in &table().texts {
        let mut caps = Vec::new();
        if !matches(parts, english, &mut caps) {
            continue;
        }
        let holes = parts.iter().filter_map(|p| match p {
            Part::Hole {
                name,
                literal,
                keep,
            } => Some((name, *literal, *keep)),
            Part::Literal(_) => None,
        });
        let mut values: HashMap<&str, String> = HashMap::new();
        let mut complete = true;
        for ((name, literal, keep), (value, _)) in holes.zip(&caps) {
            let shown = if literal || keep {
                (*value).to_string()
            } else if let Some((translated, whole)) = french(value) {
                complete &= whole;
                translated
            } else {
                complete &= only_literals(value);
                (*value).to_string()
            };
            values.insert(name.as_str(), shown);
        }
        let mut out = String::new();
        for part in parts_of_french(fr) {
            match part {
                Part::Literal(l) => out.push_str(&l),
                Part::Hole { name, .. } => {
                    out.push_str(values.get(name.as_str()).map_or("", String::as_str));
                }
            }
        }
        return Some((out, complete));
    }
    None
}

fn parts_of_french(fr: &str) -> Vec<Part> {
    parts(fr)
}

/// A diagnostic in `lang`; English is as written. Words with no French
/// yet stay in English rather than disappear.
pub fn translate(diagnostic: &Diagnostic, lang: Lang) -> Diagnostic {
    let mut d = diagnostic.clone();
    if lang == Lang::Fr {
        if let Some((fr, _)) = french(&d.message) {
            d.message = fr;
        }
        if let Some((fr, _)) = d.hint.as_deref().and_then(french) {
            d.hint = Some(fr);
        }
    }
    d
}

/// The language to speak: `--lang` first, then `LANG` when it names French
/// or English, then the manifest's `locale`, else English.
pub fn choose(flag: Option<Lang>, env_lang: Option<&str>, locale: Option<&str>) -> Lang {
    let from_env = env_lang.and_then(|v| {
        if v.starts_with("fr") {
            Some(Lang::Fr)
        } else if v.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    });
    flag.or(from_env)
        .or_else(|| (locale == Some("fr")).then_some(Lang::Fr))
        .unwrap_or(Lang::En)
}

/// [`choose`] with the process's `LANG`.
pub fn choose_here(flag: Option<Lang>, locale: Option<&str>) -> Lang {
    choose(flag, std::env::var("LANG").ok().as_deref(), locale)
}

/// The short title of a code, in English and French.
pub fn title(code: &str) -> Option<&'static (String, String)> {
    table().codes.get(code)
}

/// Words the check's summary uses.
pub fn summary(lang: Lang, errors: usize, warnings: usize) -> String {
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match lang {
        Lang::En => format!(
            "{}, {}",
            count(errors, "error", "errors"),
            count(warnings, "warning", "warnings")
        ),
        Lang::Fr => format!(
            "{}, {}",
            count(errors, "erreur", "erreurs"),
            count(warnings, "avertissement", "avertissements")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_french_file_reads_and_every_template_keeps_its_values() {
        let texts: Texts =
            serde_saphyr::from_str(include_str!("lang/fr.yaml")).expect("fr.yaml parses");
        assert!(texts.texts.len() > 100);
        for (en, fr) in &texts.texts {
            let names = |t: &str| {
                let mut n: Vec<String> = parts(t)
                    .into_iter()
                    .filter_map(|p| match p {
                        Part::Hole { name, .. } => Some(name),
                        Part::Literal(_) => None,
                    })
                    .collect();
                n.sort();
                n
            };
            assert_eq!(names(en), names(fr), "{en} / {fr}");
        }
    }

    #[test]
    fn every_documented_code_has_both_texts() {
        let doc = include_str!("../docs/json-output.md");
        let section = doc
            .split("## Codes")
            .nth(1)
            .and_then(|s| s.split("\n# ").next())
            .expect("codes");
        let mut codes = 0;
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cell = line.split('|').nth(1).unwrap_or_default();
            for code in cell.split('`').skip(1).step_by(2) {
                let (en, fr) =
                    title(code).unwrap_or_else(|| panic!("`{code}` has no texts in lang/fr.yaml"));
                assert!(!en.is_empty() && !fr.is_empty() && en != fr, "{code}");
                codes += 1;
            }
        }
        assert!(codes > 50, "{codes}");
    }

    #[test]
    fn translates_values_that_are_words_and_keeps_literals() {
        assert_eq!(
            french("`backup.keep.daily` must be a whole number, not the text `yes`"),
            Some((
                "`backup.keep.daily` doit être un nombre entier, pas le texte `yes`".into(),
                true
            ))
        );
        assert_eq!(
            french("`Amis.org` is not a valid domain: it has upper-case letters; write it in lower case"),
            Some(("`Amis.org` n'est pas un domaine valide : il a des majuscules ; écrivez-le en minuscules".into(), true))
        );
        let (_, complete) =
            french("`x` is not a valid domain: some reason nobody wrote").expect("matches");
        assert!(!complete);
    }

    #[test]
    fn the_flag_beats_lang_which_beats_the_manifest() {
        assert_eq!(choose(None, None, Some("fr")), Lang::Fr);
        assert_eq!(choose(None, Some("C.UTF-8"), Some("fr")), Lang::Fr);
        assert_eq!(choose(None, Some("en_GB.UTF-8"), Some("fr")), Lang::En);
        assert_eq!(
            choose(Some(Lang::Fr), Some("en_GB.UTF-8"), Some("en")),
            Lang::Fr
        );
        assert_eq!(choose(None, Some("fr_BE.UTF-8"), None), Lang::Fr);
        assert_eq!(choose(None, None, None), Lang::En);
    }
}
