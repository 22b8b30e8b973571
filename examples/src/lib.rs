#![doc = include_str!("../../README.md")]

// The examples' README and the adoption guide are compiled as doctests too, so a snippet a host copies
// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod examples_readme {}

#[cfg(doctest)]
#[doc = include_str!("../../docs/adding-resee-ops.md")]
mod adding_resee_ops {}

/// Sets up logging for an example: `RUST_LOG` if set, else `default_filter`; written to stderr, with colour
/// only when stderr is a terminal, so logs collected by journald, Docker or a file carry no ANSI escapes.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
