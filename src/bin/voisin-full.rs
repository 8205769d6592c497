//! The `voisin-full` executable: every voisin command (`voisin` hands it
//! those it does not hold; see `voisin::full`).

use std::collections::BTreeMap;

use rustic_core::{RepositoryBackends, RusticResult};

fn main() -> std::process::ExitCode {
    voisin::backup::repo::provide_storage(storage);
    voisin::run_full()
}

/// A backup repository's storage, through `rustic_backend` (named here
/// only: `voisin::backup::repo::Storage` says why).
fn storage(
    repository: &str,
    options: &BTreeMap<String, String>,
) -> RusticResult<RepositoryBackends> {
    rustic_backend::BackendOptions::default()
        .repository(repository)
        .options(options.clone())
        .to_backends()
}
