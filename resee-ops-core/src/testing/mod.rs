//! Test doubles, conformance suites and throwaway services (feature `testing`).
//!
//! - [`RecordingNotifier`], [`StaticProbe`], [`InMemoryBackupTarget`], [`ManualClock`], [`TokioClock`]: doubles for testing
//!   the wiring of a host application.
//! - [`conformance`]: the checks every [`Notifier`](crate::Notifier) and
//!   [`BackupTarget`](crate::BackupTarget) implementation runs in its own tests.
//! - [`services`]: a PostgreSQL and a Redis for integration tests: the configured ones, the local default
//!   ones, or private throwaway instances started from the installed server binaries.

mod clock;
pub mod conformance;
mod memory_target;
mod probe;
mod recording;
pub mod services;

pub use clock::{ManualClock, TokioClock};
pub use memory_target::InMemoryBackupTarget;
pub use probe::StaticProbe;
pub use recording::RecordingNotifier;
