//! The deploy record, kept on the engine itself so that every admin sees
//! the same: which after-start steps ran, in which container. It is a label
//! of a container created from the tool image and never started: reading
//! it is one inspection (no file system to mount), so a deploy with nothing
//! to do stays fast and changes nothing. Labels cannot change, so a new
//! record replaces the old: created beside it, then renamed into place.
//!
//! It also keeps, per service, the catalog entry (and its templates) that
//! was deployed: `upgrade` compares it with the catalog's, and renders the
//! old version again from it to roll back, with no need for the old
//! catalog. Entries hold no secret (those stay in `.voisin/secrets.yaml`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::create::KIND_LABEL;
use crate::engine::{ASSOCIATION_LABEL, Engine, EngineError};

/// What the record holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// After-start steps done: step key → id of the container it ran in.
    #[serde(default)]
    pub steps: BTreeMap<String, String>,
    /// What each service (by role) runs: written by every deploy and upgrade.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Deployed>,
}

/// The catalog entry a service was deployed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    /// The entry, as the catalog had it.
    pub entry: crate::catalog::Entry,
    /// Its templates: path under `templates/` (`ENTRY/…`) → text.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

const LABEL: &str = "voisin.record";

/// The record container's name.
pub fn name(slug: &str) -> String {
    format!("{slug}-voisin-record")
}

fn next(slug: &str) -> String {
    format!("{slug}-voisin-record-next")
}

/// Reads the record; empty when there is none yet.
pub async fn read(engine: &Engine, slug: &str) -> Result<Record, EngineError> {
    // A run killed while writing may have left only the new one.
    let found = match engine.container(&name(slug)).await? {
        Some(c) => Some(c),
        None => engine.container(&next(slug)).await?,
    };
    Ok(found
        .and_then(|c| c.labels.get(LABEL).cloned())
        // A damaged record only makes steps run again: their guards
        // (`unless`) keep that harmless.
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// Writes the record.
pub async fn write(
    engine: &Engine,
    slug: &str,
    domain: &str,
    record: &Record,
) -> Result<(), EngineError> {
    super::ensure_tool_image(engine)
        .await
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let json = serde_json::to_string(record).map_err(|e| EngineError::Failed(e.to_string()))?;
    let body = crate::engine::create::marker(&BTreeMap::from([
        (ASSOCIATION_LABEL.to_string(), domain.to_string()),
        (KIND_LABEL.to_string(), "record".to_string()),
        (LABEL.to_string(), json),
    ]));
    let (current, next) = (name(slug), next(slug));
    engine.remove(&next).await?;
    engine.create_container(&next, body, &[]).await?;
    engine.remove(&current).await?;
    engine.rename(&next, &current).await
}
