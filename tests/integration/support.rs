//! A small builder around the `voisin` binary, so that tests read as what a
//! person types and what they see.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The repository root, where `examples/`, `schema/` and `tests/` live.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One run of `voisin`.
pub struct Voisin {
    cmd: Command,
}

/// What a run printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Voisin {
    /// `voisin ARGS…`, run from the repository root.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::cargo_bin("voisin").expect("the voisin binary is built");
        // English, whatever the machine's language: expectations are
        // written in English (tests of French set `LANG` or `--lang`).
        cmd.current_dir(root())
            .env("LANG", "en_US.UTF-8")
            .env_remove("VOISIN_FILE")
            .env_remove("VOISIN_CATALOG")
            .args(args);
        Self { cmd }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Gives the run this standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.cmd.write_stdin(text.to_string());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Runs in `dir` instead of the repository root.
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs and collects the output.
    pub fn run(mut self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.cmd.output().expect("voisin runs");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Run {
    /// Parses standard output as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// `args`, then what every test bundle's command carries: plain progress,
/// and the manifest `voisin.yaml` and catalog `catalog/` of `dir`.
pub fn bundle_args(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    all.extend([
        "--progress".into(),
        "never".into(),
        "-f".into(),
        dir.join("voisin.yaml").display().to_string(),
        "--catalog".into(),
        dir.join("catalog").display().to_string(),
    ]);
    all
}
