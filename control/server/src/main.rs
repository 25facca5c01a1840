//! `sluice`: the control process and operator CLI.

fn main() {
    println!("sluice control: not yet implemented");
}
