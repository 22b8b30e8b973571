use async_trait::async_trait;

use super::{Notifier, NotifyOutcome};
use crate::{Alert, Severity};

/// Writes alerts as `tracing` events: the default notifier when nothing else is configured.
///
/// Errors become `ERROR` events, warnings `WARN`, info and success `INFO`, all under the target
/// `resee_ops::alert` with the fingerprint, name, status and fields attached.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::{Alert, LogNotifier, Notifier, NotifyOutcome, Severity};
/// let outcome = LogNotifier::new().notify(&Alert::new("demo", Severity::Warning, "Disk usage 85 %")).await;
/// assert!(matches!(outcome, NotifyOutcome::Delivered));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LogNotifier {
    _private: (),
}

impl LogNotifier {
    /// A new log notifier.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        let fields = alert.fields.iter().map(|f| format!("{}={}", f.name, f.value)).collect::<Vec<_>>().join(", ");
        let fingerprint = alert.fingerprint().to_string();
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "resee_ops::alert",
                    $level,
                    fingerprint = %fingerprint,
                    name = %alert.name,
                    status = ?alert.status,
                    severity = %alert.severity,
                    source = %alert.source,
                    text = %alert.text,
                    fields = %fields,
                    "{}",
                    alert.title
                )
            };
        }
        match alert.severity {
            Severity::Error => emit!(tracing::Level::ERROR),
            Severity::Warning => emit!(tracing::Level::WARN),
            Severity::Info | Severity::Success => emit!(tracing::Level::INFO),
        }
        NotifyOutcome::Delivered
    }
}
