//! Core's [prelude](resee_ops_core::prelude) plus this crate's monitor, probes and rules:
//! `use resee_ops_monitor::prelude::*;` (with the `axum` feature, also the endpoint and the `axum` crate
//! it is built with).

pub use resee_ops_core::prelude::*;

pub use crate::{
    AlertMode, AlertText, CeleryTransport, CeleryWorkersProbe, DiskUsageProbe, EventCounter, FnSource, HealthMonitor,
    MonitorConfig, MonitorHandle, PostgresProbe, PostgresProbeConfig, QueueLength, RedisConfig, RedisProbe,
    RequestStats, Rule, RuleEvaluator, WorkerHeartbeatProbe,
};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use crate::http::{EndpointConfig, axum};
