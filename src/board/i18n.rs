//! The board's words in French and English. Texts are data, kept in
//! `locales/*.yaml` and embedded in the binary; a unit test keeps the two
//! languages' keys in step.

use std::collections::HashMap;

use super::config::Locale;

/// The texts of one language.
#[derive(Debug)]
pub struct Texts {
    pub(super) map: HashMap<String, String>,
}

impl Texts {
    /// The texts for `locale`.
    pub fn load(locale: Locale) -> anyhow::Result<Self> {
        let source = match locale {
            Locale::En => include_str!("locales/en.yaml"),
            Locale::Fr => include_str!("locales/fr.yaml"),
        };
        let map: HashMap<String, String> = serde_saphyr::from_str(source).map_err(|e| {
            anyhow::anyhow!("the board's `{}` texts are broken: {e}", locale.code())
        })?;
        Ok(Self { map })
    }

    /// The text for `key`; the key itself when missing, so a gap shows
    /// instead of breaking the page.
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.map.get(key).map_or(key, String::as_str)
    }

    /// The text for `key` with each `{name}` replaced by its value.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.get(key).to_string();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn french_and_english_have_the_same_keys() {
        let (en, fr) = (
            Texts::load(Locale::En).unwrap(),
            Texts::load(Locale::Fr).unwrap(),
        );
        let mut a: Vec<_> = en.map.keys().collect();
        let mut b: Vec<_> = fr.map.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn fill_replaces_named_values() {
        let en = Texts::load(Locale::En).unwrap();
        assert!(
            en.fill("mail_request_subject", &[("offer", "Drill")])
                .contains("Drill")
        );
    }
}
