//! The upgrade journal: while it exists, an upgrade of one service is under
//! way, or was interrupted, and the next `upgrade` or `deploy` must finish
//! it. Like the record and the lock, it lives on the engine (a label of a
//! container created from the tool image and never started), so every
//! admin on every machine sees it. It is written once, after the safety
//! snapshot and before anything of the service changes, and removed once
//! the record holds the new entry (or the rollback is done).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::create::KIND_LABEL;
use crate::engine::{ASSOCIATION_LABEL, Engine, EngineError};

/// What an upgrade under way wrote down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The service (role).
    pub service: String,
    /// `entry VERSION` it ran.
    pub from: String,
    /// `entry VERSION` it goes to.
    pub to: String,
    /// The hash of the new entry as the record will hold it: when the
    /// record has it, the upgrade was done and only the journal is left.
    pub to_hash: String,
    /// The safety snapshot's id, when the service has data.
    pub snapshot: Option<String>,
    /// When it started (RFC 3339).
    pub started: String,
}

const LABEL: &str = "voisin.upgrade";

/// The journal container's name.
pub fn name(slug: &str) -> String {
    format!("{slug}-voisin-upgrade")
}

/// Reads the journal, if an upgrade left one.
pub async fn read(engine: &Engine, slug: &str) -> Result<Option<Journal>, EngineError> {
    Ok(engine
        .container(&name(slug))
        .await?
        .and_then(|c| c.labels.get(LABEL).cloned())
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// Writes the journal (replacing a stale one).
pub async fn write(
    engine: &Engine,
    slug: &str,
    domain: &str,
    journal: &Journal,
) -> Result<(), EngineError> {
    crate::deploy::ensure_tool_image(engine)
        .await
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let json = serde_json::to_string(journal).map_err(|e| EngineError::Failed(e.to_string()))?;
    let body = crate::engine::create::marker(&BTreeMap::from([
        (ASSOCIATION_LABEL.to_string(), domain.to_string()),
        (KIND_LABEL.to_string(), "upgrade".to_string()),
        (LABEL.to_string(), json),
    ]));
    engine.remove(&name(slug)).await?;
    engine.create_container(&name(slug), body, &[]).await?;
    Ok(())
}

/// Removes the journal: the upgrade is settled.
pub async fn remove(engine: &Engine, slug: &str) -> Result<(), EngineError> {
    engine.remove(&name(slug)).await
}

/// The hash the journal keeps of an entry.
pub fn entry_hash(entry: &crate::deploy::record::Deployed) -> String {
    crate::render::state::sha256_hex(&serde_json::to_vec(entry).unwrap_or_default())
}
