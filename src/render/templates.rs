//! The one tera environment: catalog templates and the template strings in
//! catalog entries (environment values, paths, commands), with voisin's
//! filters. Autoescaping is off: these are configuration files, not HTML.

use tera::{Context, Kwargs, State, Tera, TeraResult, Value};

use crate::units;

/// Template names are `ENTRY/PATH` for files and `ENTRY/inline/N` for
/// strings found in entries.
pub struct Templates {
    tera: Tera,
    inline: usize,
}

impl Templates {
    /// An environment with voisin's filters and no templates yet.
    pub fn new() -> Self {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.register_filter("flag", flag);
        tera.register_filter("bytes", bytes);
        tera.register_filter("php_size", php_size);
        tera.register_filter("dovecot_size", dovecot_size);
        tera.register_filter("json", json);
        Self { tera, inline: 0 }
    }

    /// Adds a template file of the catalog.
    pub fn add_file(&mut self, name: &str, source: &str) -> TeraResult<()> {
        self.tera.add_raw_template(name, source)
    }

    /// Renders a template file.
    pub fn render_file(&self, name: &str, context: &Context) -> TeraResult<String> {
        self.tera.render(name, context)
    }

    /// Renders a string from a catalog entry. Strings without `{{` or `{%`
    /// are returned as they are, which keeps rendering fast.
    pub fn render_str(
        &mut self,
        owner: &str,
        source: &str,
        context: &Context,
    ) -> TeraResult<String> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        self.inline += 1;
        let name = format!("{owner}/inline/{}", self.inline);
        self.tera.add_raw_template(&name, source)?;
        self.tera.render(&name, context)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// `true` → `1`, `false` → `0`: how docker-mailserver spells booleans.
fn flag(value: bool, _: Kwargs, _: &State) -> &'static str {
    if value { "1" } else { "0" }
}

fn size_of(text: &str) -> TeraResult<u64> {
    units::parse_size(text).map_err(|e| tera::Error::message(format!("{}: {}", e.message, e.hint)))
}

/// A size (`25 MB`) as a number of bytes.
fn bytes(value: &str, _: Kwargs, _: &State) -> TeraResult<u64> {
    size_of(value)
}

/// A size in PHP's shorthand (`512M`), rounded up to whole mebibytes.
fn php_size(value: &str, _: Kwargs, _: &State) -> TeraResult<String> {
    Ok(format!("{}M", size_of(value)?.div_ceil(1 << 20)))
}

/// A size in Dovecot's quota units (`5120M`), rounded up to whole mebibytes.
fn dovecot_size(value: &str, _: Kwargs, _: &State) -> TeraResult<String> {
    Ok(format!("{}M", size_of(value)?.div_ceil(1 << 20)))
}

/// Any value as JSON: strings quoted and escaped, lists and maps nested.
#[allow(
    clippy::needless_pass_by_value,
    reason = "tera hands filters their value"
)]
fn json(value: Value, _: Kwargs, _: &State) -> TeraResult<String> {
    serde_json::to_string(&value).map_err(|e| tera::Error::message(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, context: &Context) -> String {
        let mut t = Templates::new();
        t.render_str("test", source, context).expect("renders")
    }

    #[test]
    fn filters_convert_sizes_and_flags() {
        let mut c = Context::new();
        c.insert("size", "25 MB");
        c.insert("on", &true);
        assert_eq!(render("{{ size | bytes }}", &c), "25000000");
        assert_eq!(render("{{ size | php_size }}", &c), "24M");
        assert_eq!(render("{{ '5 GB' | dovecot_size }}", &c), "4769M");
        assert_eq!(render("{{ on | flag }}", &c), "1");
    }

    #[test]
    fn json_quotes_and_escapes() {
        let mut c = Context::new();
        c.insert("name", "Chloé \"La\" Lefèvre");
        c.insert("list", &vec!["a", "b"]);
        assert_eq!(
            render("{{ name | json }}", &c),
            "\"Chloé \\\"La\\\" Lefèvre\""
        );
        assert_eq!(render("{{ list | json }}", &c), "[\"a\",\"b\"]");
    }

    #[test]
    fn plain_strings_are_not_parsed() {
        assert_eq!(
            render("no {templates} here", &Context::new()),
            "no {templates} here"
        );
    }

    #[test]
    fn a_missing_variable_is_named_in_the_error() {
        let mut t = Templates::new();
        let err = t
            .render_str("entry", "{{ service.hots }}", &Context::new())
            .expect_err("undefined");
        assert!(err.to_string().contains("service"), "{err}");
    }

    #[test]
    fn bad_sizes_fail_with_the_reason() {
        let mut t = Templates::new();
        let err = t
            .render_str("entry", "{{ 'big' | bytes }}", &Context::new())
            .expect_err("not a size");
        assert!(format!("{err:?}").contains("not a size"), "{err:?}");
    }
}
