//! Property tests (proptest): no configuration or timeout makes logging panic. Every case writes into its
//! own temporary directory, whatever directory the configuration names.

use proptest::prelude::*;
use resee_ops_logging::{ChannelConfig, Logging, LoggingConfig};

#[path = "../../resee-ops-core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::{config_value, duration, parse};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary JSON and TOML into `LoggingConfig` and `ChannelConfig`: an error or a value, never a
    /// panic; a configuration that parses builds, logs a line and shuts down, or says why not.
    #[test]
    fn logging_configs_never_panic(
        config in config_value(&serde_json::to_value(LoggingConfig::default().with_channel(ChannelConfig::new("audit", "audit.log"))).unwrap()),
        timeout in duration(),
    ) {
        let _ = parse::<ChannelConfig>(&config);
        if let Some(config) = parse::<LoggingConfig>(&config) {
            let dir = tempfile::tempdir().unwrap();
            let config = config.with_dir(dir.path()).with_console(false);
            let _ = config.validate();
            if let Ok((dispatch, guard)) = Logging::new(config).build() {
                tracing::dispatcher::with_default(&dispatch, || tracing::error!(target: "security", password = "pw", "a line"));
                let _ = guard.flush(timeout);
                let _ = guard.shutdown(timeout);
            }
        }
    }

    /// `flush` and `shutdown` take any timeout, `Duration::MAX` ("no limit") included.
    #[test]
    fn logging_timeouts_never_panic(a in duration(), b in duration()) {
        let dir = tempfile::tempdir().unwrap();
        let (dispatch, guard) = Logging::new(LoggingConfig::new(dir.path())).build().unwrap();
        tracing::dispatcher::with_default(&dispatch, || tracing::info!("a line"));
        let _ = guard.flush(a);
        let _ = guard.shutdown(b);
    }
}
