//! The built-in probes.

pub(crate) mod celery;
pub(crate) mod disk;
pub(crate) mod heartbeat;
pub(crate) mod postgres;
pub(crate) mod queue;
pub(crate) mod redis;
