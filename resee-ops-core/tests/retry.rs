//! The retrying wrapper, on paused Tokio time.

use std::time::Duration;

use resee_ops_core::testing::RecordingNotifier;
use resee_ops_core::{Alert, Error, ErrorKind, Notifier, NotifierExt, NotifyOutcome, RetryPolicy, Severity};
use tokio::time::Instant;

fn alert() -> Alert {
    Alert::new("x", Severity::Error, "Backup failed")
}

fn temporary() -> NotifyOutcome {
    NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "502 from receiver"))
}

#[tokio::test(start_paused = true)]
async fn honours_retry_after() {
    let inbox = RecordingNotifier::new();
    inbox.push_outcome(NotifyOutcome::RateLimited { retry_after: Some(Duration::from_secs(30)) });
    let n = inbox.clone().retrying(RetryPolicy::default().with_initial_backoff(Duration::from_millis(100)));
    let started = Instant::now();
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::Delivered));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(30), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(31), "waited {waited:?}, more than asked plus backoff");
    assert_eq!(inbox.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn gives_up_at_the_deadline() {
    let inbox = RecordingNotifier::new();
    for _ in 0..1000 {
        inbox.push_outcome(temporary());
    }
    let policy = RetryPolicy::default()
        .with_max_attempts(1000)
        .with_initial_backoff(Duration::from_secs(1))
        .with_max_backoff(Duration::from_secs(8))
        .with_deadline(Duration::from_secs(60));
    let n = inbox.clone().retrying(policy);
    let started = Instant::now();
    let outcome = n.notify(&alert()).await;
    let spent = started.elapsed();
    assert!(
        matches!(outcome, NotifyOutcome::TemporaryFailure(ref e) if e.message() == "502 from receiver"),
        "{outcome}"
    );
    assert!(spent <= Duration::from_secs(60), "ran past its deadline: {spent:?}");
    assert!(inbox.attempts() > 5, "only {} attempts in 60 s", inbox.attempts());
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
    let inbox = RecordingNotifier::new();
    inbox.push_outcome(NotifyOutcome::RateLimited { retry_after: Some(Duration::from_secs(90)) });
    let n = inbox.clone().retrying(RetryPolicy::default().with_deadline(Duration::from_secs(60)));
    let started = Instant::now();
    let outcome = n.notify(&alert()).await;
    assert!(matches!(outcome, NotifyOutcome::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(90)));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(inbox.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_above_the_cap_is_returned() {
    let inbox = RecordingNotifier::new();
    inbox.push_outcome(NotifyOutcome::RateLimited { retry_after: Some(Duration::from_secs(3600)) });
    let n = inbox.clone().retrying(RetryPolicy::default().with_max_retry_after(Duration::from_secs(120)));
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::RateLimited { .. }));
    assert_eq!(inbox.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_not_retried() {
    let inbox = RecordingNotifier::new();
    inbox.push_outcome(NotifyOutcome::PermanentFailure(Error::new(ErrorKind::InvalidInput, "invalid_payload")));
    let n = inbox.clone().retrying(RetryPolicy::default());
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::PermanentFailure(_)));
    assert_eq!(inbox.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn stops_after_max_attempts() {
    let inbox = RecordingNotifier::new();
    for _ in 0..10 {
        inbox.push_outcome(temporary());
    }
    let n = inbox.clone().retrying(RetryPolicy::default().with_max_attempts(3));
    let outcome = n.notify(&alert()).await;
    assert!(
        matches!(outcome, NotifyOutcome::TemporaryFailure(ref e) if e.message() == "502 from receiver"),
        "{outcome}"
    );
    assert_eq!(inbox.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn giving_up_keeps_the_original_error_and_its_temporary_flag() {
    // An I/O error is permanent by default; this receiver knows it is worth retrying and says so.
    let inbox = RecordingNotifier::new();
    let original = Error::new(ErrorKind::Io, "socket buffer full")
        .with_temporary(true)
        .with_source(std::io::Error::other("EAGAIN"));
    for _ in 0..3 {
        inbox.push_outcome(NotifyOutcome::TemporaryFailure(original.clone()));
    }
    let outcome = inbox.clone().retrying(RetryPolicy::default().with_max_attempts(3)).notify(&alert()).await;
    let NotifyOutcome::TemporaryFailure(err) = outcome else { panic!("{outcome}") };
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.is_temporary(), "the receiver's temporary flag survives giving up");
    assert_eq!(err.message(), "socket buffer full");
    assert_eq!(std::error::Error::source(&err).unwrap().to_string(), "EAGAIN", "the cause is kept, once");
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_bounded_by_the_time_left_to_the_deadline() {
    // A receiver that answers only after two minutes, under a one-minute deadline.
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(120));
    let n = inbox.clone().retrying(RetryPolicy::default().with_deadline(Duration::from_secs(60)));
    let started = Instant::now();
    let outcome = n.notify(&alert()).await;
    assert_eq!(started.elapsed(), Duration::from_secs(60), "the deadline holds whatever the inner call does");
    assert!(matches!(outcome, NotifyOutcome::TemporaryFailure(ref e) if e.kind() == ErrorKind::Timeout), "{outcome}");
    assert_eq!(inbox.attempts(), 1);

    // `Duration::MAX` means no deadline: nothing overflows, the slow answer is awaited.
    let n = inbox.clone().retrying(RetryPolicy::default().with_deadline(Duration::MAX));
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::Delivered));
}

#[test]
fn backoff_is_jittered_and_bounded() {
    let p =
        RetryPolicy::default().with_initial_backoff(Duration::from_secs(1)).with_max_backoff(Duration::from_secs(10));
    let samples: Vec<_> = (0..200).map(|_| p.backoff(10)).collect();
    assert!(samples.iter().all(|d| *d <= Duration::from_secs(10)));
    assert!(samples.iter().any(|d| *d != samples[0]), "jitter spreads retries");
    assert!((0..200).map(|_| p.backoff(0)).all(|d| d <= Duration::from_secs(1)));
}
