//! `voisin secrets encrypt`: an age-encrypted copy of the secrets that the
//! association can commit beside its manifest.

use std::io::Write as _;

use crate::Outcome;
use crate::cli::{GlobalArgs, SecretsCommand};

/// Runs `secrets encrypt`.
pub fn run(global: &GlobalArgs, command: &SecretsCommand) -> anyhow::Result<Outcome> {
    let SecretsCommand::Encrypt { recipients } = command;
    let mut bundle = match super::load_bundle(global)? {
        Ok(b) => b,
        Err(outcome) => return Ok(outcome),
    };
    // Make sure every secret the bundle needs exists before it is copied.
    crate::render::render(&bundle.manifest, &bundle.catalog, &mut bundle.secrets)?;
    bundle.secrets.save()?;
    let path = bundle.secrets.encrypt(recipients).map_err(|e| {
        let hint = matches!(e, crate::secrets::SecretsError::BadRecipient { .. }).then(|| {
            "give the public key printed by `age-keygen`, starting with `age1`".to_string()
        });
        anyhow::Error::new(crate::UsageError::new(e.to_string(), hint))
    })?;
    if !global.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "wrote {} for {} recipient(s)",
            path.display(),
            recipients.len()
        )?;
        writeln!(out, "commit it; never commit `secrets.yaml` itself")?;
    }
    Ok(Outcome::Success)
}
