//! The `voisin` executable: parse the command line, run the commands that
//! read and write files, hand the others to `voisin-full` (`voisin::full`).

fn main() -> std::process::ExitCode {
    voisin::run()
}
