//! The unit tests of the `resee_ops` example's configuration module (examples are built, not tested, by
//! `cargo test`; this brings that module's tests into the suite).

#[allow(dead_code)]
#[path = "../examples/resee_ops/config.rs"]
mod config;
