//! Secrets: every password and key voisin needs, generated from the OS's
//! random source the first time it is needed and kept beside the manifest in
//! `.voisin/secrets.yaml` (file 0600 in a 0700 folder), stable from one run to
//! the next.
//!
//! A value is held in [`Secret`], whose `Debug` shows nothing, so a secret
//! cannot reach output, logs or errors by being printed by accident. The
//! file can be encrypted with age (`voisin secrets encrypt`) so that the
//! association can commit it beside the manifest; voisin reads the encrypted
//! copy back with the identity given.

pub mod generate;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use serde::{Deserialize, Serialize};

/// A secret value. Its `Debug` never shows it; only [`Secret::expose`] does,
/// and only the code that writes it where it belongs calls that.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for writing it into a file that holds secrets.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why secrets could not be read or written. Messages name files, never
/// values.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The folder or file cannot be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what voisin writes.
    #[error("`{path}` is not a secrets file voisin can read: {reason}")]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// Why (no value is quoted).
        reason: String,
    },
    /// Only the encrypted copy exists and no identity was given.
    #[error("the secrets are only in the encrypted copy `{path}`")]
    NeedIdentity {
        /// The encrypted copy.
        path: PathBuf,
    },
    /// The encrypted copy could not be decrypted.
    #[error("cannot decrypt `{path}`: {reason}")]
    Decrypt {
        /// The encrypted copy.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A recipient is not an age public key.
    #[error("`{recipient}` is not an age recipient (an `age1…` public key)")]
    BadRecipient {
        /// What was given; public, so it may be shown.
        recipient: String,
    },
    /// A member has no credentials (not in the manifest, or never rendered).
    #[error("no member `{id}` in the manifest")]
    UnknownMember {
        /// The id asked for.
        id: String,
    },
}

/// What `secrets.yaml` holds: a version and values by name.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    values: BTreeMap<String, Secret>,
}

const HEADER: &str = "# voisin's secrets for this manifest: generated, never printed.\n\
# Keep this file private (mode 0600). To commit it, use `voisin secrets encrypt`.\n";

const GITIGNORE: &str = "# Written by voisin: keep the secrets out of git, all but the encrypted copy.\n*\n!.gitignore\n!secrets.yaml.age\n";

/// The secrets of one manifest.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    values: BTreeMap<String, Secret>,
    changed: bool,
}

/// Where the secrets of the manifest at `manifest` live: `.voisin/` beside it.
pub fn state_dir(manifest: &Path) -> PathBuf {
    manifest
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        .join(".voisin")
}

impl Store {
    /// The path of the plain file.
    pub fn path(&self) -> PathBuf {
        self.dir.join("secrets.yaml")
    }

    /// The path of the encrypted copy.
    pub fn encrypted_path(&self) -> PathBuf {
        self.dir.join("secrets.yaml.age")
    }

    /// An empty store for `dir` (nothing is read or written).
    pub fn empty(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            values: BTreeMap::new(),
            changed: false,
        }
    }

    /// Opens the secrets in `dir`: the plain file if present, else the
    /// encrypted copy decrypted with `identity`, else nothing yet.
    pub fn open(dir: &Path, identity: Option<&Path>) -> Result<Self, SecretsError> {
        let mut store = Self::empty(dir);
        let plain = store.path();
        let encrypted = store.encrypted_path();
        let text = if plain.exists() {
            check_private(&plain)?;
            fs::read_to_string(&plain).map_err(|source| SecretsError::Io {
                action: "read",
                path: plain.clone(),
                source,
            })?
        } else if encrypted.exists() {
            let Some(identity) = identity else {
                return Err(SecretsError::NeedIdentity { path: encrypted });
            };
            decrypt(&encrypted, identity)?
        } else {
            return Ok(store);
        };
        let file: File = serde_saphyr::from_str(&text).map_err(|e| SecretsError::Corrupt {
            path: plain.clone(),
            reason: where_only(&e.to_string()),
        })?;
        if file.version != 1 {
            return Err(SecretsError::Corrupt {
                path: plain,
                reason: format!("version {} is not one this voisin knows", file.version),
            });
        }
        store.values = file.values;
        Ok(store)
    }

    /// The secret called `name`, generated by `make` the first time.
    pub fn get_or_create(&mut self, name: &str, make: impl FnOnce() -> Secret) -> Secret {
        if let Some(value) = self.values.get(name) {
            return value.clone();
        }
        let value = make();
        self.values.insert(name.to_string(), value.clone());
        self.changed = true;
        value
    }

    /// Sets the secret called `name` to a value given by someone (an outside
    /// relay's password), replacing any earlier one.
    pub fn set(&mut self, name: &str, value: Secret) {
        if self.values.get(name) != Some(&value) {
            self.values.insert(name.to_string(), value);
            self.changed = true;
        }
    }

    /// The secret called `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.values.get(name)
    }

    /// Every value, for tests that make sure none is ever printed.
    pub fn values(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when secrets were generated since the store was opened.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Writes the store if anything was generated: to a temporary file with
    /// mode 0600, synced, then renamed over the old one, so an interruption
    /// never leaves a half-written file.
    pub fn save(&mut self) -> Result<(), SecretsError> {
        if !self.changed {
            return Ok(());
        }
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| SecretsError::Io {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(io("protect", &self.dir))?;
        // The folder sits beside the manifest, usually in a git repository:
        // only the encrypted copy may ever be committed.
        let ignore = self.dir.join(".gitignore");
        if !ignore.exists() {
            fs::write(&ignore, GITIGNORE).map_err(io("write", &ignore))?;
        }
        let body = self.serialized()?;
        let tmp = self.dir.join(".secrets.yaml.tmp");
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("write", &tmp))?;
        out.write_all(HEADER.as_bytes())
            .map_err(io("write", &tmp))?;
        out.write_all(body.as_bytes()).map_err(io("write", &tmp))?;
        out.sync_all().map_err(io("write", &tmp))?;
        fs::rename(&tmp, self.path()).map_err(io("write", &self.path()))?;
        self.changed = false;
        Ok(())
    }

    fn serialized(&self) -> Result<String, SecretsError> {
        let file = File {
            version: 1,
            values: self.values.clone(),
        };
        serde_saphyr::to_string(&file).map_err(|_| SecretsError::Corrupt {
            path: self.path(),
            reason: "the secrets could not be written as YAML".into(),
        })
    }

    /// Writes an age-encrypted, ASCII-armoured copy of every secret for
    /// `recipients`, which can be committed beside the manifest.
    pub fn encrypt(&self, recipients: &[String]) -> Result<PathBuf, SecretsError> {
        let parsed = recipients
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r).map_err(|_| SecretsError::BadRecipient {
                    recipient: r.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let body = self.serialized()?;
        let path = self.encrypted_path();
        let failed = |e: &dyn fmt::Display| SecretsError::Decrypt {
            path: path.clone(),
            reason: format!("encryption failed: {e}"),
        };
        let encryptor =
            age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| failed(&e))?;
        let mut armored = Vec::new();
        {
            let armor = age::armor::ArmoredWriter::wrap_output(
                &mut armored,
                age::armor::Format::AsciiArmor,
            )
            .map_err(|e| failed(&e))?;
            let mut writer = encryptor.wrap_output(armor).map_err(|e| failed(&e))?;
            writer.write_all(body.as_bytes()).map_err(|e| failed(&e))?;
            writer
                .finish()
                .and_then(age::armor::ArmoredWriter::finish)
                .map_err(|e| failed(&e))?;
        }
        fs::create_dir_all(&self.dir).map_err(|source| SecretsError::Io {
            action: "create",
            path: self.dir.clone(),
            source,
        })?;
        fs::write(&path, armored).map_err(|source| SecretsError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// The position from a parser's message, without the rest: the message may
/// quote the text around the problem, which could be a secret.
fn where_only(message: &str) -> String {
    let number_after = |word: &str| {
        message.find(word).and_then(|at| {
            let digits: String = message[at + word.len()..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<usize>().ok()
        })
    };
    match (number_after("line"), number_after("column")) {
        (Some(l), Some(c)) => {
            format!("it is not the YAML voisin writes (near line {l}, column {c})")
        }
        (Some(l), None) => format!("it is not the YAML voisin writes (near line {l})"),
        _ => "it is not the YAML voisin writes".to_string(),
    }
}

/// Refuses a secrets file others can read: the admin must know, not find out later.
fn check_private(path: &Path) -> Result<(), SecretsError> {
    let meta = fs::metadata(path).map_err(|source| SecretsError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("its mode is {mode:o}, so others can read it; run `chmod 600` on it"),
        });
    }
    Ok(())
}

fn decrypt(path: &Path, identity: &Path) -> Result<String, SecretsError> {
    let fail = |reason: String| SecretsError::Decrypt {
        path: path.to_path_buf(),
        reason,
    };
    let identities = age::IdentityFile::from_file(identity.display().to_string())
        .map_err(|e| {
            fail(format!(
                "cannot read the identity `{}`: {e}",
                identity.display()
            ))
        })?
        .into_identities()
        .map_err(|e| fail(e.to_string()))?;
    let data = fs::read(path).map_err(|e| fail(e.to_string()))?;
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(&data[..]))
        .map_err(|e| fail(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_reported_without_quoting_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path(), None).expect("opens");
        let value = store.get_or_create("db", generate::password);
        store.save().expect("saves");
        let text = fs::read_to_string(store.path()).expect("file");
        fs::write(store.path(), text.replace("values:", "values: [")).expect("damage");
        let err = Store::open(dir.path(), None).expect_err("damaged");
        let message = err.to_string();
        assert!(
            message.contains("is not a secrets file voisin can read"),
            "{message}"
        );
        assert!(!message.contains(value.expose()), "{message}");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(…)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(…))");
    }

    #[test]
    fn generated_secrets_are_stable_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join(".voisin");
        let mut store = Store::open(&state, None).expect("opens");
        let first = store.get_or_create("db", generate::password);
        store.save().expect("saves");
        let mode = fs::metadata(store.path())
            .expect("file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(&state).expect("dir").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let ignore = fs::read_to_string(state.join(".gitignore")).expect("a .gitignore");
        assert!(
            ignore.contains("\n*\n") && ignore.contains("!secrets.yaml.age"),
            "{ignore}"
        );

        let mut again = Store::open(&state, None).expect("reopens");
        assert_eq!(again.get_or_create("db", generate::password), first);
        assert!(!again.changed());
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path(), None).expect("opens");
        store.get_or_create("db", generate::password);
        store.save().expect("saves");
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Store::open(dir.path(), None).expect_err("world-readable");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn the_encrypted_copy_reads_back_with_the_identity() {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = age::x25519::Identity::generate();
        let key_file = dir.path().join("key.txt");
        fs::write(
            &key_file,
            format!(
                "{}\n",
                age::secrecy::ExposeSecret::expose_secret(&identity.to_string())
            ),
        )
        .expect("key");
        let state = dir.path().join(".voisin");
        let mut store = Store::open(&state, None).expect("opens");
        let value = store.get_or_create("db", generate::password);
        store.save().expect("saves");
        let copy = store
            .encrypt(&[identity.to_public().to_string()])
            .expect("encrypts");
        let armored = fs::read_to_string(&copy).expect("copy");
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!armored.contains(value.expose()));

        fs::remove_file(store.path()).expect("remove the plain file");
        assert!(matches!(
            Store::open(&state, None),
            Err(SecretsError::NeedIdentity { .. })
        ));
        let back = Store::open(&state, Some(&key_file)).expect("decrypts");
        assert_eq!(back.get("db"), Some(&value));
    }
}
