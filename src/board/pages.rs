//! Page templates (tera), embedded in the binary and parsed once at start,
//! so a broken template stops the board before it serves anything.

use std::fmt::Write as _;

use chrono::DateTime;
use tera::{Kwargs, State, Tera, TeraResult};

use super::i18n::Texts;

/// The parsed page templates.
#[derive(Debug)]
pub struct Pages {
    tera: Tera,
}

/// Every template, by name; `.html` names turn on HTML escaping.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("pages/base.html")),
    ("card.html", include_str!("pages/card.html")),
    ("cards.html", include_str!("pages/cards.html")),
    ("front.html", include_str!("pages/front.html")),
    ("signin.html", include_str!("pages/signin.html")),
    ("link.html", include_str!("pages/link.html")),
    ("offers.html", include_str!("pages/offers.html")),
    ("offer.html", include_str!("pages/offer.html")),
    ("offer_new.html", include_str!("pages/offer_new.html")),
    ("requests.html", include_str!("pages/requests.html")),
    ("admin.html", include_str!("pages/admin.html")),
    ("account.html", include_str!("pages/account.html")),
    ("message.html", include_str!("pages/message.html")),
    ("request_rows.html", include_str!("pages/request_rows.html")),
];

impl Pages {
    /// Parses every template; `{{ t(k="key") }}` in them is the text for
    /// `key` in the board's language.
    pub fn load(texts: &Texts) -> anyhow::Result<Self> {
        let mut tera = Tera::new();
        // A function rather than a context value: copying every text into
        // every page's context cost more than rendering the page.
        let map = texts.map.clone();
        tera.register_function(
            "t",
            move |kwargs: Kwargs, _: &State| -> TeraResult<String> {
                let key: &str = kwargs.must_get("k")?;
                map.get(key)
                    .cloned()
                    .ok_or_else(|| tera::Error::message(format!("no text `{key}`")))
            },
        );
        tera.register_filter("day", day);
        tera.register_filter("urlencode", urlencode);
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .map_err(|e| anyhow::anyhow!("a board page template is broken: {e}"))?;
        Ok(Self { tera })
    }

    /// Renders page `name`.
    pub fn render(&self, name: &str, ctx: &tera::Context) -> anyhow::Result<String> {
        self.tera
            .render(name, ctx)
            .map_err(|e| anyhow::anyhow!("cannot render `{name}`: {e}"))
    }
}

/// `{{ ts | day }}`: a Unix timestamp as `YYYY-MM-DD`.
fn day(ts: i64, _: Kwargs, _: &State) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// `{{ text | urlencode }}`: percent-encodes everything but unreserved
/// characters, for query strings.
fn urlencode(text: &str, _: Kwargs, _: &State) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        Pages::load(&Texts::load(super::super::config::Locale::En).unwrap()).unwrap()
    }

    #[test]
    fn day_filter_formats_timestamps_as_dates() {
        let mut ctx = tera::Context::new();
        ctx.insert("o", &serde_json::json!({"kind": "item", "has_photo": false, "id": 1,
            "initial": "D", "title": "Drill", "category": "tools", "owner": "A", "status": "available"}));
        assert!(pages().render("card.html", &ctx).unwrap().contains("Drill"));
        let mut ctx = tera::Context::new();
        ctx.insert("ts", &(86_400 * 365));
        let mut t = Tera::new();
        t.register_filter("day", day);
        t.add_raw_template("x", "{{ ts | day }}").unwrap();
        assert_eq!(t.render("x", &ctx).unwrap(), "1971-01-01");
    }

    #[test]
    fn urlencode_escapes_everything_but_unreserved_characters() {
        let mut t = Tera::new();
        t.register_filter("urlencode", urlencode);
        t.add_raw_template("x", "{{ 'a b&c=é' | urlencode }}")
            .unwrap();
        assert_eq!(
            t.render("x", &tera::Context::new()).unwrap(),
            "a%20b%26c%3D%C3%A9"
        );
    }

    #[test]
    fn every_template_parses() {
        pages();
    }
}
