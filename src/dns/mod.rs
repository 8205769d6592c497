//! The DNS records an association needs, worked out from its manifest: the
//! addresses of its hosts, and for mail the MX, SPF, DKIM, DMARC and
//! client-discovery (SRV) records that decide whether its mail arrives.
//!
//! A volunteer pastes these into a registrar's DNS panel, usually once and
//! long before the first deploy, so they are pure data computed from the
//! manifest and the DKIM key alone; [`zone_file`] writes them as a zone file
//! with a comment on each record, and [`check`] compares them with what DNS
//! answers today.

pub mod check;

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::manifest::Manifest;

/// The time to live of every record voisin proposes: an hour, so that a
/// mistake fixed in the registrar's panel is seen again within the hour.
pub const TTL: u32 = 3600;

/// The DKIM selector: the label before `._domainkey`. docker-mailserver signs
/// with `mail` unless told otherwise.
pub const DKIM_SELECTOR: &str = "mail";

/// The role whose service receives the association's mail.
pub const MAIL_ROLE: &str = "mail";

/// The preference of the association's own MX; lower is tried first.
pub const MX_PREFERENCE: u16 = 10;

/// The preference of the partner's backup MX: after the association's own.
pub const SECONDARY_MX_PREFERENCE: u16 = 20;

/// The name of the secret that holds the DKIM private key.
pub const DKIM_SECRET: &str = "mail.dkim_private_key";

/// The type of a record, as zone files and registrar panels spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    #[serde(rename = "AAAA")]
    Aaaa,
    /// A mail exchanger.
    #[serde(rename = "MX")]
    Mx,
    /// Text: SPF, DKIM and DMARC.
    #[serde(rename = "TXT")]
    Txt,
    /// An alias for another name.
    #[serde(rename = "CNAME")]
    Cname,
    /// Where a service (submission, IMAP) is found.
    #[serde(rename = "SRV")]
    Srv,
}

impl Kind {
    /// The type as zone files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Cname => "CNAME",
            Self::Srv => "SRV",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data of a record. Names are absolute, lower case, without the
/// trailing dot; [`Value::presentation`] adds it where zone files need it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// An address (A or AAAA).
    Address(IpAddr),
    /// A mail exchanger and its preference.
    Mx {
        /// Lower is tried first.
        preference: u16,
        /// The host that receives mail.
        exchange: String,
    },
    /// A text record, as one piece: DNS splits it into strings of at most
    /// 255 bytes, which receivers join back without any separator.
    Txt(String),
    /// The name this one is an alias of.
    Cname(String),
    /// A service location.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Share among records of equal priority.
        weight: u16,
        /// The port the service listens on.
        port: u16,
        /// The host that offers it.
        target: String,
    },
}

impl Value {
    /// The record's type.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Address(IpAddr::V4(_)) => Kind::A,
            Self::Address(IpAddr::V6(_)) => Kind::Aaaa,
            Self::Mx { .. } => Kind::Mx,
            Self::Txt(_) => Kind::Txt,
            Self::Cname(_) => Kind::Cname,
            Self::Srv { .. } => Kind::Srv,
        }
    }

    /// The value as a person types it into a registrar's panel: names with
    /// their trailing dot, text in one piece and without quotes.
    pub fn presentation(&self) -> String {
        match self {
            Self::Address(ip) => ip.to_string(),
            Self::Mx {
                preference,
                exchange,
            } => format!("{preference} {exchange}."),
            Self::Txt(text) => text.clone(),
            Self::Cname(target) => format!("{target}."),
            Self::Srv {
                priority,
                weight,
                port,
                target,
            } => format!("{priority} {weight} {port} {target}."),
        }
    }

    /// The value as a zone file writes it: text quoted and split into
    /// strings of at most 255 bytes.
    pub fn zone_data(&self) -> String {
        match self {
            Self::Txt(text) => txt_strings(text)
                .iter()
                .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.presentation(),
        }
    }
}

/// Splits a text record into the strings of at most 255 bytes DNS carries,
/// never inside a character.
pub fn txt_strings(text: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 255 {
            strings.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() || strings.is_empty() {
        strings.push(current);
    }
    strings
}

/// One record the association needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The absolute name, lower case, without the trailing dot.
    pub name: String,
    /// Seconds resolvers may keep it.
    pub ttl: u32,
    /// What it says.
    pub value: Value,
    /// What it is for, in a volunteer's words.
    pub purpose: String,
}

impl Record {
    fn new(name: &str, value: Value, purpose: impl Into<String>) -> Self {
        Self {
            name: name.to_ascii_lowercase(),
            ttl: TTL,
            value,
            purpose: purpose.into(),
        }
    }

    /// The record's type.
    pub fn kind(&self) -> Kind {
        self.value.kind()
    }
}

/// Something the records could not say, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// What is missing.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// Every record an association needs, with what could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    /// The association's domain, lower case.
    pub domain: String,
    /// The records, in the order a person would add them.
    pub records: Vec<Record>,
    /// What is missing from the manifest to complete them.
    pub notes: Vec<Note>,
}

/// The host of the mail service, when the manifest runs one.
pub fn mail_host(manifest: &Manifest) -> Option<&str> {
    manifest
        .services
        .get(MAIL_ROLE)
        .and_then(|s| s.host.as_deref())
}

/// The records `manifest` needs. `dkim_public` is the base64 public key
/// (the `p=` value) of the mail service's DKIM key; it is used only when the
/// manifest runs a mail service.
pub fn records(manifest: &Manifest, dkim_public: Option<&str>) -> Records {
    let association = &manifest.association;
    let domain = association.domain.to_ascii_lowercase();
    let mut records = Vec::new();
    let mut notes = Vec::new();

    let address = association.public_address.as_ref();
    let parse = |text: Option<&String>| text.and_then(|t| t.parse::<IpAddr>().ok());
    let ipv4 = parse(address.and_then(|a| a.ipv4.as_ref()));
    let ipv6 = parse(address.and_then(|a| a.ipv6.as_ref()));
    let mail = mail_host(manifest).map(str::to_ascii_lowercase);

    // Every host a service answers on, once, by name.
    let mut hosts: Vec<(String, &str)> = manifest
        .services
        .iter()
        .filter_map(|(role, s)| Some((s.host.as_deref()?.to_ascii_lowercase(), role.as_str())))
        .collect();
    hosts.sort();
    hosts.dedup_by(|a, b| a.0 == b.0);

    if ipv4.is_none() && ipv6.is_none() {
        if !hosts.is_empty() {
            notes.push(Note {
                message: "no A or AAAA records: the manifest does not say the server's public address"
                    .to_string(),
                hint: "add `public_address: { ipv4: …, ipv6: … }` under `association` (the address your hosting provider gave the server)"
                    .to_string(),
            });
        }
    } else if ipv4.is_none() {
        notes.push(Note {
            message: "no A records: the manifest gives only an IPv6 address, which members on IPv4-only networks cannot reach".to_string(),
            hint: "add `ipv4:` under `association.public_address` if the server has an IPv4 address".to_string(),
        });
    }
    for (host, role) in &hosts {
        let purpose = if Some(host) == mail.as_ref() {
            format!(
                "the {role} server's address: where other servers deliver mail and members' mail clients connect"
            )
        } else {
            format!("the {role} service's address: where members' browsers find it")
        };
        for ip in [ipv4, ipv6].into_iter().flatten() {
            records.push(Record::new(host, Value::Address(ip), purpose.clone()));
        }
    }

    if let Some(mail) = &mail {
        let contact_domain = association
            .contact
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if contact_domain != domain && !contact_domain.ends_with(&format!(".{domain}")) {
            // RFC 7489 section 7.1: reports for another domain are sent only
            // when that domain agrees to receive them.
            notes.push(Note {
                message: format!(
                    "DMARC reports go to `{}`, outside {domain}: receivers send them only if {contact_domain} publishes `{domain}._report._dmarc.{contact_domain}. TXT \"v=DMARC1\"`",
                    association.contact
                ),
                hint: format!(
                    "make `association.contact` an address in {domain}, or ask whoever runs {contact_domain}'s DNS to add that record"
                ),
            });
        }
        let addresses: Vec<IpAddr> = [ipv4, ipv6].into_iter().flatten().collect();
        records.extend(mail_records(
            &domain,
            mail,
            association.secondary_mx.as_deref(),
            &association.contact,
            &addresses,
            dkim_public,
        ));
    }

    Records {
        domain,
        records,
        notes,
    }
}

/// The records mail needs: where it is delivered (MX), who may send it
/// (SPF), how its signatures are checked (DKIM), what receivers do with
/// mail that fails both (DMARC), and how mail clients find the server.
fn mail_records(
    domain: &str,
    mail: &str,
    secondary: Option<&str>,
    contact: &str,
    addresses: &[IpAddr],
    dkim_public: Option<&str>,
) -> Vec<Record> {
    let mut records = Vec::new();
    records.push(Record::new(
        domain,
        Value::Mx {
            preference: MX_PREFERENCE,
            exchange: mail.to_string(),
        },
        format!("MX: mail for `@{domain}` is delivered to {mail}"),
    ));
    if let Some(secondary) = secondary {
        // A higher preference is tried later: only when the association's
        // own server does not answer.
        records.push(Record::new(
            domain,
            Value::Mx {
                preference: SECONDARY_MX_PREFERENCE,
                exchange: secondary.to_ascii_lowercase(),
            },
            format!(
                "MX: while {mail} is down, mail for `@{domain}` waits at the partner's {secondary}"
            ),
        ));
    }
    let mut spf = String::from("v=spf1 mx");
    for ip in addresses {
        let _ = match ip {
            IpAddr::V4(ip) => write!(spf, " ip4:{ip}"),
            IpAddr::V6(ip) => write!(spf, " ip6:{ip}"),
        };
    }
    spf.push_str(" -all");
    records.push(Record::new(
        domain,
        Value::Txt(spf),
        "SPF: only the association's own mail server sends mail from its addresses",
    ));
    if let Some(key) = dkim_public {
        records.push(Record::new(
            &format!("{DKIM_SELECTOR}._domainkey.{domain}"),
            Value::Txt(format!("v=DKIM1; k=rsa; p={key}")),
            "DKIM: the public key receivers check the mail server's signatures with",
        ));
    }
    records.push(Record::new(
        &format!("_dmarc.{domain}"),
        Value::Txt(format!("v=DMARC1; p=quarantine; rua=mailto:{contact}")),
        format!("DMARC: mail that fails SPF and DKIM goes to spam; reports go to {contact}"),
    ));
    // No `autoconfig` CNAME: nothing in the bundle serves the settings file
    // it would point to. The SRV records (RFC 6186) say the same to the
    // clients that read them.
    for (service, port, what) in [
        ("_submissions._tcp", 465, "sending mail (TLS)"),
        ("_submission._tcp", 587, "sending mail (STARTTLS)"),
        ("_imaps._tcp", 993, "reading mail (IMAP over TLS)"),
    ] {
        records.push(Record::new(
            &format!("{service}.{domain}"),
            Value::Srv {
                priority: 0,
                weight: 1,
                port,
                target: mail.to_string(),
            },
            format!("mail clients find the server for {what} on port {port}"),
        ));
    }
    records
}

/// `name` as a zone file with `$ORIGIN origin.` writes it: `@` for the
/// origin itself, relative below it, absolute with a trailing dot elsewhere.
pub fn relative_name(name: &str, origin: &str) -> String {
    if name == origin {
        "@".to_string()
    } else if let Some(label) = name.strip_suffix(origin).and_then(|n| n.strip_suffix('.')) {
        label.to_string()
    } else {
        format!("{name}.")
    }
}

/// The records as a zone file: what a registrar's "import zone" accepts, and
/// what a volunteer reads to fill the panel in record by record. `source`
/// names the manifest in the header.
pub fn zone_file(records: &Records, source: &str) -> String {
    let origin = &records.domain;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; DNS records for {origin}, from `{source}` (`voisin dns`)\n\
         ;\n\
         ; In a registrar's DNS panel, add each record below: the name as shown\n\
         ; (`@` is {origin} itself), the type, and the value without the\n\
         ; quotes (a long TXT value goes in one piece). Then run `voisin dns --check`.\n\
         $ORIGIN {origin}.\n\
         $TTL {TTL}"
    );
    for note in &records.notes {
        let _ = writeln!(out, "\n; {}\n; hint: {}", note.message, note.hint);
    }
    let names: Vec<String> = records
        .records
        .iter()
        .map(|r| relative_name(&r.name, origin))
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(1);
    // Names that open a line are read as zone-file names; the `(` `)` form
    // lets a long TXT record run over several lines.
    let indent = width + " 3600 IN TXT ( ".len();
    if !records.records.iter().any(|r| r.kind() == Kind::Mx) {
        let _ = writeln!(
            out,
            "\n; no mail records: the manifest runs no `{MAIL_ROLE}` service, so mail for\n\
             ; {origin}, if any, is handled elsewhere and keeps its own records"
        );
    }
    let mut purpose = None;
    for (record, name) in records.records.iter().zip(&names) {
        // The addresses of one host share their comment.
        if purpose != Some(&record.purpose) {
            let _ = writeln!(out, "\n; {}", record.purpose);
            purpose = Some(&record.purpose);
        }
        if name.ends_with('.') {
            // Not a name of this zone: a panel for the association's domain
            // cannot hold it.
            let _ = writeln!(
                out,
                "; `{}` is outside {origin}: add this record in its own domain's DNS, not here",
                record.name
            );
        }
        let head = format!(
            "{name:width$} {} IN {:5}",
            record.ttl,
            record.kind().as_str()
        );
        match &record.value {
            Value::Txt(text) if txt_strings(text).len() > 1 => {
                let strings = Value::Txt(text.clone()).zone_data();
                let strings: Vec<&str> = split_quoted(&strings);
                let _ = write!(out, "{} ( {}", head.trim_end(), strings[0]);
                for s in &strings[1..] {
                    let _ = write!(out, "\n{:indent$}{s}", "");
                }
                let _ = writeln!(out, " )");
            }
            value => {
                let _ = writeln!(out, "{head} {}", value.zone_data());
            }
        }
    }
    out
}

/// The quoted strings of a TXT record's zone data, each with its quotes.
fn split_quoted(data: &str) -> Vec<&str> {
    // Our strings never hold a `" "`: quotes inside text are escaped.
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(at) = data[start..].find("\" \"") {
        parts.push(&data[start..=start + at]);
        start += at + 2;
    }
    parts.push(&data[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Source, load};
    use crate::manifest;

    fn example(name: &str) -> Manifest {
        let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("example exists");
        let catalog = load(&Source::BuiltIn).expect("built-in catalog").catalog;
        let checked = manifest::check(&path, &text, &catalog);
        assert!(checked.is_valid(), "{:?}", checked.diagnostics);
        checked.manifest.expect("a manifest")
    }

    fn lines(records: &Records) -> Vec<String> {
        records
            .records
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.kind(), r.value.presentation()))
            .collect()
    }

    #[test]
    fn full_association_needs_addresses_mail_and_client_records() {
        let records = records(&example("full-association.yaml"), Some("KEY"));
        assert_eq!(
            lines(&records),
            [
                "cloud.amis-quartier.org A 203.0.113.10",
                "cloud.amis-quartier.org AAAA 2001:db8::10",
                "mail.amis-quartier.org A 203.0.113.10",
                "mail.amis-quartier.org AAAA 2001:db8::10",
                "pret.amis-quartier.org A 203.0.113.10",
                "pret.amis-quartier.org AAAA 2001:db8::10",
                "amis-quartier.org MX 10 mail.amis-quartier.org.",
                "amis-quartier.org TXT v=spf1 mx ip4:203.0.113.10 ip6:2001:db8::10 -all",
                "mail._domainkey.amis-quartier.org TXT v=DKIM1; k=rsa; p=KEY",
                "_dmarc.amis-quartier.org TXT v=DMARC1; p=quarantine; rua=mailto:bureau@amis-quartier.org",
                "_submissions._tcp.amis-quartier.org SRV 0 1 465 mail.amis-quartier.org.",
                "_submission._tcp.amis-quartier.org SRV 0 1 587 mail.amis-quartier.org.",
                "_imaps._tcp.amis-quartier.org SRV 0 1 993 mail.amis-quartier.org.",
            ]
        );
        assert!(records.notes.is_empty());
        assert!(records.records.iter().all(|r| r.ttl == TTL));
    }

    #[test]
    fn mail_only_without_an_address_has_mail_records_and_asks_for_the_address() {
        let mut manifest = example("mail-only.yaml");
        manifest.association.public_address = None;
        let records = records(&manifest, Some("KEY"));
        assert_eq!(
            lines(&records),
            [
                "chorale-canal.example.org MX 10 mail.chorale-canal.example.org.",
                "chorale-canal.example.org TXT v=spf1 mx -all",
                "mail._domainkey.chorale-canal.example.org TXT v=DKIM1; k=rsa; p=KEY",
                "_dmarc.chorale-canal.example.org TXT v=DMARC1; p=quarantine; rua=mailto:bureau@chorale-canal.example.org",
                "_submissions._tcp.chorale-canal.example.org SRV 0 1 465 mail.chorale-canal.example.org.",
                "_submission._tcp.chorale-canal.example.org SRV 0 1 587 mail.chorale-canal.example.org.",
                "_imaps._tcp.chorale-canal.example.org SRV 0 1 993 mail.chorale-canal.example.org.",
            ]
        );
        assert_eq!(records.notes.len(), 1);
        assert!(records.notes[0].hint.contains("public_address"));
    }

    #[test]
    fn a_secondary_mx_comes_after_the_association_s_own() {
        let mut manifest = example("full-association.yaml");
        manifest.association.secondary_mx = Some("mx2.voisins.example.net".into());
        let mx: Vec<String> = lines(&records(&manifest, Some("KEY")))
            .into_iter()
            .filter(|l| l.contains(" MX "))
            .collect();
        assert_eq!(
            mx,
            [
                "amis-quartier.org MX 10 mail.amis-quartier.org.",
                "amis-quartier.org MX 20 mx2.voisins.example.net.",
            ]
        );
    }

    #[test]
    fn board_only_has_no_mail_records() {
        let mut manifest = example("board-only.yaml");
        let records = records(&manifest, Some("KEY"));
        assert!(records.records.is_empty(), "{:?}", lines(&records));
        assert_eq!(records.notes.len(), 1);

        manifest.association.public_address = Some(manifest::PublicAddress {
            ipv4: Some("198.51.100.4".to_string()),
            ipv6: None,
        });
        let records = super::records(&manifest, Some("KEY"));
        assert_eq!(
            lines(&records),
            ["pret.tilleuls.example.org A 198.51.100.4"]
        );
        assert!(records.notes.is_empty());
    }

    #[test]
    fn a_contact_outside_the_domain_is_told_about_dmarc_reports() {
        let mut manifest = example("full-association.yaml");
        manifest.association.contact = "bureau@example.net".to_string();
        let records = records(&manifest, Some("KEY"));
        assert_eq!(records.notes.len(), 1);
        assert!(
            records.notes[0]
                .message
                .contains("`amis-quartier.org._report._dmarc.example.net. TXT \"v=DMARC1\"`"),
            "{:?}",
            records.notes
        );
    }

    #[test]
    fn long_text_is_split_into_strings_of_at_most_255_bytes() {
        let text = "x".repeat(600);
        let strings = txt_strings(&text);
        assert_eq!(
            strings.iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(strings.concat(), text);
        assert_eq!(txt_strings(""), [""]);
        // Never inside a character.
        let accented = "é".repeat(200);
        assert!(txt_strings(&accented).iter().all(|s| s.len() <= 255));
        assert_eq!(txt_strings(&accented).concat(), accented);
    }

    #[test]
    fn zone_file_names_are_relative_to_the_domain() {
        assert_eq!(relative_name("amis.org", "amis.org"), "@");
        assert_eq!(relative_name("mail.amis.org", "amis.org"), "mail");
        assert_eq!(
            relative_name("mail.autre.net", "amis.org"),
            "mail.autre.net."
        );
        assert_eq!(relative_name("xamis.org", "amis.org"), "xamis.org.");
    }

    #[test]
    fn zone_file_says_where_a_host_outside_the_domain_belongs() {
        let mut manifest = example("full-association.yaml");
        if let Some(board) = manifest.services.get_mut("board") {
            board.host = Some("pret.autre-asso.example.net".into());
        }
        let zone = zone_file(&records(&manifest, Some("KEY")), "voisin.yaml");
        assert!(
            zone.contains("; `pret.autre-asso.example.net` is outside amis-quartier.org: add this record in its own domain's DNS, not here\npret.autre-asso.example.net."),
            "{zone}"
        );
    }

    #[test]
    fn zone_file_splits_the_dkim_key_over_quoted_lines() {
        let key = "A".repeat(392);
        let zone = zone_file(
            &records(&example("full-association.yaml"), Some(&key)),
            "voisin.yaml",
        );
        assert!(
            zone.contains("$ORIGIN amis-quartier.org.\n$TTL 3600\n"),
            "{zone}"
        );
        let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            zone.lines()
                .any(|l| words(l) == "@ 3600 IN MX 10 mail.amis-quartier.org."),
            "{zone}"
        );
        let dkim: Vec<&str> = zone
            .lines()
            .skip_while(|l| !l.starts_with("mail._domainkey"))
            .take(2)
            .collect();
        let first = format!("\"v=DKIM1; k=rsa; p={}\"", &key[..255 - 18]);
        assert_eq!(
            words(dkim[0]),
            format!("mail._domainkey 3600 IN TXT ( {first}")
        );
        assert_eq!(words(dkim[1]), format!("\"{}\" )", &key[255 - 18..]));
        // Continuation lines start with blanks, so they are not read as names.
        assert!(dkim[1].starts_with(' '));
    }
}
