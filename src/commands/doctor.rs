//! `voisin doctor`.

use crate::Outcome;
use crate::cli::{DoctorArgs, GlobalArgs};

/// Runs the checks.
pub fn run(_global: &GlobalArgs, _args: &DoctorArgs) -> anyhow::Result<Outcome> {
    Ok(Outcome::Success)
}
