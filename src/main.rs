//! The `voisin` executable: parse the command line, run, exit with the status
//! that `voisin::run` decided.

fn main() -> std::process::ExitCode {
    voisin::run()
}
