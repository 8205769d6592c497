//! Page templates (tera), embedded in the binary and parsed once at start,
//! so a broken template stops the board before it serves anything.

use std::fmt::Write as _;

use chrono::DateTime;
use tera1::{Tera, Value};

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
        let mut tera = Tera::default();
        // A function rather than a context value: copying every text into
        // every page's context cost more than rendering the page.
        let map = texts.map.clone();
        tera.register_function(
            "t",
            move |args: &std::collections::HashMap<String, Value>| {
                let key = args
                    .get("k")
                    .and_then(Value::as_str)
                    .ok_or_else(|| tera1::Error::msg("`t` needs `k`, the text's key"))?;
                map.get(key)
                    .map(|text| Value::String(text.clone()))
                    .ok_or_else(|| tera1::Error::msg(format!("no text `{key}`")))
            },
        );
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .map_err(|e| anyhow::anyhow!("a board page template is broken: {e:?}"))?;
        tera.register_filter("day", day);
        tera.register_filter("urlencode", urlencode);
        Ok(Self { tera })
    }

    /// Renders page `name`.
    pub fn render(&self, name: &str, ctx: &tera1::Context) -> anyhow::Result<String> {
        self.tera
            .render(name, ctx)
            .map_err(|e| anyhow::anyhow!("cannot render `{name}`: {e:?}"))
    }
}

/// `{{ ts | day }}`: a Unix timestamp as `YYYY-MM-DD`.
fn day(value: &Value, _: &std::collections::HashMap<String, Value>) -> tera1::Result<Value> {
    let ts = value
        .as_i64()
        .ok_or_else(|| tera1::Error::msg("`day` needs a timestamp"))?;
    let text = DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    Ok(Value::String(text))
}

/// `{{ text | urlencode }}`: percent-encodes everything but unreserved
/// characters, for query strings (tera's own needs its heavy builtins).
fn urlencode(value: &Value, _: &std::collections::HashMap<String, Value>) -> tera1::Result<Value> {
    let text = value
        .as_str()
        .ok_or_else(|| tera1::Error::msg("`urlencode` needs text"))?;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn day_filter_formats_timestamps_as_dates() {
        let v = day(
            &Value::from(86_400 * 365),
            &std::collections::HashMap::new(),
        )
        .unwrap();
        assert_eq!(v, Value::String("1971-01-01".into()));
    }

    #[test]
    fn urlencode_escapes_everything_but_unreserved_characters() {
        let v = urlencode(&Value::from("a b&c=é"), &std::collections::HashMap::new()).unwrap();
        assert_eq!(v, Value::String("a%20b%26c%3D%C3%A9".into()));
    }

    #[test]
    fn every_template_parses() {
        Pages::load(&Texts::load(super::super::config::Locale::En).unwrap()).unwrap();
    }
}
