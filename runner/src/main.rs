//! `imgrun`: boot a guest and check live migration.
fn main() {}
