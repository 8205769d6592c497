//! `voisin-full`, the second executable: every command, where `voisin`
//! holds only those that read and write files.
//!
//! The engine client, the backups (rustic and its storage services), the
//! alert senders and the board made `voisin` a 63 MB position-independent
//! executable whose start (the loader relocating it, the pages it touches)
//! was most of a `check` (issue 11, `docs/benchmarks.md`). `voisin` now
//! calls none of them: for any other command it replaces itself with
//! `voisin-full`, found beside it, with the same arguments. Being the same
//! process, standard input and output, signals (Ctrl-C) and the exit status
//! stay the user's as they were.
//!
//! Two more things weighed on `voisin`'s start; both are settled where the
//! executables are made: `rustic_backend` (whose `OpenDAL`
//! registers every storage service from a process constructor) is named
//! only by `voisin-full`, which hands the library its storage
//! (`backup::repo::Storage`); and `voisin` is linked at a fixed address, so
//! that the loader has nothing to relocate (`build.rs` says why that is
//! safe for it and not for `voisin-full`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use anyhow::Context as _;

/// The file name of the second executable, installed beside `voisin`.
pub const NAME: &str = "voisin-full";

/// Replaces this process with `voisin-full`, run with `args` (`args[0]`
/// included, so that its messages name the program as this one's would).
/// Returns only when it cannot be run, with why.
pub fn exec(args: &[OsString]) -> anyhow::Error {
    let path = match path() {
        Ok(path) => path,
        Err(e) => return e,
    };
    let (first, rest) = args.split_first().map_or_else(
        || (OsString::from("voisin"), &[][..]),
        |(first, rest)| (first.clone(), rest),
    );
    let err = std::process::Command::new(&path)
        .arg0(first)
        .args(rest)
        .exec();
    if err.kind() == std::io::ErrorKind::NotFound {
        missing(&path)
    } else {
        anyhow::Error::new(err).context(format!("cannot run `{}`", path.display()))
    }
}

/// Where `voisin-full` is: beside the running executable.
fn path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where the voisin executable is")?;
    Ok(exe.with_file_name(NAME))
}

/// The error for a `voisin-full` that is not where it should be.
fn missing(path: &std::path::Path) -> anyhow::Error {
    crate::UsageError::new(
        format!(
            "`{}` is missing: this command runs in voisin's second executable, installed beside `voisin`",
            path.display()
        ),
        Some(
            "install both of voisin's executables: `cargo install --path .` in voisin's source"
                .into(),
        ),
    )
    .into()
}
