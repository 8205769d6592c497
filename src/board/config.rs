//! The board's settings, resolved from the command line and environment
//! (what the catalog entry renders) into typed values before anything
//! starts, so a bad setting stops the board at once with a clear message.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::cli::BoardServeArgs;
use crate::units::{parse_duration, parse_size};

/// Everything the board needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The `SQLite` database file.
    pub database: PathBuf,
    /// The address members reach the board at, without a trailing slash;
    /// sign-in links in mails start with it.
    pub public_url: String,
    /// Whether cookies carry `Secure` (the public address is https).
    pub secure_cookies: bool,
    /// Language of pages and mails.
    pub locale: Locale,
    /// The association's display name.
    pub association: String,
    /// Categories offers are filed under, in the manifest's order.
    pub categories: Vec<String>,
    /// How long a loan lasts when the borrower names no end date.
    pub loan_period: Duration,
    /// How long before the due date the borrower is reminded.
    pub reminder_before: Duration,
    /// Largest accepted photo, in bytes.
    pub photo_max_size: u64,
    /// The SMTP server; `None` keeps every mail in the queue.
    pub smtp: Option<SmtpConfig>,
    /// The members file synced at start.
    pub members_file: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` names the client: the proxy voisin
    /// deploys. Empty: the peer is the client.
    pub trusted_proxies: Vec<Subnet>,
    /// How long a client may take to send a request's headers, and
    /// between two reads of its body.
    pub read_timeout: Duration,
    /// How long a client may take to send a whole request body.
    pub body_deadline: Duration,
    /// Connections one client address may hold open (the trusted proxy
    /// is not counted).
    pub max_connections_per_client: usize,
    /// Connections open at once, in all.
    pub max_connections: usize,
}

/// An address range, like `10.213.7.0/24`; a bare address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().with_context(|| {
            format!("`{text}` is not an address or subnet (hint: write it like `10.213.7.0/24`)")
        })?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .with_context(|| format!("`{text}` has a bad prefix length (hint: 0 to {bits})"))?,
        };
        Ok(Self { network, prefix })
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        // An IPv4 peer may reach a dual-stack socket as `::ffff:a.b.c.d`.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        let keep = |bits: u32, total: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                (u128::MAX << (total - bits)) & (u128::MAX >> (128 - total))
            }
        };
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = keep(u32::from(self.prefix), 32);
                u128::from(u32::from(n)) & mask == u128::from(u32::from(a)) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = keep(u32::from(self.prefix), 128);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Languages the board speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    /// English.
    En,
    /// French.
    Fr,
}

impl Locale {
    /// The language's code, as in `lang` attributes.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: only for a server on the same host or network.
    None,
    /// Upgrade a plain connection with STARTTLS.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// Where and how mails are sent.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The server's host name.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// User name and password, when the server asks for them.
    pub credentials: Option<(String, Secret)>,
    /// The sender address.
    pub from: String,
    /// Connection security.
    pub tls: SmtpTls,
}

/// A secret value: its `Debug` and `Display` never show it, so it cannot
/// leak into logs or error messages by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Config {
    /// Settings with the catalog's defaults, for a database at `database`:
    /// a starting point for tests and tools.
    pub fn new(database: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database,
            public_url: "http://localhost:8080".into(),
            secure_cookies: false,
            locale: Locale::En,
            association: "voisin".into(),
            categories: ["books", "films", "tools", "games", "services"]
                .map(String::from)
                .to_vec(),
            loan_period: Duration::from_hours(21 * 24),
            reminder_before: Duration::from_hours(2 * 24),
            photo_max_size: 5_000_000,
            smtp: None,
            members_file: None,
            trusted_proxies: Vec::new(),
            read_timeout: Duration::from_secs(15),
            body_deadline: Duration::from_mins(2),
            max_connections_per_client: 32,
            max_connections: 1_024,
        }
    }

    /// Resolves the command line into settings, refusing any bad value.
    pub fn resolve(args: &BoardServeArgs) -> anyhow::Result<Self> {
        let locale = match args.locale.trim() {
            "en" => Locale::En,
            "fr" => Locale::Fr,
            other => bail!("`{other}` is not a board locale (use `fr` or `en`)"),
        };
        let public_url = args.public_url.trim().trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("the public url `{public_url}` must start with `http://` or `https://`");
        }
        let categories = parse_categories(&args.categories);
        if categories.is_empty() {
            bail!("the board needs at least one category");
        }
        let unit = |what: &str, e: crate::units::UnitError| {
            anyhow::anyhow!("{what}: {} (hint: {})", e.message, e.hint)
        };
        // The catalog renders every variable, an unused one as empty.
        let smtp = match args.smtp_host.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(host) => Some(resolve_smtp(args, host)?),
        };
        Ok(Self {
            listen: args.listen,
            database: args.database.clone(),
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            locale,
            association: args.association.clone(),
            categories,
            loan_period: parse_duration(&args.loan_period).map_err(|e| unit("loan period", e))?,
            reminder_before: parse_duration(&args.reminder_before)
                .map_err(|e| unit("reminder before", e))?,
            photo_max_size: parse_size(&args.photo_max_size)
                .map_err(|e| unit("photo max size", e))?,
            smtp,
            members_file: args.members_file.clone(),
            trusted_proxies: args
                .trusted_proxy
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(Subnet::parse)
                .collect::<anyhow::Result<_>>()
                .context("the trusted proxy setting")?,
            read_timeout: parse_duration(&args.read_timeout)
                .map_err(|e| unit("read timeout", e))?,
            body_deadline: Duration::from_mins(2),
            max_connections_per_client: args.max_connections_per_client.max(1),
            max_connections: 1_024,
        })
    }

    /// The loan period in whole days (at least one).
    pub fn loan_days(&self) -> i64 {
        whole_days(self.loan_period).max(1)
    }

    /// The reminder lead time in whole days.
    pub fn reminder_days(&self) -> i64 {
        whole_days(self.reminder_before)
    }
}

fn whole_days(d: Duration) -> i64 {
    i64::try_from(d.as_secs().div_ceil(86_400)).unwrap_or(i64::MAX)
}

/// Splits a comma-separated category list, dropping blanks and repeats.
pub fn parse_categories(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    out
}

fn resolve_smtp(args: &BoardServeArgs, host: &str) -> anyhow::Result<SmtpConfig> {
    let tls = match args.smtp_tls.trim() {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        other => bail!("`{other}` is not an smtp tls mode (use `none`, `starttls` or `tls`)"),
    };
    let port = args.smtp_port.unwrap_or(match tls {
        SmtpTls::None => 25,
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
    });
    let Some(from) = args.smtp_from.clone() else {
        bail!("`--smtp-from` is needed with `--smtp-host`");
    };
    let user = args.smtp_user.clone().filter(|u| !u.trim().is_empty());
    let credentials = match (&user, &args.smtp_password_file) {
        (Some(user), Some(file)) => {
            let password = std::fs::read_to_string(file).with_context(|| {
                format!("cannot read the smtp password file `{}`", file.display())
            })?;
            Some((
                user.clone(),
                Secret::new(password.trim_end_matches(['\n', '\r']).to_string()),
            ))
        }
        (None, None) => None,
        _ => bail!("`--smtp-user` and `--smtp-password-file` go together"),
    };
    Ok(SmtpConfig {
        host: host.to_string(),
        port,
        credentials,
        from,
        tls,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn categories_drop_blanks_and_repeats() {
        assert_eq!(
            parse_categories(" livres, dvd,,livres ,outils"),
            ["livres", "dvd", "outils"]
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn subnets_contain_their_addresses_only() {
        let net = Subnet::parse("10.213.7.0/24").unwrap();
        assert!(net.contains("10.213.7.200".parse().unwrap()));
        assert!(net.contains("::ffff:10.213.7.3".parse().unwrap()));
        assert!(!net.contains("10.213.8.1".parse().unwrap()));
        assert!(!net.contains("fd00::1".parse().unwrap()));
        let one = Subnet::parse("172.18.0.2").unwrap();
        assert!(one.contains("172.18.0.2".parse().unwrap()));
        assert!(!one.contains("172.18.0.3".parse().unwrap()));
        assert!(
            Subnet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Subnet::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(Subnet::parse("10.0.0.0/33").is_err());
        assert!(Subnet::parse("proxy").is_err());
    }

    #[test]
    fn partial_days_round_up() {
        assert_eq!(whole_days(Duration::from_secs(86_401)), 2);
    }
}
