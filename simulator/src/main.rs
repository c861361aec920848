//! `vigil-sim`: simulated devices (issue: simulator). Not built yet.

fn main() {
    eprintln!("vigil-sim is not built yet; see the simulator issue");
    std::process::exit(2);
}
