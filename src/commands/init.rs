//! `voisin init`: a volunteer's first manifest. It asks for what it needs
//! (or takes flags, for scripts), writes a commented `voisin.yaml` that
//! passes `check`, and the JSON Schema beside it so that editors complete
//! and check the file from the first keystroke.
//!
//! Every answer is checked as it is given, with the same rules `check`
//! applies, and the finished text goes through `check` itself before it is
//! written: `init` never leaves a file that `check` would refuse.

use std::io::{BufRead, IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, InitArgs};
use crate::{Outcome, UsageError, names};

/// The schema file written beside the manifest; the modeline names it.
const SCHEMA_FILE: &str = "voisin.schema.json";

/// The services `init` knows how to start, by role, with the catalog entry
/// and the first label of their host.
const SERVICES: &[(&str, &str, &str)] = &[
    ("mail", "docker-mailserver", "mail"),
    ("cloud", "nextcloud", "cloud"),
    ("board", "voisin-board", "pret"),
];

/// What the manifest is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    name: String,
    domain: String,
    services: Vec<String>,
    admin_name: String,
    admin_id: String,
    admin_email: Option<String>,
    locale: String,
    timezone: String,
    ipv4: Option<std::net::Ipv4Addr>,
}

/// Runs `voisin init`.
pub fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<Outcome> {
    let path = super::manifest_path(global);
    if path.exists() {
        return Err(UsageError::new(
            format!(
                "`{}` already exists; `voisin init` never overwrites a manifest",
                path.display()
            ),
            Some("edit it and run `voisin check`, or name a new file with `-f FILE`".into()),
        )
        .into());
    }
    let stdin = std::io::stdin();
    let answers = if stdin.is_terminal() && (args.name.is_none() || args.domain.is_none()) {
        let mut input = stdin.lock();
        let mut prompt = std::io::stderr().lock();
        ask(args, &mut input, &mut prompt)?
    } else {
        from_flags(args)?
    };

    let loaded = match super::load_catalog(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(outcome),
    };
    let text = manifest_text(&answers);
    let checked = crate::manifest::check(&path.display().to_string(), &text, &loaded.catalog);
    if !checked.is_valid() {
        let mut err = std::io::stderr().lock();
        for d in &checked.diagnostics {
            writeln!(err, "{}", d.render())?;
        }
        anyhow::bail!(
            "the manifest `voisin init` made is invalid, so nothing was written; this is a bug in voisin, please report it with the command line"
        );
    }

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let schema = crate::manifest::schema::for_editors(&loaded.catalog);
    let schema_text = format!("{}\n", serde_json::to_string_pretty(&schema)?);
    write_new(&path, &text)?;
    // The schema is derived, not edited: writing it over an older one is
    // how it stays current.
    std::fs::write(dir.join(SCHEMA_FILE), schema_text).map_err(|e| {
        UsageError::new(
            format!("cannot write `{}`: {e}", dir.join(SCHEMA_FILE).display()),
            None,
        )
    })?;

    if !global.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "wrote {} and {} beside it",
            path.display(),
            SCHEMA_FILE
        )?;
        let lang = crate::lang::choose_here(global.lang, Some(&answers.locale));
        for d in checked.diagnostics.iter().filter(|d| !d.is_error()) {
            writeln!(out, "{}", crate::lang::translate(d, lang).render_in(lang))?;
        }
        writeln!(out, "next:")?;
        writeln!(out, "  voisin check      after each change to the file")?;
        writeln!(
            out,
            "  voisin dns        the records to add at the registrar"
        )?;
        writeln!(
            out,
            "  voisin members credentials {}   the first admin's password",
            answers.admin_id
        )?;
    }
    Ok(Outcome::Success)
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            UsageError::new(
                format!("cannot create `{}`: {e}", path.display()),
                Some("run `voisin init` in a folder you can write to, or name the file with `-f FILE`".into()),
            )
        })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A flag whose value cannot be used: exits 2 with the flag named.
fn bad_flag(flag: &str, value: &str, why: &str, hint: &str) -> anyhow::Error {
    UsageError::new(
        format!("`--{flag} {value}` cannot be used: {why}"),
        Some(hint.to_string()),
    )
    .into()
}

/// The answers from flags alone, for scripts: `--name` and `--domain` are
/// required, everything else has a default.
pub fn from_flags(args: &InitArgs) -> anyhow::Result<Answers> {
    let missing = |flag: &str| {
        anyhow::Error::from(UsageError::new(
            format!("`voisin init` needs `--{flag}` when it cannot ask (standard input is not a terminal)"),
            Some("give `--name \"Les Amis du Quartier\" --domain amis-quartier.org`, or run it in a terminal to be asked".into()),
        ))
    };
    let name = args.name.clone().ok_or_else(|| missing("name"))?;
    let domain = args.domain.clone().ok_or_else(|| missing("domain"))?;
    let locale = args.locale.clone().unwrap_or_else(default_locale);
    let answers = Answers {
        timezone: args
            .timezone
            .clone()
            .unwrap_or_else(|| default_timezone(&locale)),
        services: args
            .services
            .clone()
            .unwrap_or_else(|| SERVICES.iter().map(|(r, _, _)| (*r).to_string()).collect()),
        admin_name: args.admin_name.clone().unwrap_or_else(|| "Admin".into()),
        admin_id: String::new(),
        admin_email: args.admin_email.clone(),
        ipv4: args.ipv4,
        name,
        domain,
        locale,
    };
    finish(answers)
}

/// Checks every answer with the rules `check` uses, and derives the admin's id.
fn finish(mut a: Answers) -> anyhow::Result<Answers> {
    if a.name.trim().is_empty() {
        return Err(bad_flag(
            "name",
            "\"\"",
            "it is empty",
            "give the name members know the association by",
        ));
    }
    if let Err(why) = names::check_dns_name(&a.domain) {
        return Err(bad_flag(
            "domain",
            &a.domain,
            &why,
            "give a domain like `amis-quartier.org`",
        ));
    }
    a.services.retain(|s| !s.trim().is_empty());
    for role in &mut a.services {
        *role = role.trim().to_string();
        if !SERVICES.iter().any(|(r, _, _)| r == role) {
            let known: Vec<&str> = SERVICES.iter().map(|(r, _, _)| *r).collect();
            let hint =
                crate::diagnostic::did_you_mean(role, known.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "choose among {}",
                        crate::diagnostic::one_of(known.iter().copied())
                    )
                });
            return Err(bad_flag("services", role, "no such service", &hint));
        }
    }
    a.services.dedup();
    if a.services.is_empty() {
        return Err(bad_flag(
            "services",
            "\"\"",
            "no service is named",
            "give `mail`, `cloud` and/or `board`, comma-separated",
        ));
    }
    if let Some(email) = &a.admin_email
        && let Err(why) = names::check_email(email)
    {
        return Err(bad_flag(
            "admin-email",
            email,
            &why,
            "give the admin's own address, like `loic.perrin@free.fr`",
        ));
    }
    let mail = a.services.iter().any(|s| s == "mail");
    if !mail && a.admin_email.is_none() {
        return Err(UsageError::new(
            "without a mail service, the admin needs an outside address: sign-in links and the association's contact go there",
            Some("give `--admin-email ADDRESS`, or add `mail` to `--services`".into()),
        )
        .into());
    }
    if !["fr", "en"].contains(&a.locale.as_str()) {
        return Err(bad_flag(
            "locale",
            &a.locale,
            "voisin speaks `fr` and `en`",
            "give `--locale fr` or `--locale en`",
        ));
    }
    if a.timezone.parse::<chrono_tz::Tz>().is_err() {
        let hint = crate::diagnostic::did_you_mean(
            &a.timezone,
            chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
        )
        .unwrap_or_else(|| "give an IANA zone name, like `Europe/Paris` or `UTC`".into());
        return Err(bad_flag(
            "timezone",
            &a.timezone,
            "it is not a time zone",
            &hint,
        ));
    }
    a.admin_id = names::suggest_member_id(&a.admin_name).unwrap_or_else(|| "admin".into());
    Ok(a)
}

fn default_locale() -> String {
    let lang = std::env::var("LC_ALL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("LANG").ok())
        .unwrap_or_default();
    if lang.starts_with("fr") { "fr" } else { "en" }.into()
}

fn default_timezone(locale: &str) -> String {
    if locale == "fr" {
        "Europe/Paris"
    } else {
        "UTC"
    }
    .into()
}

/// Asks, on `prompt`, for what the flags do not give, reading answers from
/// `input`; an answer that would not pass is asked again with the reason.
pub fn ask(
    args: &InitArgs,
    input: &mut impl BufRead,
    prompt: &mut impl Write,
) -> anyhow::Result<Answers> {
    let mut q = Questions { input, prompt };
    let mut name = args.name.clone().unwrap_or_default();
    while name.trim().is_empty() {
        name = q.ask("The association's name", None)?;
    }
    let mut domain = args.domain.clone().unwrap_or_default();
    loop {
        if domain.is_empty() {
            domain = q
                .ask("Its domain (like amis-quartier.org)", None)?
                .to_lowercase();
        }
        match names::check_dns_name(&domain) {
            Ok(()) => break,
            Err(why) => {
                q.say(&format!("`{domain}` cannot be used: {why}"))?;
                domain.clear();
            }
        }
    }
    let services = match &args.services {
        Some(s) => s.clone(),
        None => q
            .ask(
                "Services, comma-separated (mail, cloud, board)",
                Some("mail,cloud,board"),
            )?
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
    };
    let admin_name = match &args.admin_name {
        Some(n) => n.clone(),
        None => q.ask("The first admin's full name", Some("Admin"))?,
    };
    let mail = services.iter().any(|s| s == "mail");
    let mut admin_email = args.admin_email.clone();
    while admin_email.is_none() {
        let question = if mail {
            "Their own address outside the association (optional)"
        } else {
            "Their own address (sign-in links go there)"
        };
        let answer = q.ask(question, None)?;
        if answer.is_empty() && mail {
            break;
        }
        match names::check_email(&answer) {
            Ok(_) => admin_email = Some(answer),
            Err(why) => q.say(&format!("`{answer}` cannot be used: {why}"))?,
        }
    }
    let locale = match &args.locale {
        Some(l) => l.clone(),
        None => q.ask(
            "Language of the board and mails (fr, en)",
            Some(&default_locale()),
        )?,
    };
    let timezone = match &args.timezone {
        Some(t) => t.clone(),
        None => q.ask("Time zone", Some(&default_timezone(&locale)))?,
    };
    let ipv4 = match args.ipv4 {
        Some(ip) => Some(ip),
        None => loop {
            let answer = q.ask("The machine's public IPv4 address (optional)", None)?;
            if answer.is_empty() {
                break None;
            }
            match answer.parse() {
                Ok(ip) => break Some(ip),
                Err(_) => q.say(&format!(
                    "`{answer}` is not an IPv4 address, like `203.0.113.7`"
                ))?,
            }
        },
    };
    finish(Answers {
        name,
        domain,
        services,
        admin_name,
        admin_id: String::new(),
        admin_email,
        locale,
        timezone,
        ipv4,
    })
}

/// A conversation on a terminal: questions and complaints go to `prompt`,
/// answers come from `input`.
struct Questions<'a, R, W> {
    input: &'a mut R,
    prompt: &'a mut W,
}

impl<R: BufRead, W: Write> Questions<'_, R, W> {
    /// Asks one question; an empty answer takes the default.
    fn ask(&mut self, question: &str, default: Option<&str>) -> anyhow::Result<String> {
        match default {
            Some(d) if !d.is_empty() => write!(self.prompt, "{question} [{d}]: ")?,
            _ => write!(self.prompt, "{question}: ")?,
        }
        self.prompt.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            anyhow::bail!("standard input ended before every question was answered");
        }
        let answer = line.trim();
        Ok(if answer.is_empty() {
            default.unwrap_or("").to_string()
        } else {
            answer.to_string()
        })
    }

    /// Says why the last answer cannot be used.
    fn say(&mut self, why: &str) -> anyhow::Result<()> {
        writeln!(self.prompt, "  {why}")?;
        Ok(())
    }
}

/// YAML text for a string: double-quoted with JSON's escapes, which YAML reads.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// The commented manifest.
pub fn manifest_text(a: &Answers) -> String {
    let mail = a.services.iter().any(|s| s == "mail");
    let fr = a.locale == "fr";
    let contact = if mail {
        format!("bureau@{}", a.domain)
    } else {
        a.admin_email.clone().unwrap_or_default()
    };
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line(&format!("# yaml-language-server: $schema=./{SCHEMA_FILE}"));
    line("#");
    line(&format!(
        "# The manifest of {}, written by `voisin init`.",
        a.name.trim()
    ));
    line("# `voisin check` checks it; the line above lets editors complete and check");
    line(&format!(
        "# it with `{SCHEMA_FILE}` (`voisin schema > {SCHEMA_FILE}` refreshes it)."
    ));
    line("association:");
    line(&format!("  name: {}", quoted(&a.name)));
    line(&format!("  domain: {}", a.domain));
    line("  # The address that answers for the association (certificates, DMARC reports).");
    line(&format!("  contact: {contact}"));
    line(&format!("  locale: {}", a.locale));
    line(&format!("  timezone: {}", a.timezone));
    line("  # The machine's public address: DNS records and incoming mail need it.");
    if let Some(ip) = a.ipv4 {
        line("  public_address:");
        line(&format!("    ipv4: {ip}"));
    } else {
        line("  # public_address:");
        line("  #   ipv4: 203.0.113.7");
    }
    line("");
    line("# Everyone gets an account in every service. `voisin members credentials ID`");
    line("# prints a member's first password, to hand over (on paper if need be).");
    line("members:");
    line(&format!("  - id: {}", a.admin_id));
    line(&format!("    name: {}", quoted(&a.admin_name)));
    if mail {
        line(&format!("    mailbox: {}@{}", a.admin_id, a.domain));
    }
    if let Some(email) = &a.admin_email {
        line(&format!("    contact: {email}"));
    }
    line("    roles: [admin]");
    line("");
    line("# One entry per service, by role; `voisin catalog show ENTRY` lists its settings.");
    line("services:");
    for (role, entry, label) in SERVICES {
        if !a.services.iter().any(|s| s == role) {
            continue;
        }
        line(&format!("  {role}:"));
        line(&format!("    use: {entry}"));
        line(&format!("    host: {label}.{}", a.domain));
        match *role {
            "mail" => {
                line("    # Addresses of the association: delivered to members (by id) or");
                line("    # forwarded to outside addresses (written with `@`).");
                line("    aliases:");
                line(&format!("      bureau: [{}]", a.admin_id));
            }
            "board" => {
                line("    settings:");
                let categories = if fr {
                    "[livres, dvd, outils, jeux, services]"
                } else {
                    "[books, films, tools, games, services]"
                };
                line(&format!("      categories: {categories}"));
                line("      loan_period: 21d");
            }
            _ => {}
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> InitArgs {
        InitArgs {
            name: None,
            domain: None,
            services: None,
            admin_name: None,
            admin_email: None,
            locale: Some("fr".into()),
            timezone: None,
            ipv4: None,
        }
    }

    #[test]
    fn asks_again_until_an_answer_can_be_used() {
        let script = "Repair Café\nrepair_cafe.org\nRepair.Example.org\nboard\nLoïc Perrin\nloic\nloic.perrin@free.fr\nEurope/Brussels\n\n";
        let mut prompts = Vec::new();
        let answers = ask(&args(), &mut script.as_bytes(), &mut prompts).expect("answered");
        let prompts = String::from_utf8(prompts).expect("UTF-8");
        assert!(
            prompts.contains("`repair_cafe.org` cannot be used"),
            "{prompts}"
        );
        assert!(
            prompts.contains("`loic` cannot be used: it has no `@`"),
            "{prompts}"
        );
        assert_eq!(answers.domain, "repair.example.org");
        assert_eq!(answers.services, ["board"]);
        assert_eq!(answers.admin_id, "loic-perrin");
        assert_eq!(answers.admin_email.as_deref(), Some("loic.perrin@free.fr"));
        assert_eq!(answers.timezone, "Europe/Brussels");
        let text = manifest_text(&answers);
        assert!(text.contains("contact: loic.perrin@free.fr"), "{text}");
        assert!(
            text.contains("categories: [livres, dvd, outils, jeux, services]"),
            "{text}"
        );
    }

    #[test]
    fn an_input_that_ends_early_is_an_error_not_a_loop() {
        let err = ask(&args(), &mut "Les Amis\n".as_bytes(), &mut Vec::new()).expect_err("ends");
        assert!(err.to_string().contains("ended"), "{err}");
    }
}
