use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::{HealthProbe, ProbeOutcome};

#[derive(Debug)]
enum Behaviour {
    Answer(ProbeOutcome),
    Hang,
    Panic(String),
}

/// A probe that answers what it is told, for tests: an outcome, after an optional delay; or never; or a panic.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::{HealthProbe, HealthStatus, ProbeOutcome};
/// use resee_ops_core::testing::StaticProbe;
/// let p = StaticProbe::new("db", ProbeOutcome::up());
/// assert_eq!(p.check().await.status, HealthStatus::Up);
/// p.set(ProbeOutcome::down("refused"));
/// assert_eq!(p.check().await.status, HealthStatus::Down);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct StaticProbe {
    name: String,
    critical: bool,
    delay: Duration,
    behaviour: Arc<Mutex<Behaviour>>,
    checks: Arc<AtomicUsize>,
}

impl StaticProbe {
    /// A critical probe called `name` that answers `outcome` at once.
    pub fn new(name: impl Into<String>, outcome: ProbeOutcome) -> Self {
        Self {
            name: name.into(),
            critical: true,
            delay: Duration::ZERO,
            behaviour: Arc::new(Mutex::new(Behaviour::Answer(outcome))),
            checks: Arc::default(),
        }
    }

    /// A probe that never answers.
    pub fn hanging(name: impl Into<String>) -> Self {
        let p = Self::new(name, ProbeOutcome::up());
        *p.lock() = Behaviour::Hang;
        p
    }

    /// A probe that panics with `message`.
    pub fn panicking(name: impl Into<String>, message: impl Into<String>) -> Self {
        let p = Self::new(name, ProbeOutcome::up());
        *p.lock() = Behaviour::Panic(message.into());
        p
    }

    /// Sets whether the probe is critical (default: critical).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Makes each check take `delay` (on the Tokio clock).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Changes the answer of later checks (clones share it).
    pub fn set(&self, outcome: ProbeOutcome) {
        *self.lock() = Behaviour::Answer(outcome);
    }

    /// How many checks have started (clones share the count).
    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Behaviour> {
        self.behaviour.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl HealthProbe for StaticProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let answer = match &*self.lock() {
            Behaviour::Answer(o) => Ok(o.clone()),
            Behaviour::Hang => Err(None),
            Behaviour::Panic(m) => Err(Some(m.clone())),
        };
        match answer {
            Ok(o) => o,
            Err(None) => std::future::pending().await,
            Err(Some(message)) => panic!("{message}"),
        }
    }
}
