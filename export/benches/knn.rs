//! kNN search benchmark (placeholder, filled in below).
fn main() {}
