//! `sluice-perf`: load generator and benchmark runner.

fn main() {
    println!("sluice-perf: not yet implemented");
}
