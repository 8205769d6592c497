//! Members come from the manifest, through the members file the catalog
//! entry renders. At every start the board syncs its table with the file:
//! members missing from it are disabled but keep their history, so a
//! mistake in the manifest never deletes loans.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, params};
use serde::Deserialize;

/// The members file: `{"members": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersFile {
    /// Every member of the association.
    pub members: Vec<MemberEntry>,
}

/// One member in the members file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// The member's id from the manifest, like `alice`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where the board's mails go; also a sign-in name.
    pub email: String,
    /// Whether the member is one of the association's admins.
    #[serde(default)]
    pub admin: bool,
    /// The initial password as an argon2 PHC string; absent means sign-in
    /// by one-time mail link only.
    #[serde(default)]
    pub password_hash: Option<String>,
}

impl MembersFile {
    /// Reads a members file from its text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: Self = serde_json::from_str(text).context("the members file is not valid")?;
        for m in &file.members {
            crate::names::check_member_id(&m.id)
                .map_err(|e| anyhow::anyhow!("member `{}`: {e:?}", m.id))?;
        }
        Ok(file)
    }

    /// Reads the members file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the members file `{}`", path.display()))?;
        Self::parse(&text).with_context(|| format!("in `{}`", path.display()))
    }
}

/// What a sync changed, for the start-up log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Members seen for the first time.
    pub added: usize,
    /// Members no longer in the file, now disabled.
    pub disabled: usize,
}

/// Brings the members table in line with the file, in the caller's
/// transaction.
pub fn sync(tx: &Connection, file: &MembersFile, now: i64) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport::default();
    for m in &file.members {
        let known: Option<Option<String>> = tx
            .query_row(
                "SELECT initial_hash FROM members WHERE id = ?1",
                [&m.id],
                |r| r.get(0),
            )
            .ok();
        match known {
            None => {
                tx.execute(
                    "INSERT INTO members (id, name, email, admin, initial_hash, password_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                    params![m.id, m.name, m.email, m.admin, m.password_hash, now],
                )?;
                report.added += 1;
            }
            Some(initial) => {
                tx.execute(
                    "UPDATE members SET name = ?2, email = ?3, admin = ?4, in_file = 1 WHERE id = ?1",
                    params![m.id, m.name, m.email, m.admin],
                )?;
                // A new initial password in the file is an admin's reset; the
                // same one again must not undo a password the member chose.
                if m.password_hash.is_some() && initial != m.password_hash {
                    tx.execute(
                        "UPDATE members SET initial_hash = ?2, password_hash = ?2 WHERE id = ?1",
                        params![m.id, m.password_hash],
                    )?;
                }
            }
        }
    }
    let ids: Vec<&str> = file.members.iter().map(|m| m.id.as_str()).collect();
    let mut gone = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT id FROM members WHERE in_file = 1")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for id in rows {
            let id = id?;
            if !ids.contains(&id.as_str()) {
                gone.push(id);
            }
        }
    }
    for id in &gone {
        tx.execute("UPDATE members SET in_file = 0 WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM sessions WHERE member_id = ?1", [id])?;
    }
    report.disabled = gone.len();
    Ok(report)
}

/// Hashes a password into the argon2id PHC string the members file's
/// `password_hash` holds (`$argon2id$v=19$m=7168,t=5,p=1$…`), with a salt
/// from the operating system's random generator. `voisin members
/// credentials` uses it to hand members their initial password.
///
/// The parameters are voisin's one argon2id setting
/// ([`crate::secrets::generate::argon2`]).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Ok(
        crate::secrets::generate::argon2(&crate::secrets::Secret::new(password))
            .expose()
            .to_string(),
    )
}
