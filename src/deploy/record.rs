//! The deploy record, kept on the engine itself so that every admin sees
//! the same: which after-start steps ran, in which container. It is a file
//! in a container created from the tool image and never started; reading it
//! is a download, so a deploy with nothing to do changes nothing.

use std::collections::BTreeMap;
use std::io::Read as _;

use serde::{Deserialize, Serialize};

use crate::engine::create::KIND_LABEL;
use crate::engine::{ASSOCIATION_LABEL, Engine, EngineError};

/// What the record holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// After-start steps done: step key → id of the container it ran in.
    #[serde(default)]
    pub steps: BTreeMap<String, String>,
}

const FILE: &str = "record.json";

/// The record container's name.
pub fn name(slug: &str) -> String {
    format!("{slug}-voisin-record")
}

/// Reads the record; empty when there is none yet.
pub async fn read(engine: &Engine, slug: &str) -> Result<Record, EngineError> {
    let Some(tar) = engine.download(&name(slug), &format!("/{FILE}")).await? else {
        return Ok(Record::default());
    };
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| EngineError::Failed(format!("the deploy record is unreadable: {e}")))?;
    // The archive holds the one file.
    if let Some(entry) = entries.into_iter().next() {
        let mut entry = entry
            .map_err(|e| EngineError::Failed(format!("the deploy record is unreadable: {e}")))?;
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| EngineError::Failed(format!("the deploy record is unreadable: {e}")))?;
        // A damaged record only makes steps run again: their guards
        // (`unless`) keep that harmless.
        return Ok(serde_json::from_str(&text).unwrap_or_default());
    }
    Ok(Record::default())
}

/// Writes the record, creating its container on first use.
pub async fn write(
    engine: &Engine,
    slug: &str,
    domain: &str,
    record: &Record,
) -> Result<(), EngineError> {
    let container = name(slug);
    if engine.container(&container).await?.is_none() {
        super::ensure_tool_image(engine)
            .await
            .map_err(|e| EngineError::Failed(e.to_string()))?;
        let body = bollard::models::ContainerCreateBody {
            image: Some(crate::engine::build::TOOL_IMAGE.to_string()),
            cmd: Some(vec!["/voisin-tool".into()]),
            labels: Some(
                BTreeMap::from([
                    (ASSOCIATION_LABEL.to_string(), domain.to_string()),
                    (KIND_LABEL.to_string(), "record".to_string()),
                ])
                .into_iter()
                .collect(),
            ),
            network_disabled: Some(true),
            ..Default::default()
        };
        engine.create_container(&container, body, &[]).await?;
    }
    let json = serde_json::to_vec_pretty(record).map_err(|e| EngineError::Failed(e.to_string()))?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    builder
        .append_data(&mut header, FILE, json.as_slice())
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let tar = builder
        .into_inner()
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    engine.upload(&container, tar).await
}
