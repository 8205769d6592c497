//! The catalog: what voisin can deploy. One YAML entry per service
//! (`catalog/NAME.yaml`) and the templates its configuration files are
//! rendered from (`templates/NAME/…`). The default catalog is built into the
//! binary; `--catalog DIR` reads another laid out the same way.

pub mod lint;
pub mod load;
pub mod setting;
pub mod upstream;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use load::{Source, load};
pub use setting::{Setting, SettingKind};

/// One deployable service.
// Each flag is a fact of the entry that a catalog author sets on its own.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The name a manifest's `use:` gives; equal to the file's name.
    pub name: String,

    /// What the entry is for: `mail`, `cloud`, `board`, `proxy`, or a role
    /// of the association's own.
    pub role: String,

    /// One line saying what it is.
    pub summary: String,

    /// The version of the application it deploys.
    pub version: String,

    /// Whether a service using it needs a public `host:`.
    #[serde(default = "yes")]
    pub needs_host: bool,

    /// For a proxy: it runs nothing, and each web service is published on
    /// a port of this machine's loopback address instead, from the `port`
    /// setting up. For trying voisin on one machine, with no domain and no TLS.
    #[serde(default)]
    pub loopback: bool,

    /// Whether the service works behind a `loopback` proxy: served over
    /// plain HTTP on 127.0.0.1, with no domain (the lending board does;
    /// mail, which needs a public name and certificates, does not).
    #[serde(default)]
    pub works_on_loopback: bool,

    /// Whether it sends mail: it then gets a mail account `ROLE@DOMAIN` on
    /// the association's mail service, and joins that service's network.
    #[serde(default)]
    pub sends_mail: bool,

    /// Settings a manifest may give under the service's `settings:`.
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,

    /// Hashes of each member's password its secret templates use
    /// (`member.sha512_crypt`, `member.argon2`). Each is made once, with the
    /// password, and kept with the secrets.
    #[serde(default)]
    pub member_hashes: Vec<PasswordHash>,

    /// The containers it runs, by name.
    #[serde(default)]
    pub containers: BTreeMap<String, Container>,

    /// Commands run in a container once it is healthy: how members become
    /// accounts, apps get installed. Each is skipped when its `unless`
    /// command succeeds, so running them again changes nothing.
    #[serde(default)]
    pub after_start: Vec<Step>,

    /// How to back the service up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSteps>,

    /// How to restore it from a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSteps>,

    /// How a service moves to this version from a deployed earlier one
    /// (`voisin upgrade`): each path names the versions it starts from,
    /// the steps that migrate the data and the checks that prove it
    /// worked. When the list is not empty, it is also the list of versions
    /// that may upgrade to this one: a version no path starts from must go
    /// through an intermediate release (Nextcloud cannot skip a major).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<Upgrade>,

    /// For a proxy: where it keeps the certificates it obtained, so that
    /// `voisin watch` can warn before one expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificateStore>,

    /// What the entry relies on in the upstream images (an environment
    /// variable, a path and its format, a capability, a health command) and
    /// where upstream says so, so that a reviewer can check each in minutes.
    /// `catalog show NAME --upstream` and `docs/catalog.md` print it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<Contract>,
}

/// One way to reach this version of an entry from a deployed earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    /// The deployed versions this path starts from: a version or its first
    /// dot-separated parts (`29` matches `29`, `29.0` and `29.0.3`), or `*`
    /// for any earlier version.
    pub from: String,
    /// Commands run in order once the new containers are healthy and their
    /// after-start steps are done (`occ upgrade`). A failing step rolls the
    /// upgrade back: containers and data.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Commands that must succeed once the steps are done (the application
    /// answers, its data is in the new format); a failing check rolls the
    /// upgrade back.
    #[serde(default)]
    pub checks: Vec<Step>,
}

/// Where a proxy keeps its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateStore {
    /// The container that holds the store.
    pub container: String,
    /// The store's path in that container.
    pub path: String,
    /// How the store is written.
    pub format: CertificateFormat,
}

/// How a certificate store is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateFormat {
    /// Traefik's `acme.json`: `RESOLVER.Certificates[]` with `domain` and
    /// a base64 PEM `certificate`.
    TraefikAcme,
}

/// One thing an entry relies on in an upstream image, and its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The container it concerns; absent when it concerns the whole entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// What is relied on, in a sentence.
    pub what: String,
    /// Where upstream says so: a repository path at the pinned tag
    /// (`owner/repo@TAG:path`) or a documentation page.
    pub source: String,
}

fn yes() -> bool {
    true
}

/// A container of an entry. Text values may use templates (`{{ service.host }}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// The image, pinned by a release tag (and digest where known): never
    /// `latest` nor a tag that moves to each new release, like `v3.7`.
    pub image: String,

    /// How the image is made when the engine lacks it: `voisin` builds it
    /// from the running voisin executable through the engine (no registry
    /// needed); without it, the image is pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,

    /// How many numeric parts the project's release numbers have: 3 for
    /// most (`v3.7.9`), 2 for `postgres` (`18.1`). The lint refuses a tag
    /// with fewer, which names a series rather than a release.
    #[serde(default = "default_release_parts")]
    pub release_parts: u8,

    /// Replaces the image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,

    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,

    /// The user the container runs as (`uid` or `uid:gid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// The container's host name (`{{ service.host }}` for mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,

    /// Environment variables. Secrets never appear here literally: they are
    /// given as files (`secrets:`) and named through `_FILE` variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,

    /// Secrets the container reads, by name: each is generated once, kept
    /// in `.voisin/secrets.yaml` as `SERVICE.NAME`, and placed in
    /// `/run/secrets/NAME` (mode 0400, owned by the container's `user`, or
    /// root).
    #[serde(default)]
    pub secrets: Vec<String>,

    /// Owners (`uid:gid`) of secret files read by another user than the
    /// container's own, by secret name: the Nextcloud image starts as root
    /// but PHP reads its SMTP password as uid 33.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_owners: BTreeMap<String, String>,

    /// Configuration files rendered from templates into the container.
    #[serde(default)]
    pub files: Vec<TemplateFile>,

    /// The service's volumes this container mounts: volume name → path.
    #[serde(default)]
    pub volumes: BTreeMap<String, String>,

    /// Volumes of the service in another role, mounted read-only (the mail
    /// server reads the proxy's certificates).
    #[serde(default)]
    pub borrow: Vec<Borrowed>,

    /// In-memory file systems, for containers whose root is read-only.
    #[serde(default)]
    pub tmpfs: Vec<String>,

    /// Ports published on the machine, as `HOST:CONTAINER` or
    /// `HOST:CONTAINER/udp`.
    #[serde(default)]
    pub ports: Vec<String>,

    /// The web port the proxy sends the service's host to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,

    /// How voisin tells that the container works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,

    /// Containers of the same entry that must be healthy first.
    #[serde(default)]
    pub depends_on: Vec<String>,

    /// What the container may use.
    pub limits: Limits,

    /// Privileges beyond the hardened default (no new privileges, every
    /// capability dropped).
    #[serde(default)]
    pub security: Security,

    /// How long the container gets to stop before it is killed, like `60s`.
    #[serde(default = "default_stop_grace")]
    pub stop_grace: String,
}

fn default_stop_grace() -> String {
    "10s".into()
}

/// How an image is made instead of pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Build {
    /// From the running voisin executable (and, when it is dynamically
    /// linked, the shared libraries it loads): the lending board's image.
    Voisin,
}

fn default_release_parts() -> u8 {
    3
}

/// A volume of another role's service, mounted read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Borrowed {
    /// The role of the service that owns the volume.
    pub role: String,
    /// The volume's name in that service's entry.
    pub volume: String,
    /// Where it is mounted.
    pub path: String,
}

/// A route from the service's host to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The container's HTTP port.
    pub port: u16,
    /// Redirect `/.well-known/caldav` and `carddav` to this path (Nextcloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dav_redirect: Option<String>,
    /// Whether the application frames its own pages (`X-Frame-Options:
    /// SAMEORIGIN` instead of `DENY`): Nextcloud's viewers need it.
    #[serde(default)]
    pub same_origin_frames: bool,
}

/// A health check run inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// The command; exit 0 means healthy.
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// How long one check may take.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Failures in a row before the container counts as unhealthy.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Time after start during which failures do not count.
    #[serde(default = "default_start_period")]
    pub start_period: String,
}

fn default_interval() -> String {
    "10s".into()
}
fn default_timeout() -> String {
    "5s".into()
}
fn default_retries() -> u32 {
    3
}
fn default_start_period() -> String {
    "10s".into()
}

/// Resource limits; every container has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory, like `512 MB` (a template may choose it from settings).
    pub memory: String,
    /// Processes and threads.
    pub pids: u32,
}

/// Privileges beyond the hardened default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Capabilities the image needs (all others are dropped).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Whether the root file system can be read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Whether processes are kept from gaining privileges (set-uid and
    /// set-gid programs, file capabilities). On unless the image needs a
    /// set-gid program, which the entry must then say in a comment.
    #[serde(default = "yes")]
    pub no_new_privileges: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            cap_add: Vec::new(),
            read_only: false,
            no_new_privileges: true,
        }
    }
}

/// A command run in one of the entry's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What it is for, shown while it runs.
    pub doc: String,
    /// The container it runs in.
    pub container: String,
    /// The user it runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run once per member (with `member` in the templates) instead of once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_members: Option<Members>,
    /// Run once per item of this list setting, with `item` in the templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_items_of: Option<String>,
    /// The command.
    pub command: Vec<String>,
    /// Skip the step when this command succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless: Vec<String>,
    /// Environment for the command; values may name secrets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A kind of password hash.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PasswordHash {
    /// `$6$…`, as Dovecot and Postfix read it.
    Sha512Crypt,
    /// `$argon2id$…` in PHC format.
    Argon2,
}

/// Which members a step runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Members {
    /// Every member.
    All,
    /// Members with the `admin` role.
    Admins,
    /// Members with a mailbox.
    Mailboxes,
}

/// How to back a service up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSteps {
    /// Commands before (maintenance mode on).
    #[serde(default)]
    pub before: Vec<Step>,
    /// Dumps: each command's standard output is stored as `file`.
    #[serde(default)]
    pub dumps: Vec<Dump>,
    /// The service's volumes to archive.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Commands after, always run, even when the backup failed.
    #[serde(default)]
    pub after: Vec<Step>,
}

/// A dump taken by a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    /// The container it runs in.
    pub container: String,
    /// The user it runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The command; its standard output is the dump, and a non-zero exit
    /// fails the backup.
    pub command: Vec<String>,
    /// The file name the dump is stored under.
    pub file: String,
}

/// How to restore a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreSteps {
    /// Commands before the volumes are put back.
    #[serde(default)]
    pub before: Vec<Step>,
    /// Loads: each command reads a dump `file` on its standard input.
    #[serde(default)]
    pub loads: Vec<Dump>,
    /// Commands after, once the service is healthy again.
    #[serde(default)]
    pub after: Vec<Step>,
}

/// A configuration file rendered from a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// The template, relative to `templates/ENTRY/`.
    pub template: String,
    /// Where the rendered file goes inside the container.
    pub path: String,
    /// Its mode, like `0644`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Its owner inside the container, as `uid:gid`.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Whether it holds secrets: then it is rendered with the secrets in
    /// its context, and written 0600 wherever voisin writes it.
    #[serde(default)]
    pub secret: bool,
}

fn default_mode() -> String {
    "0644".into()
}
fn default_owner() -> String {
    "0:0".into()
}

/// A loaded catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Entries by name.
    pub entries: BTreeMap<String, Entry>,
    /// Template files present, as `ENTRY/relative/path`.
    pub templates: BTreeSet<String>,
    /// Their text, by the same names.
    pub template_sources: BTreeMap<String, String>,
    /// Where it was read from, for messages.
    pub origin: String,
}

impl Catalog {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The roles entries provide, sorted.
    pub fn roles(&self) -> BTreeSet<&str> {
        self.entries.values().map(|e| e.role.as_str()).collect()
    }

    /// Entries of one role.
    pub fn of_role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.values().filter(move |e| e.role == role)
    }
}

/// The JSON Schema of a catalog entry, used to check entry files.
pub fn entry_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    generator.into_root_schema_for::<Entry>().to_value()
}
