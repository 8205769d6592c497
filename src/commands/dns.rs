//! `voisin dns` and `voisin dns --check`: the DNS records the association
//! needs, for a volunteer to paste into a registrar's panel, and whether DNS
//! already has them.
//!
//! The DKIM key is made here when it does not exist yet, so that the record
//! printed before the first deploy is the one the deploy signs with.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::{DnsArgs, Format, GlobalArgs};
use crate::dns::check::{self, Finding, LookupError, Resolver, Status};
use crate::dns::{self, Records, relative_name};
use crate::manifest::{self, Manifest};
use crate::secrets::{SecretsError, Store, generate, state_dir};
use crate::{Outcome, UsageError};

/// Version of the JSON shapes `dns --format json` prints; raised only when a
/// field changes meaning or disappears.
const JSON_VERSION: u32 = 1;

/// Prints the records, or compares them with DNS.
pub fn run(global: &GlobalArgs, args: &DnsArgs) -> anyhow::Result<Outcome> {
    let path = super::manifest_path(global);
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        UsageError::new(
            format!("cannot read `{shown}`: {e}"),
            Some("`-f FILE` names the manifest; without it voisin reads `voisin.yaml`".to_string()),
        )
    })?;
    let loaded = match super::load_catalog(global)? {
        Ok(loaded) => loaded,
        Err(outcome) => return Ok(outcome),
    };
    let checked = manifest::check(&shown, &text, &loaded.catalog);
    let mut err = std::io::stderr().lock();
    let lang = crate::lang::choose_here(global.lang, checked.locale.as_deref());
    for d in &checked.diagnostics {
        if d.is_error() || !global.quiet {
            writeln!(err, "{}", crate::lang::translate(d, lang).render_in(lang))?;
        }
    }
    let manifest = match checked.manifest {
        Some(manifest) if checked.is_valid() => manifest,
        _ => {
            writeln!(
                err,
                "error: `{shown}` is not valid, so its DNS records cannot be worked out\n  hint: fix the errors above; `voisin check` checks again"
            )?;
            return Ok(Outcome::Failed);
        }
    };

    let dkim = dkim_public_key(global, &path, &manifest)?;
    let records = dns::records(&manifest, dkim.as_deref());
    if !global.quiet {
        for note in &records.notes {
            writeln!(err, "warning: {}\n  hint: {}", note.message, note.hint)?;
        }
    }
    drop(err);

    if args.check {
        if records.records.is_empty() {
            // Comparing nothing with DNS would be a green check of nothing.
            writeln!(
                std::io::stderr().lock(),
                "error: `{shown}` needs no DNS record, so there is nothing to check\n  hint: give the machine's address under `association.public_address` (`ipv4:`, `ipv6:`) so its hosts get records"
            )?;
            return Ok(Outcome::Failed);
        }
        let resolver = match args.resolver {
            Some(server) => Resolver::server(server),
            None => Resolver::system().map_err(|e| unreachable(&e, false))?,
        };
        let findings = match check::compare(&records.records, &resolver) {
            Ok(findings) => findings,
            Err(e) => return Err(unreachable(&e, args.resolver.is_some()).into()),
        };
        let partner = match partner_mx(&manifest, &resolver) {
            Ok(partner) => partner,
            Err(e) => return Err(unreachable(&e, args.resolver.is_some()).into()),
        };
        print_check(
            global,
            &records,
            &check::Lookup::describe(&resolver),
            &findings,
            partner.as_ref(),
        )?;
        let all_in_place = findings.iter().all(|f| f.status == Status::Matches)
            && partner.as_ref().is_none_or(|p| !p.addresses.is_empty());
        return Ok(if all_in_place {
            Outcome::Success
        } else {
            Outcome::Failed
        });
    }

    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let report = JsonRecords {
            version: JSON_VERSION,
            domain: &records.domain,
            records: records.records.iter().map(JsonRecord::from).collect(),
            notes: &records.notes,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", dns::zone_file(&records, &shown))?;
    }
    Ok(Outcome::Success)
}

/// The partner's backup mail server and the addresses DNS has for it.
#[derive(Serialize)]
pub(super) struct PartnerMx {
    /// Its name.
    pub host: String,
    /// Its addresses; empty when it does not resolve.
    pub addresses: Vec<String>,
}

impl PartnerMx {
    /// What to do when it does not resolve.
    pub fn hint(&self) -> String {
        format!(
            "mail waiting for this machine could not go to `{}`: check the name with the partner association, and correct `association.secondary_mx`",
            self.host
        )
    }
}

/// Asks DNS for the partner's backup mail server, when the manifest names
/// one beside a mail service of its own (else no MX points to it).
pub(super) fn partner_mx(
    manifest: &Manifest,
    lookup: &impl check::Lookup,
) -> Result<Option<PartnerMx>, LookupError> {
    let Some(host) = manifest.association.secondary_mx.as_deref() else {
        return Ok(None);
    };
    if dns::mail_host(manifest).is_none() {
        return Ok(None);
    }
    let addresses = check::addresses(lookup, host)?
        .iter()
        .map(dns::Value::presentation)
        .collect();
    Ok(Some(PartnerMx {
        host: host.to_string(),
        addresses,
    }))
}

/// The base64 public DKIM key, made and saved with the secrets on first
/// need; `None` when the association runs no mail service.
fn dkim_public_key(
    global: &GlobalArgs,
    path: &Path,
    manifest: &Manifest,
) -> anyhow::Result<Option<String>> {
    if !manifest.services.contains_key(dns::MAIL_ROLE) {
        return Ok(None);
    }
    let mut store = match Store::open(&state_dir(path), global.identity.as_deref()) {
        Ok(store) => store,
        Err(e @ SecretsError::NeedIdentity { .. }) => {
            return Err(UsageError::new(
                format!("cannot read the DKIM key: {e}"),
                Some("give the age identity that decrypts it with `--identity FILE`".to_string()),
            )
            .into());
        }
        Err(e) => return Err(e).context("cannot read the secrets, which hold the DKIM key"),
    };
    let key = store.get_or_create(dns::DKIM_SECRET, generate::dkim_key);
    if store.changed() {
        store
            .save()
            .context("cannot save the new DKIM key with the secrets")?;
        if !global.quiet {
            eprintln!(
                "note: made the mail server's DKIM key, kept in `{}`",
                store.path().display()
            );
        }
    }
    let public = generate::dkim_public_record(&key).ok_or_else(|| {
        UsageError::new(
            format!(
                "the secret `{}` in `{}` is not an RSA private key",
                dns::DKIM_SECRET,
                store.path().display()
            ),
            Some(format!(
                "remove the `{}` line to have voisin make a new key, then update the DKIM record",
                dns::DKIM_SECRET
            )),
        )
    })?;
    Ok(Some(public))
}

fn unreachable(e: &LookupError, explicit: bool) -> UsageError {
    let hint = if explicit {
        "check the address and port given to `--resolver`, or leave it out to ask the system's resolvers"
    } else {
        "check the machine's network and `/etc/resolv.conf`, or name a server with `--resolver IP:PORT`"
    };
    UsageError::new(
        format!("cannot check the DNS records: {e}"),
        Some(hint.to_string()),
    )
}

/// One record as `dns --format json` prints it.
#[derive(Serialize)]
struct JsonRecord<'a> {
    name: String,
    #[serde(rename = "type")]
    kind: dns::Kind,
    ttl: u32,
    value: String,
    purpose: &'a str,
}

impl<'a> From<&'a dns::Record> for JsonRecord<'a> {
    fn from(r: &'a dns::Record) -> Self {
        Self {
            name: format!("{}.", r.name),
            kind: r.kind(),
            ttl: r.ttl,
            value: r.value.presentation(),
            purpose: &r.purpose,
        }
    }
}

#[derive(Serialize)]
struct JsonRecords<'a> {
    version: u32,
    domain: &'a str,
    records: Vec<JsonRecord<'a>>,
    notes: &'a [dns::Note],
}

/// One finding as `dns --check --format json` prints it.
#[derive(Serialize)]
struct JsonFinding<'a> {
    #[serde(flatten)]
    record: JsonRecord<'a>,
    status: &'static str,
    found: &'a [String],
    hint: Option<String>,
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    version: u32,
    domain: &'a str,
    resolver: &'a str,
    in_place: bool,
    counts: Counts,
    records: Vec<JsonFinding<'a>>,
    /// The partner's backup mail server (`null` without one).
    secondary_mx: Option<&'a PartnerMx>,
    notes: &'a [dns::Note],
}

#[derive(Serialize, Default)]
struct Counts {
    matches: usize,
    missing: usize,
    different: usize,
    unknown: usize,
}

fn status_word(status: &Status) -> &'static str {
    match status {
        Status::Matches => "matches",
        Status::Missing => "missing",
        Status::Different { .. } => "different",
        Status::Unknown { .. } => "unknown",
    }
}

/// What to do about a finding, in the registrar's panel's terms.
fn finding_hint(finding: &Finding, origin: &str) -> Option<String> {
    let r = &finding.record;
    let what = format!(
        "name `{}`, type `{}`, value `{}`",
        relative_name(&r.name, origin),
        r.kind(),
        r.value.presentation()
    );
    match &finding.status {
        Status::Matches => None,
        Status::Missing => Some(format!("add it in the registrar's DNS panel: {what}")),
        Status::Different { hint: Some(hint) } => Some(format!("{hint}: {what}")),
        Status::Different { hint: None } => {
            Some(format!("change it in the registrar's DNS panel to: {what}"))
        }
        Status::Unknown { .. } => Some(
            "ask again in a moment; if it persists, try another resolver with `--resolver IP:PORT`"
                .to_string(),
        ),
    }
}

#[allow(clippy::too_many_lines)]
fn print_check(
    global: &GlobalArgs,
    records: &Records,
    resolver: &str,
    findings: &[Finding],
    partner: Option<&PartnerMx>,
) -> anyhow::Result<()> {
    let mut counts = Counts::default();
    for f in findings {
        match f.status {
            Status::Matches => counts.matches += 1,
            Status::Missing => counts.missing += 1,
            Status::Different { .. } => counts.different += 1,
            Status::Unknown { .. } => counts.unknown += 1,
        }
    }
    let origin = &records.domain;
    let mut out = std::io::stdout().lock();
    if global.format == Format::Json {
        let report = JsonCheck {
            version: JSON_VERSION,
            domain: origin,
            resolver,
            in_place: counts.matches == findings.len()
                && partner.is_none_or(|p| !p.addresses.is_empty()),
            secondary_mx: partner,
            records: findings
                .iter()
                .map(|f| JsonFinding {
                    record: JsonRecord::from(&f.record),
                    status: status_word(&f.status),
                    found: &f.found,
                    hint: finding_hint(f, origin),
                })
                .collect(),
            counts,
            notes: &records.notes,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }

    if !global.quiet {
        writeln!(
            out,
            "checking {} of {origin} with the DNS resolver {resolver}",
            match findings.len() {
                1 => "1 record".to_string(),
                n => format!("{n} records"),
            }
        )?;
    }
    for f in findings {
        let r = &f.record;
        if f.status == Status::Matches {
            if !global.quiet {
                writeln!(
                    out,
                    "ok: `{}.` {} {}",
                    r.name,
                    r.kind(),
                    short(&r.value.presentation())
                )?;
            }
            continue;
        }
        writeln!(
            out,
            "{}: `{}.` {}",
            status_word(&f.status),
            r.name,
            r.kind()
        )?;
        writeln!(out, "  for:      {}", r.purpose)?;
        writeln!(out, "  expected: {}", r.value.zone_data())?;
        if let Status::Unknown { reason } = &f.status {
            writeln!(out, "  found:    no answer ({reason})")?;
        } else if f.found.is_empty() {
            writeln!(out, "  found:    nothing")?;
        } else {
            writeln!(out, "  found:    {}", f.found.join("\n            "))?;
        }
        if let Some(hint) = finding_hint(f, origin) {
            writeln!(out, "  hint: {hint}")?;
        }
    }
    if let Some(p) = partner {
        if p.addresses.is_empty() {
            writeln!(
                out,
                "missing: the partner's backup mail server `{}` has no address in DNS\n  hint: {}",
                p.host,
                p.hint()
            )?;
        } else if !global.quiet {
            writeln!(
                out,
                "ok: the partner's backup mail server `{}` resolves ({})",
                p.host,
                p.addresses.join(", ")
            )?;
        }
    }
    let summary = format!(
        "{} in place, {} missing, {} different",
        counts.matches, counts.missing, counts.different
    );
    if counts.unknown > 0 {
        writeln!(out, "{summary}, {} not answered", counts.unknown)?;
    } else {
        writeln!(out, "{summary}")?;
    }
    if counts.matches < findings.len() {
        writeln!(
            out,
            "hint: after a change, resolvers may keep the old answer for up to an hour (the TTL); check again then"
        )?;
    }
    Ok(())
}

/// A value cut to fit on a line: a DKIM key in full says nothing more when
/// it matches.
fn short(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let head: String = value.chars().take(MAX - 1).collect();
        format!("{head}…")
    }
}
