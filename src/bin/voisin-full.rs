//! The `voisin-full` executable: every voisin command (`voisin` hands it
//! those it does not hold; see `voisin::full`).

fn main() -> std::process::ExitCode {
    voisin::run_full()
}
