//! The `imgbuild` command line.
fn main() {}
