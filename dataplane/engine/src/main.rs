//! `sluice-dataplane`: the media process.

fn main() {
    println!("sluice-dataplane: not yet implemented");
}
