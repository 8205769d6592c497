//! `voisin render`: write every rendered configuration file, the desired
//! state, and on request an equivalent compose file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::{GlobalArgs, RenderArgs};
use crate::render::{self, compose};
use crate::{Outcome, UsageError};

/// A file in the output folder that says voisin wrote it, so that a later
/// render may replace what is there.
const MARKER: &str = ".voisin-render";

/// Renders and writes.
pub fn run(global: &GlobalArgs, args: &RenderArgs) -> anyhow::Result<Outcome> {
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    let state = render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    bundle.secrets.save()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::secrets::state_dir(&bundle.path).join("rendered"));
    prepare(&out)?;

    // Everything this render writes, by path under `out`. Files already
    // there with the same bytes and mode are left alone: a render that
    // changes nothing writes nothing, and is fast on a busy disk.
    let mut wanted = Wanted::new();
    for container in &state.containers {
        for file in &container.files {
            let path = out.join(compose::file_path(&container.name, &file.path));
            wanted.insert(
                path,
                (
                    file.content.expose().as_bytes().to_vec(),
                    file.content.is_secret(),
                ),
            );
        }
    }
    let written = wanted.len();
    let json = serde_json::to_string_pretty(&state)? + "\n";
    wanted.insert(out.join("desired-state.json"), (json.into_bytes(), false));
    if args.compose {
        let text = serde_saphyr::to_string(&compose::compose(&state))
            .context("writing the compose file")?;
        let header =
            "# Written by `voisin render --compose`: the bundle as a docker-compose file.\n";
        wanted.insert(
            out.join("compose.yaml"),
            (format!("{header}{text}").into_bytes(), false),
        );
        wanted.insert(
            out.join(compose::INSTALL_SCRIPT),
            (compose::install_script(&state).into_bytes(), false),
        );
    }
    let removed = remove_unwanted(&out, &wanted)?;
    let mut changed = 0;
    for (path, (bytes, secret)) in &wanted {
        changed += usize::from(write(path, bytes, *secret)?);
    }
    if !global.quiet {
        let mut stdout = std::io::stdout().lock();
        if changed == 0 && removed == 0 {
            // Say so: a render that changed nothing is worth knowing apart.
            writeln!(
                stdout,
                "nothing changed: {} is already what the manifest renders to",
                out.display()
            )?;
            return Ok(Outcome::Success);
        }
        writeln!(
            stdout,
            "rendered {} containers, {} networks, {} volumes: {written} files, desired-state.json{} in {}",
            state.containers.len(),
            state.networks.len(),
            state.volumes.len(),
            if args.compose { ", compose.yaml" } else { "" },
            out.display()
        )?;
    }
    Ok(Outcome::Success)
}

/// Makes `out` ready: created (0700) when missing; when it exists, it must
/// be empty or hold a previous render, whose files are removed so that
/// nothing stale survives. Anything else is refused: never delete what
/// voisin did not write.
fn prepare(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let has_entries = fs::read_dir(out)
            .with_context(|| format!("reading `{}`", out.display()))?
            .next()
            .is_some();
        if has_entries && !out.join(MARKER).exists() {
            return Err(UsageError::new(
                format!(
                    "`{}` is not empty and was not written by `voisin render`",
                    out.display()
                ),
                Some("give `--out` a new or empty folder".into()),
            )
            .into());
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating `{}`", out.display()))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o700))?;
    let marker = out.join(MARKER);
    if !marker.exists() {
        fs::write(
            marker,
            "written by `voisin render`; its files are replaced by the next render\n",
        )?;
    }
    Ok(())
}

/// What this render writes: path → (bytes, holds secrets).
type Wanted = BTreeMap<PathBuf, (Vec<u8>, bool)>;

/// Removes what a previous render wrote that this one does not: files under
/// `files/` (and folders left empty), and `desired-state.json` or
/// `compose.yaml` when not wanted.
fn remove_unwanted(out: &Path, wanted: &Wanted) -> anyhow::Result<usize> {
    fn walk(dir: &Path, wanted: &Wanted, removed: &mut usize) -> anyhow::Result<bool> {
        let mut empty = true;
        for entry in fs::read_dir(dir).with_context(|| format!("reading `{}`", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                if walk(&path, wanted, removed)? {
                    fs::remove_dir(&path)
                        .with_context(|| format!("removing `{}`", path.display()))?;
                } else {
                    empty = false;
                }
            } else if wanted.contains_key(&path) {
                empty = false;
            } else {
                fs::remove_file(&path).with_context(|| format!("removing `{}`", path.display()))?;
                *removed += 1;
            }
        }
        Ok(empty)
    }
    let mut removed = 0;
    let files = out.join("files");
    if files.is_dir() {
        walk(&files, wanted, &mut removed)?;
    }
    for top in ["desired-state.json", "compose.yaml"] {
        let path = out.join(top);
        if path.exists() && !wanted.contains_key(&path) {
            fs::remove_file(&path).with_context(|| format!("removing `{}`", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes a file unless it already holds these bytes with this mode; true
/// when it wrote.
fn write(path: &Path, bytes: &[u8], secret: bool) -> anyhow::Result<bool> {
    let mode = if secret { 0o600 } else { 0o644 };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o777 == mode
        && meta.len() == bytes.len() as u64
        && fs::read(path).is_ok_and(|old| old == bytes)
    {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating `{}`", parent.display()))?;
    }
    // An existing file keeps its mode when truncated: remove it so the new
    // one is created with the right mode.
    if path.exists() {
        fs::remove_file(path).with_context(|| format!("replacing `{}`", path.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing `{}`", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing `{}`", path.display()))?;
    Ok(true)
}
