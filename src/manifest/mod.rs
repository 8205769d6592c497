//! The manifest: one YAML file that describes the association, its members
//! and the services it runs. These types are the single source of truth for
//! its shape: the JSON Schema (`voisin schema`) is derived from them, and the
//! structural check walks that schema.
//!
//! Values that need more than their type to be right (a domain name, a size
//! like `5 GB`, a member id that must exist) stay text here and are checked
//! in [`validate`], which can report each with its position.

pub mod schema;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::diagnostic::Diagnostic;
use crate::document::Document;

/// An association's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "voisin manifest")]
pub struct Manifest {
    /// Who the association is.
    pub association: Association,

    /// The Docker engine to deploy to. The local socket when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,

    /// The association's members. Each gets an account in every service.
    #[serde(default)]
    pub members: Vec<Member>,

    /// The services to run, by role (`mail`, `cloud`, `board`…).
    #[serde(default)]
    pub services: BTreeMap<String, Service>,

    /// The reverse proxy in front of every service's web host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,

    /// Where and how long backups are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,

    /// The routine voisin runs unattended (`voisin schedule install`), the
    /// limits `voisin watch` holds the association to, and who hears when
    /// something goes wrong. Every field has a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Operations>,
}

/// The unattended routine, its limits and its alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operations {
    /// When the nightly backup runs (then prune), in the association's time
    /// zone, like `03:15`.
    #[serde(default = "default_backup_at")]
    pub backup_at: String,

    /// When the weekly `backup verify` runs: a day and a time, like `sun 04:30`.
    #[serde(default = "default_verify_at")]
    pub verify_at: String,

    /// How often `voisin watch` runs, like `5m`.
    #[serde(default = "default_watch_every")]
    #[schemars(pattern(crate::units::DURATION_PATTERN))]
    pub watch_every: String,

    /// How often an alert still going on is sent again, like `12h`.
    #[serde(default = "default_remind_every")]
    #[schemars(pattern(crate::units::DURATION_PATTERN))]
    pub remind_every: String,

    /// The limits `voisin watch` warns about.
    #[serde(default)]
    pub limits: Limits,

    /// Where alerts go: through channels that do not need the
    /// association's own mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Alerts>,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            backup_at: default_backup_at(),
            verify_at: default_verify_at(),
            watch_every: default_watch_every(),
            remind_every: default_remind_every(),
            limits: Limits::default(),
            alerts: None,
        }
    }
}

fn default_backup_at() -> String {
    "03:15".into()
}
fn default_verify_at() -> String {
    "sun 04:30".into()
}
fn default_watch_every() -> String {
    "5m".into()
}
fn default_remind_every() -> String {
    "12h".into()
}

/// The limits `voisin watch` holds the association to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// A service whose newest snapshot is older than this is late, like `36h`.
    #[serde(default = "default_snapshot_age")]
    #[schemars(pattern(crate::units::DURATION_PATTERN))]
    pub snapshot_age: String,

    /// A service whose last proven restore is older than this is late, like `8d`.
    #[serde(default = "default_verified_age")]
    #[schemars(pattern(crate::units::DURATION_PATTERN))]
    pub verified_age: String,

    /// A certificate that expires sooner than this is a warning, like `14d`.
    #[serde(default = "default_certificate")]
    #[schemars(pattern(crate::units::DURATION_PATTERN))]
    pub certificate: String,

    /// Free space below this on the volumes' or the repository's disk is
    /// a warning: a size like `5 GB`, or a share like `10%`.
    #[serde(default = "default_disk_free")]
    pub disk_free: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            snapshot_age: default_snapshot_age(),
            verified_age: default_verified_age(),
            certificate: default_certificate(),
            disk_free: default_disk_free(),
        }
    }
}

fn default_snapshot_age() -> String {
    "36h".into()
}
fn default_verified_age() -> String {
    "8d".into()
}
fn default_certificate() -> String {
    "14d".into()
}
fn default_disk_free() -> String {
    "10%".into()
}

/// Where alerts go. At least one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// Who gets alert mail: member ids (their outside `contact`, else their
    /// mailbox) or addresses. The admins when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,

    /// An SMTP relay outside the association (the provider's, a friend
    /// association's). Its password is the secret `alerts-smtp`:
    /// `voisin secrets set alerts-smtp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpRelay>,

    /// A web address that receives each alert as a POST (ntfy, a Matrix
    /// hook, a chat bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// An outside SMTP relay for alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpRelay {
    /// The relay's host name, like `smtp.fai.example`.
    pub host: String,
    /// Its port: 587 for STARTTLS, 465 for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How the connection is protected.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The account name; no authentication when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The sender address, like `alertes@amis-quartier.org`.
    pub from: String,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this machine or its own network.
    None,
}

/// A webhook for alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where each alert is posted, like `https://ntfy.sh/amis-quartier-alertes`.
    pub url: String,
    /// The body's shape.
    #[serde(default)]
    pub format: WebhookFormat,
}

/// The shape of a webhook's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// voisin's own JSON: `{"association", "code", "severity", "state", "subject", "text"}`.
    #[default]
    Json,
    /// ntfy: the text as the body, the subject and priority as headers.
    Ntfy,
    /// A Matrix-style hook: `{"msgtype": "m.text", "body": ...}`.
    Matrix,
}

/// Who the association is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Association {
    /// The association's name, as members know it.
    pub name: String,

    /// The association's DNS domain, like `amis-quartier.org`. Mailboxes live in it.
    pub domain: String,

    /// The address that answers for the association (certificates, DMARC reports).
    pub contact: String,

    /// Language of the board and of mail templates.
    #[serde(default)]
    pub locale: Locale,

    /// IANA time zone, like `Europe/Paris`.
    #[serde(default = "default_timezone")]
    pub timezone: String,

    /// The machine's public addresses, for the DNS records voisin prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<PublicAddress>,

    /// A partner association's backup mail server, like
    /// `mx2.voisins-solidaires.org`: published as a second MX, tried after
    /// the association's own, so mail waits there while this machine is
    /// down. The partner must agree to relay for this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_mx: Option<String>,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

/// A language voisin speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English.
    #[default]
    En,
    /// French.
    Fr,
}

/// The machine's public addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicAddress {
    /// Public IPv4 address, like `203.0.113.7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// Public IPv6 address, like `2001:db8::7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// The Docker engine to deploy to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    /// `unix:///path/to/docker.sock` or `tcp://host:port` (TLS required).
    pub host: String,
    /// Client certificates for a `tcp://` engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Deploy to a Docker Swarm instead of one engine: `host` is then one
    /// of its managers. See docs/swarm.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Swarm>,
}

/// A Docker Swarm: the machines that run the association's services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// Every node voisin may run services on, by its name in `docker node
    /// ls` (the machine's host name), with its own engine: voisin loads
    /// images into it and runs after-start steps and backups there.
    pub nodes: BTreeMap<String, SwarmNode>,
    /// Whether the association's networks encrypt what crosses between
    /// machines (`IPsec`). Turn it off only when the machines share a
    /// private network of their own, or their kernels lack `IPsec`.
    #[serde(default = "default_encrypt")]
    pub encrypt: bool,
}

fn default_encrypt() -> bool {
    true
}

/// One machine of a swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwarmNode {
    /// This machine's own engine: `unix:///path/to/docker.sock` or
    /// `tcp://host:port` (TLS required).
    pub host: String,
    /// Client certificates for a `tcp://` engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Services that run on this machine only, with their data: their
    /// volumes live on its disk. Services that keep data and are pinned
    /// nowhere are pinned by voisin at their first deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// Client certificates for a remote engine; paths are relative to the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The certificate authority that signed the engine's certificate.
    pub ca: PathBuf,
    /// voisin's client certificate.
    pub cert: PathBuf,
    /// voisin's client key.
    pub key: PathBuf,
}

/// One member of the association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Short, stable identifier: lower-case letters, digits, `.`, `_`, `-`.
    /// Becomes the account name in every service.
    pub id: String,

    /// Full name, as other members see it.
    pub name: String,

    /// The member's mailbox, inside the association's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,

    /// An outside address for members without a mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,

    /// Roles: `admin` members administer every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,

    /// Storage quota, like `2 GB`; the service's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::units::SIZE_PATTERN))]
    pub quota: Option<String>,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Administers every service: hides offers, disables members.
    Admin,
}

/// A service the association runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The catalog entry that provides the service (`voisin catalog list`).
    #[serde(rename = "use")]
    pub entry: String,

    /// The public host name the service answers on, like `pret.amis-quartier.org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Mail only: extra addresses of the association's domain, each
    /// delivered to members (by id: their mailbox, else their `contact`)
    /// and forwarded to outside addresses, like
    /// `contact: [alice, loic.perrin@free.fr]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, Vec<String>>,

    /// Settings of the catalog entry (`voisin catalog show NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The reverse proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// The catalog entry that provides the proxy.
    #[serde(rename = "use", default = "default_proxy")]
    pub entry: String,

    /// Address given to the certificate authority; the association's contact when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<String>,

    /// Settings of the catalog entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The proxy entry used when the manifest names none.
pub fn default_proxy() -> String {
    "traefik".to_string()
}

/// Where and how long backups are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The restic-format repository: an absolute path, or `sftp:`, `rest:`, `s3:`… as restic writes them.
    pub repository: String,

    /// File holding the repository's password; relative paths are relative to the manifest.
    pub password_file: PathBuf,

    /// Which snapshots `backup prune` keeps.
    pub keep: Keep,
}

/// Which snapshots to keep. A snapshot kept by any rule is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    /// Keep every snapshot younger than this, like `2d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::units::DURATION_PATTERN))]
    pub within: Option<String>,
    /// Keep the newest N snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// Keep the last snapshot of each of the last N hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    /// Keep the last snapshot of each of the last N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    /// Keep the last snapshot of each of the last N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    /// Keep the last snapshot of each of the last N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    /// Keep the last snapshot of each of the last N years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

/// The addresses alert mail goes to: each entry of `to` (a member by id,
/// or an address), else every admin. A member's outside `contact` comes
/// before their mailbox, which the association's own mail serves.
pub fn alert_recipients(manifest: &Manifest, alerts: &Alerts) -> Vec<String> {
    let address = |m: &Member| m.contact.clone().or_else(|| m.mailbox.clone());
    let mut out: Vec<String> = if alerts.to.is_empty() {
        manifest
            .members
            .iter()
            .filter(|m| m.roles.contains(&Role::Admin))
            .filter_map(address)
            .collect()
    } else {
        alerts
            .to
            .iter()
            .filter_map(|to| {
                if to.contains('@') {
                    Some(to.clone())
                } else {
                    manifest
                        .members
                        .iter()
                        .find(|m| &m.id == to)
                        .and_then(address)
                }
            })
            .collect()
    };
    out.dedup();
    out
}

/// Reads a manifest document into its types, reporting every structural
/// problem with its position.
pub fn read(document: &Document) -> crate::document::Read<Manifest> {
    document.read(&schema::base())
}

/// The result of checking one manifest.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The manifest, when it could be read (it may still have semantic errors).
    pub manifest: Option<Manifest>,
    /// Every problem found, in document order within each stage.
    pub diagnostics: Vec<Diagnostic>,
    /// The `association.locale` the text gives, even when it is invalid
    /// otherwise: the language to report in.
    pub locale: Option<String>,
}

impl Checked {
    /// True when no diagnostic is an error.
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks a manifest's text: syntax, shape, then meaning against `catalog`.
/// `file` names it in diagnostics. Never panics, whatever the text.
pub fn check(file: &str, text: &str, catalog: &Catalog) -> Checked {
    let document = match Document::parse(file, text) {
        Ok(d) => d,
        Err(d) => {
            return Checked {
                manifest: None,
                diagnostics: vec![*d],
                locale: None,
            };
        }
    };
    check_document(&document, catalog)
}

/// Checks a parsed manifest document's shape and meaning.
pub fn check_document(document: &Document, catalog: &Catalog) -> Checked {
    let read = read(document);
    let mut diagnostics = read.diagnostics.clone();
    if let Some(manifest) = &read.value {
        // A `members` section under a misspelt key (`membres:`) was reported
        // as unknown; every member it names would then look unknown too.
        let members_misspelt = document.root.get("members").is_none()
            && read.diagnostics.iter().any(|d| {
                d.code == "unknown-key"
                    && d.path.as_deref().is_some_and(|p| !p.contains(['.', '[']))
            });
        // Values the shape check replaced were reported already; what the
        // meaning check says about them (or about what they contain) is noise.
        diagnostics.extend(
            validate::validate(document, manifest, catalog)
                .into_iter()
                .filter(|d| !d.path.as_deref().is_some_and(|p| read.touches_replaced(p)))
                .filter(|d| !(members_misspelt && d.code == "unknown-member")),
        );
    }
    // Reading order: a person fixes a file from top to bottom.
    diagnostics.sort_by_key(|d| d.location.as_ref().map(|l| (l.line, l.column)));
    let clean = read.is_clean();
    let locale = document
        .root
        .get("association")
        .and_then(|a| a.get("locale"))
        .and_then(crate::document::Node::scalar_text)
        .map(str::to_string);
    Checked {
        manifest: read.value.filter(|_| clean),
        diagnostics,
        locale,
    }
}
