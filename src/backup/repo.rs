//! The backup repository: restic's format through rustic, so that `restic`
//! itself can list, check and restore it if voisin ever disappears. A local
//! path, or `sftp:` for a machine elsewhere; made on first use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    ConfigOptions, Credentials, IndexedFullStatus, KeyOptions, OpenStatus, Repository,
    RepositoryBackends, RepositoryOptions, RusticResult,
};

use crate::manifest::Backup;

/// Where the password comes from when the manifest's file is not used.
pub const PASSWORD_ENV: &str = "VOISIN_BACKUP_PASSWORD";

/// The tag every snapshot voisin writes carries.
pub const TAG: &str = "voisin";

/// The tag of a snapshot still being written or found bad: never listed,
/// never restored, removed by the next backup.
pub const INCOMPLETE_TAG: &str = "voisin-incomplete";

/// Reaches a repository's storage: `rustic_backend`'s local folder and
/// `sftp:` services, given the repository string and its options.
///
/// The library does not name `rustic_backend` itself: `voisin-full` hands
/// it over through [`provide_storage`]. `rustic_backend` brings `OpenDAL`,
/// whose process constructor registers every storage service it knows; any
/// executable whose crates include it carries all of them (45 MB) and pays
/// for loading them on every start, `voisin check` included (issue 11).
/// Named only by `voisin-full`, it stays out of `voisin`.
pub type Storage = fn(&str, &BTreeMap<String, String>) -> RusticResult<RepositoryBackends>;

static STORAGE: std::sync::OnceLock<Storage> = std::sync::OnceLock::new();

/// Gives the library the way to reach repositories; `voisin-full` calls it
/// first thing. A second call changes nothing.
pub fn provide_storage(storage: Storage) {
    let _ = STORAGE.set(storage);
}

/// The storage [`provide_storage`] gave; the unit tests reach it directly.
fn storage() -> Option<Storage> {
    #[cfg(test)]
    provide_storage(|repository, options| {
        rustic_backend::BackendOptions::default()
            .repository(repository)
            .options(options.clone())
            .to_backends()
    });
    STORAGE.get().copied()
}

/// A repository that cannot be opened or used, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The manifest has no `backup` section.
    #[error("the manifest has no `backup` section")]
    NotConfigured,
    /// The password file cannot be read.
    #[error("cannot read the backup password file `{path}`: {message}")]
    Password {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The repository string is not one voisin understands.
    #[error("the backup repository `{0}` is neither an absolute path nor `sftp:USER@HOST:/PATH`")]
    Location(String),
    /// Nothing is there yet: the first backup makes the repository.
    #[error(
        "backup repository `{0}`: there is no repository there yet (the first `voisin backup` makes it)"
    )]
    NotYet(String),
    /// rustic refused.
    #[error("backup repository `{location}`: {message}")]
    Rustic {
        /// The repository.
        location: String,
        /// rustic's message.
        message: String,
    },
}

impl RepoError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NotConfigured => Some(
                "add a `backup:` section with `repository`, `password_file` and `keep` (see docs/backup.md)".into(),
            ),
            Self::Password { .. } => Some(format!(
                "write the repository's password in that file (mode 0600), or set {PASSWORD_ENV}"
            )),
            Self::Location(_) => Some(
                "write a local folder as an absolute path (`/srv/voisin-backups`) or a machine elsewhere as `sftp:user@host:/srv/backups`".into(),
            ),
            Self::Rustic { message, .. } if message.contains("password") || message.contains("key") => Some(
                "the password does not open this repository: use the password it was made with".into(),
            ),
            Self::Rustic { .. } | Self::NotYet(_) => None,
        }
    }
}

/// How to reach a repository, resolved from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// As written in the manifest (shown to people).
    pub shown: String,
    /// `rustic_backend`'s repository string.
    backend: String,
    /// `rustic_backend`'s options.
    options: BTreeMap<String, String>,
    /// Whether it is on this machine's disk (no cache needed).
    local: bool,
}

impl Location {
    /// Parses the manifest's `repository`: an absolute path (or one relative
    /// to the manifest), or restic's `sftp:[USER@]HOST:/PATH` and
    /// `sftp://[USER@]HOST[:PORT]//PATH`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, RepoError> {
        if let Some(rest) = text.strip_prefix("sftp://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| RepoError::Location(text.to_string()))?;
            // restic writes `sftp://host//abs/path` for an absolute path and
            // `sftp://host/rel` for one relative to the home folder.
            return Ok(Self::sftp(text, authority, &format!("/{path}")));
        }
        if let Some(rest) = text.strip_prefix("sftp:") {
            let (authority, path) = rest
                .split_once(':')
                .ok_or_else(|| RepoError::Location(text.to_string()))?;
            if authority.is_empty() || path.is_empty() {
                return Err(RepoError::Location(text.to_string()));
            }
            return Ok(Self::sftp(text, authority, path));
        }
        if text.contains(':') && !text.starts_with('/') {
            return Err(RepoError::Location(text.to_string()));
        }
        let path = base.join(text);
        Ok(Self {
            shown: text.to_string(),
            backend: path.display().to_string(),
            options: BTreeMap::new(),
            local: true,
        })
    }

    /// Whether the repository is on this machine's disk.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Lets the connections to a remote repository close. The sftp
    /// backend runs `ssh` as a background master per connection, which
    /// exits only once the backend is dropped and has had a moment to say
    /// so: a process that ends at once leaves them running.
    pub fn settle(&self) {
        if !self.local {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    fn sftp(shown: &str, authority: &str, path: &str) -> Self {
        let root = path
            .strip_prefix("//")
            .map_or(path.to_string(), |p| format!("/{p}"));
        let mut options = BTreeMap::new();
        options.insert("endpoint".into(), format!("ssh://{authority}"));
        options.insert("root".into(), root);
        // The admin's `~/.ssh/known_hosts` decides whom to trust.
        options.insert("known_hosts_strategy".into(), "strict".into());
        Self {
            shown: shown.to_string(),
            backend: "opendal:sftp".into(),
            options,
            local: false,
        }
    }
}

/// The password: `VOISIN_BACKUP_PASSWORD` when set, else the file the
/// manifest names (relative to the manifest).
pub fn password(backup: &Backup, base: &Path) -> Result<String, RepoError> {
    if let Ok(p) = std::env::var(PASSWORD_ENV)
        && !p.is_empty()
    {
        return Ok(p);
    }
    let path = base.join(&backup.password_file);
    let text = std::fs::read_to_string(&path).map_err(|e| RepoError::Password {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let pw = text.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(RepoError::Password {
            path,
            message: "it is empty".into(),
        });
    }
    Ok(pw)
}

/// rustic's progress, shown through voisin's reporter: bytes backed up or
/// read, with their total (the reporter shows the rate).
pub struct Bars(pub std::sync::Arc<dyn crate::progress::Reporter>);

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bars")
    }
}

struct BytesBar {
    reporter: std::sync::Arc<dyn crate::progress::Reporter>,
    key: String,
    current: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for BytesBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BytesBar({})", self.key)
    }
}

impl rustic_core::RusticProgress for BytesBar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.total.store(len, std::sync::atomic::Ordering::Relaxed);
    }
    fn set_title(&self, _title: &str) {}
    fn inc(&self, inc: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.current.fetch_add(inc, Relaxed) + inc;
        let total = self.total.load(Relaxed);
        self.reporter
            .bytes(&self.key, now, (total > 0).then_some(total));
    }
    fn finish(&self) {}
}

impl rustic_core::ProgressBars for Bars {
    fn progress(&self, kind: rustic_core::ProgressType, prefix: &str) -> rustic_core::Progress {
        match kind {
            rustic_core::ProgressType::Bytes => rustic_core::Progress::new(BytesBar {
                reporter: self.0.clone(),
                key: prefix.trim_end_matches(['.', ' ']).to_string(),
                current: 0.into(),
                total: 0.into(),
            }),
            _ => rustic_core::Progress::hidden(),
        }
    }
}

/// An open repository.
pub type Repo = Repository<IndexedFullStatus>;

fn rustic_error(location: &Location, e: &impl std::fmt::Display) -> RepoError {
    RepoError::Rustic {
        location: location.shown.clone(),
        message: first_line(&e.to_string()),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_string()
}

/// Opens the repository, making it first when there is none yet (and
/// `create` allows).
pub fn open(
    location: &Location,
    password: &str,
    create: bool,
) -> Result<Repository<OpenStatus>, RepoError> {
    open_with(location, password, create, None)
}

/// [`open`], showing rustic's progress through `bars`.
pub fn open_with(
    location: &Location,
    password: &str,
    create: bool,
    bars: Option<Bars>,
) -> Result<Repository<OpenStatus>, RepoError> {
    let storage = storage().ok_or_else(|| RepoError::Rustic {
        location: location.shown.clone(),
        message: "this executable cannot reach backup storage: run `voisin-full`".into(),
    })?;
    let backends =
        storage(&location.backend, &location.options).map_err(|e| rustic_error(location, &e))?;
    let mut options = RepositoryOptions::default();
    if location.local {
        options = options.no_cache(true);
    } else if let Some(dir) = cache_dir() {
        options = options.cache_dir(dir);
    }
    let repo = match bars {
        Some(bars) => Repository::new_with_progress(&options, &backends, bars),
        None => Repository::new(&options, &backends),
    }
    .map_err(|e| rustic_error(location, &e))?;
    let credentials = Credentials::password(password);
    let exists = repo
        .config_id()
        .map_err(|e| rustic_error(location, &e))?
        .is_some();
    if !exists {
        if !create {
            return Err(RepoError::NotYet(location.shown.clone()));
        }
        if location.local {
            std::fs::create_dir_all(&location.backend).map_err(|e| rustic_error(location, &e))?;
        }
        return repo
            .init(
                &credentials,
                &KeyOptions::default(),
                // restic's own size for data packs, half rustic's: a pack
                // is held whole in memory while it fills, and several are
                // in flight, so this keeps a backup's peak memory down.
                &ConfigOptions::default().set_datapack_size(bytesize::ByteSize::mib(16)),
            )
            .map_err(|e| rustic_error(location, &e));
    }
    repo.open(&credentials)
        .map_err(|e| rustic_error(location, &e))
}

/// Opens the repository with its index read: what backing up and
/// restoring need.
pub fn open_indexed(
    location: &Location,
    password: &str,
    create: bool,
    bars: Option<Bars>,
) -> Result<Repo, RepoError> {
    open_with(location, password, create, bars)?
        .to_indexed()
        .map_err(|e| rustic_error(location, &e))
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("voisin").join("repositories"))
}

/// A snapshot as voisin shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    /// Its id (hex).
    pub id: String,
    /// Its short id, as restic shows it.
    pub short_id: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// The service.
    pub service: String,
    /// The association's domain.
    pub association: String,
    /// The catalog entry and version it was taken with.
    pub entry: String,
    /// Why it was taken: `backup`, `safety` (before a restore).
    pub reason: String,
    /// Bytes in the snapshot.
    pub total_bytes: u64,
    /// Bytes that were new in the repository.
    pub added_bytes: u64,
}

/// The value of a `KEY=VALUE` tag.
pub fn tag_value(snap: &SnapshotFile, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    snap.tags
        .iter()
        .find_map(|t| t.strip_prefix(&prefix).map(str::to_string))
}

/// Whether voisin wrote the snapshot completely.
pub fn is_complete(snap: &SnapshotFile) -> bool {
    snap.tags.contains(TAG) && !snap.tags.contains(INCOMPLETE_TAG)
}

impl Snapshot {
    /// voisin's view of a complete snapshot.
    pub fn from_file(snap: &SnapshotFile) -> Self {
        let id = snap.id.to_hex().to_string();
        let summary = snap.summary.as_ref();
        Self {
            short_id: id.get(..8).unwrap_or(&id).to_string(),
            id,
            time: snap.time.timestamp().to_string(),
            unix: snap.time.timestamp().as_second(),
            service: tag_value(snap, "service").unwrap_or_default(),
            association: tag_value(snap, "association").unwrap_or_default(),
            entry: tag_value(snap, "entry").unwrap_or_default(),
            reason: tag_value(snap, "reason").unwrap_or_else(|| "backup".into()),
            total_bytes: summary.map_or(0, |s| s.total_bytes_processed),
            added_bytes: summary.map_or(0, |s| s.data_added),
        }
    }
}

/// The association's complete snapshots, oldest first.
pub fn snapshots(
    repo: &Repository<impl rustic_core::Open>,
    association: &str,
) -> Result<Vec<SnapshotFile>, RepoError> {
    let all = repo.get_all_snapshots().map_err(|e| RepoError::Rustic {
        location: String::new(),
        message: first_line(&e.to_string()),
    })?;
    let mut mine: Vec<SnapshotFile> = all
        .into_iter()
        .filter(|s| is_complete(s) && tag_value(s, "association").as_deref() == Some(association))
        .collect();
    mine.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_sftp_locations_become_opendal_options() {
        let l =
            Location::parse("sftp:backup@example.org:/srv/repo", Path::new("/m")).expect("parses");
        assert_eq!(l.backend, "opendal:sftp");
        assert_eq!(l.options["endpoint"], "ssh://backup@example.org");
        assert_eq!(l.options["root"], "/srv/repo");
        let l = Location::parse("sftp://backup@example.org:2222//srv/repo", Path::new("/m"))
            .expect("parses");
        assert_eq!(l.options["endpoint"], "ssh://backup@example.org:2222");
        assert_eq!(l.options["root"], "/srv/repo");
    }

    #[test]
    fn a_relative_path_is_relative_to_the_manifest() {
        let l = Location::parse("backups", Path::new("/etc/voisin")).expect("parses");
        assert_eq!(l.backend, "/etc/voisin/backups");
        assert!(l.local);
    }

    #[test]
    fn an_unknown_scheme_is_refused_with_a_hint() {
        let e = Location::parse("s3:bucket/x", Path::new("/")).expect_err("refused");
        assert!(e.hint().expect("hint").contains("sftp:"));
    }
}
