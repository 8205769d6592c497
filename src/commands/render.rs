//! `voisin render`: write every rendered configuration file, the desired
//! state, and on request an equivalent compose file.

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

    let mut written = 0usize;
    for container in &state.containers {
        for file in &container.files {
            let path = out.join(compose::file_path(&container.name, &file.path));
            write(
                &path,
                file.content.expose().as_bytes(),
                file.content.is_secret(),
            )?;
            written += 1;
        }
    }
    let json = serde_json::to_string_pretty(&state)? + "\n";
    write(&out.join("desired-state.json"), json.as_bytes(), false)?;
    if args.compose {
        let text = serde_saphyr::to_string(&compose::compose(&state))
            .context("writing the compose file")?;
        let header =
            "# Written by `voisin render --compose`: the bundle as a docker-compose file.\n";
        write(
            &out.join("compose.yaml"),
            format!("{header}{text}").as_bytes(),
            false,
        )?;
    }
    if !global.quiet {
        let mut stdout = std::io::stdout().lock();
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
        for stale in ["files", "desired-state.json", "compose.yaml"] {
            let path = out.join(stale);
            if path.is_dir() {
                fs::remove_dir_all(&path)
                    .with_context(|| format!("removing `{}`", path.display()))?;
            } else if path.exists() {
                fs::remove_file(&path).with_context(|| format!("removing `{}`", path.display()))?;
            }
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating `{}`", out.display()))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o700))?;
    fs::write(
        out.join(MARKER),
        "written by `voisin render`; its files are replaced by the next render\n",
    )?;
    Ok(())
}

fn write(path: &PathBuf, bytes: &[u8], secret: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating `{}`", parent.display()))?;
    }
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing `{}`", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}
