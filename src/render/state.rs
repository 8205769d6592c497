//! The desired state: everything the engine should run for a manifest, as
//! plain data. Resolving and rendering produce it; the plan compares it with
//! what the engine has; `render` writes it out. Nothing here talks to Docker.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::secrets::Secret;

/// Everything to run, in a fixed order, so that two renders of one manifest
/// are equal byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredState {
    /// The association's short name, the prefix of every object's name.
    pub association: String,
    /// The association's domain, stored in every object's labels.
    pub domain: String,
    /// Networks, by name.
    pub networks: Vec<Network>,
    /// Volumes, by name.
    pub volumes: Vec<Volume>,
    /// Containers, in an order where each comes after what it depends on.
    pub containers: Vec<ContainerSpec>,
    /// Web routes the proxy publishes.
    pub routes: Vec<Route>,
    /// Commands to run once containers are healthy, in order.
    pub after_start: Vec<Exec>,
    /// Where people reach each web service, by role (`https://HOST`, or a
    /// loopback URL behind a `loopback` proxy).
    pub urls: BTreeMap<String, String>,
    /// How each service is backed up and restored (services whose entry
    /// says how), in the manifest's order.
    #[serde(skip)]
    pub backups: Vec<ServiceBackup>,
    /// Each service's entry and version, and the upgrade paths its entry
    /// declares (steps and checks resolved), in the manifest's order.
    #[serde(skip)]
    pub entries: Vec<ServiceEntry>,
    /// Where the proxy keeps its certificates, when its entry says.
    #[serde(skip)]
    pub certificates: Option<CertificateSpec>,
}

/// A service's catalog entry as rendered: what `upgrade` compares with the
/// deploy record, and the paths it may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    /// The service (role).
    pub service: String,
    /// The catalog entry's name.
    pub entry: String,
    /// The entry's version.
    pub version: String,
    /// Its upgrade paths, resolved for this bundle.
    pub upgrades: Vec<UpgradePath>,
}

/// One upgrade path of an entry, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradePath {
    /// The versions it starts from (see [`crate::catalog::Upgrade::from`]).
    pub from: String,
    /// Steps, in order.
    pub steps: Vec<Exec>,
    /// Checks, in order.
    pub checks: Vec<Exec>,
}

/// A proxy's certificate store, resolved for this bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSpec {
    /// The container that holds it (engine name).
    pub container: String,
    /// Its path in that container.
    pub path: String,
    /// How it is written.
    pub format: crate::catalog::CertificateFormat,
}

/// How one service is backed up and restored, resolved for this bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBackup {
    /// The service (role).
    pub service: String,
    /// The catalog entry and its version, like `nextcloud@1`.
    pub entry: String,
    /// Every container of the service (engine names).
    pub containers: Vec<String>,
    /// The volumes archived: the entry's name and the engine's name.
    pub volumes: Vec<(String, String)>,
    /// Commands before (maintenance mode on).
    pub before: Vec<Exec>,
    /// Commands whose standard output is stored as a file.
    pub dumps: Vec<DumpSpec>,
    /// Commands after, always run.
    pub after: Vec<Exec>,
    /// Commands before a restore.
    pub restore_before: Vec<Exec>,
    /// Commands that read a stored file on their standard input.
    pub loads: Vec<DumpSpec>,
    /// Commands once the restored service is healthy.
    pub restore_after: Vec<Exec>,
}

/// A dump taken, or loaded, by a command in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSpec {
    /// The container (engine name).
    pub container: String,
    /// The user.
    pub user: Option<String>,
    /// The command.
    pub command: Vec<String>,
    /// The file it is stored as, under `/dumps/`.
    pub file: String,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// Its name on the engine.
    pub name: String,
    /// Its subnet, when voisin fixes it (the edge network, which Nextcloud
    /// must trust as its proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// voisin's labels.
    pub labels: BTreeMap<String, String>,
}

/// A named volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Its name on the engine.
    pub name: String,
    /// The service whose data it holds.
    pub service: String,
    /// voisin's labels.
    pub labels: BTreeMap<String, String>,
}

/// One container, fully specified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    /// Its name on the engine: `ASSOCIATION-ROLE-CONTAINER`.
    pub name: String,
    /// The service (role) it belongs to.
    pub service: String,
    /// Its name within the catalog entry.
    pub container: String,
    /// The image.
    pub image: String,
    /// How the image is made when the engine lacks it; pulled when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::catalog::Build>,
    /// Host name inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Entrypoint, when replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Command, when replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// User, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment (never holds a secret: those are files).
    pub env: BTreeMap<String, String>,
    /// Files placed in the container before it starts.
    pub files: Vec<FileSpec>,
    /// Volumes mounted.
    pub mounts: Vec<Mount>,
    /// In-memory file systems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Networks joined, each with the short names the container answers to.
    pub networks: Vec<Attachment>,
    /// Ports published on the machine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Containers that must be healthy (or running, without a health check) first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Process limit.
    pub pids_limit: u32,
    /// Capabilities kept (all others dropped).
    pub cap_add: Vec<String>,
    /// Always `ALL`: every capability not named in `cap_add` is dropped.
    pub cap_drop: Vec<String>,
    /// `no-new-privileges`, unless the entry says the image needs a
    /// set-uid or set-gid program.
    pub security_opt: Vec<String>,
    /// Whether the root file system is read-only.
    pub read_only: bool,
    /// Restart policy.
    pub restart: String,
    /// Log rotation of the json-file driver.
    pub log_max_size: String,
    /// How many rotated logs are kept.
    pub log_max_files: u32,
    /// Seconds to stop before being killed.
    pub stop_grace_seconds: u64,
    /// voisin's labels, with `voisin.spec` the hash of everything above.
    pub labels: BTreeMap<String, String>,
}

/// A file placed in a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileSpec {
    /// Absolute path inside the container.
    pub path: String,
    /// Octal mode, like `0644`.
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// What it holds.
    pub content: Content,
}

/// A file's content: text, or text holding secrets, which is never
/// serialised; only its hash is.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain configuration.
    Text(String),
    /// Configuration holding secrets.
    Secret(Secret),
}

impl Content {
    /// The bytes to write.
    pub fn expose(&self) -> &str {
        match self {
            Self::Text(t) => t,
            Self::Secret(s) => s.expose(),
        }
    }

    /// True for secret content.
    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Secret(_))
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Self::Text(text) => map.serialize_entry("text", text)?,
            // A hash changes when the secret does, so plans see the change,
            // and says nothing about a 256-bit random value.
            Self::Secret(secret) => {
                map.serialize_entry("secret_sha256", &sha256_hex(secret.expose().as_bytes()))?;
            }
        }
        map.end()
    }
}

/// A volume mounted in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The volume's name on the engine.
    pub volume: String,
    /// Where it is mounted.
    pub path: String,
    /// Whether it is read-only.
    pub read_only: bool,
}

/// A network a container joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The network's name on the engine.
    pub network: String,
    /// Short names other containers on it use.
    pub aliases: Vec<String>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// The machine's address it is published on; every address when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// On the machine.
    pub host: u16,
    /// In the container.
    pub container: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthSpec {
    /// The command run inside the container.
    pub test: Vec<String>,
    /// Seconds between checks.
    pub interval_seconds: u64,
    /// Seconds one check may take.
    pub timeout_seconds: u64,
    /// Failures in a row before unhealthy.
    pub retries: u32,
    /// Seconds after start during which failures do not count.
    pub start_period_seconds: u64,
}

/// A web route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Router name (the service's role).
    pub name: String,
    /// The public host.
    pub host: String,
    /// Where the proxy sends it.
    pub url: String,
    /// CalDAV/CardDAV discovery redirect target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dav_redirect: Option<String>,
    /// `X-Frame-Options: SAMEORIGIN` instead of `DENY`.
    pub same_origin_frames: bool,
}

/// A command to run in a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exec {
    /// What it is for.
    pub doc: String,
    /// Whom or what this run is for (a member, an item), when the step
    /// runs once per member or item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    /// The container (engine name).
    pub container: String,
    /// The user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The command.
    pub command: Vec<String>,
    /// Skip when this succeeds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unless: Vec<String>,
    /// Environment; values may be secrets, so only their hashes are serialised.
    pub env: BTreeMap<String, Content>,
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl ContainerSpec {
    /// The hash of the whole spec (labels aside), which the plan compares
    /// to decide whether a container must be replaced.
    pub fn spec_hash(&self) -> String {
        let mut copy = self.clone();
        copy.labels.clear();
        let json = serde_json::to_vec(&copy).unwrap_or_default();
        sha256_hex(&json)
    }
}

/// Hex of a digest's bytes.
pub fn sha256_hex_of(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
