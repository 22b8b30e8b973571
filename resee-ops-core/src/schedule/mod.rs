//! Schedules and the scheduler: cron in an IANA time zone, the DST rules, missed runs, no overlap,
//! retries inside the slot, jitter, a preview of the next fire times, and a cancellable shutdown.
//!
//! - [`Schedule`]: the expression and zone (checked when built), [`Schedule::upcoming`] for previews.
//! - [`Job`]: what runs (one attempt per call); [`JobPolicy`]: missed runs and retries.
//! - [`Scheduler`] → [`SchedulerHandle`]: runs jobs in the background, reports [`JobStatus`], shuts down
//!   with a grace period ([`DEFAULT_SHUTDOWN_GRACE`]).
//! - [`run_in_slot`]: one slot with its retries, for one-shot commands that run a job outside a scheduler.
//!
//! Time: fire times are computed from a [`Clock`](crate::Clock) (wall time, so that 03:00 means 03:00),
//! waits use `tokio::time`. Tests drive both with paused Tokio time and a clock that follows it.

mod cron;
mod scheduler;

pub use cron::Schedule;
pub use scheduler::{
    CANCEL_CLEANUP, DEFAULT_SHUTDOWN_GRACE, Job, JobContext, JobPolicy, JobStatus, MissedRunPolicy, OVERLAP_ALERT_NAME,
    RunControl, RunOutcome, RunRecord, Scheduler, SchedulerHandle, ShutdownReport, StatusView, run_in_slot,
};
