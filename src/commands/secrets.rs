//! `voisin secrets encrypt`: an age-encrypted copy of the secrets that the
//! association can commit beside its manifest; `voisin secrets keygen`: the
//! identity that reads it back, made with the age crate so that no outside
//! tool is needed.

use std::io::Write as _;

use crate::Outcome;
use crate::cli::{GlobalArgs, SecretsCommand};

/// Runs `secrets keygen` or `secrets encrypt`.
pub fn run(global: &GlobalArgs, command: &SecretsCommand) -> anyhow::Result<Outcome> {
    let recipients = match command {
        SecretsCommand::Keygen { out } => return keygen(global, out),
        SecretsCommand::Encrypt { recipients } => recipients,
        SecretsCommand::Set { name } => return super::watch::set_secret(global, name),
    };
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    // Make sure every secret the bundle needs exists before it is copied.
    crate::render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    bundle.secrets.save()?;
    let path = bundle.secrets.encrypt(recipients).map_err(|e| {
        let hint = matches!(e, crate::secrets::SecretsError::BadRecipient { .. }).then(|| {
            "give the public key `voisin secrets keygen` printed, starting with `age1`".to_string()
        });
        anyhow::Error::new(crate::UsageError::new(e.to_string(), hint))
    })?;
    if !global.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "wrote {} for {}",
            path.display(),
            match recipients.len() {
                1 => "1 recipient".to_string(),
                n => format!("{n} recipients"),
            }
        )?;
        writeln!(out, "commit it; never commit `secrets.yaml` itself")?;
    }
    Ok(Outcome::Success)
}

/// Writes a new age identity to `out` (mode 0600, never over an existing
/// file) and prints its public key, which is not secret.
fn keygen(global: &GlobalArgs, out: &std::path::Path) -> anyhow::Result<Outcome> {
    use age::secrecy::ExposeSecret as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            let hint = (e.kind() == std::io::ErrorKind::AlreadyExists).then(|| {
                "an identity may be the only key to the association's secrets: keep it, or name another file".to_string()
            });
            crate::UsageError::new(format!("cannot create `{}`: {e}", out.display()), hint)
        })?;
    // The layout `age-keygen` writes, so that the age tools read it too.
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    let mut stdout = std::io::stdout().lock();
    if global.quiet {
        writeln!(stdout, "{public}")?;
    } else {
        writeln!(stdout, "wrote the age identity {}", out.display())?;
        writeln!(stdout, "public key: {public}")?;
        writeln!(
            stdout,
            "next: `voisin secrets encrypt -r {public}`; keep {} private and out of the repository",
            out.display()
        )?;
    }
    Ok(Outcome::Success)
}
