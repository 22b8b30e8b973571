//! The `tracing-subscriber` layer: routes each event to the channels that want it, formats it once per
//! format on the caller's thread, and hands the line to each sink's queue.

use std::cell::RefCell;

use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ChannelConfig, LogFormat};
use crate::format::{Fields, Head, line, timestamp};
use crate::sink::{Line, SinkSender};

/// Which events one sink takes.
#[derive(Debug)]
pub(crate) struct Route {
    targets: Vec<String>,
    level: tracing::Level,
    format: LogFormat,
    sink: SinkSender,
}

impl Route {
    pub(crate) fn channel(channel: &ChannelConfig, format: LogFormat, sink: SinkSender) -> Self {
        Self { targets: channel.targets.clone(), level: channel.level.as_tracing(), format, sink }
    }

    pub(crate) fn everything(format: LogFormat, sink: SinkSender) -> Self {
        Self { targets: Vec::new(), level: tracing::Level::TRACE, format, sink }
    }

    fn wants(&self, meta: &tracing::Metadata<'_>) -> bool {
        // Levels compare by verbosity: ERROR < WARN < … < TRACE.
        *meta.level() <= self.level
            && (self.targets.is_empty() || self.targets.iter().any(|t| matches(t, meta.target())))
    }
}

/// `target` matches `prefix` itself and its `::` children (`worker` matches `worker::beat`, not `workers`).
fn matches(prefix: &str, target: &str) -> bool {
    target.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The layer installed by [`Logging`](crate::Logging).
#[derive(Debug)]
pub(crate) struct ChannelLayer {
    routes: Vec<Route>,
}

impl ChannelLayer {
    pub(crate) fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }
}

struct Scratch {
    timestamp: String,
    json: Fields,
    text: Fields,
    out: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        timestamp: String::with_capacity(40),
        json: Fields::new(LogFormat::Json),
        text: Fields::new(LogFormat::Text),
        out: String::with_capacity(512),
    });
}

impl<S> Layer<S> for ChannelLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Records bridged from the `log` crate carry their real target and level in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut wanted: u64 = 0;
        let (mut json, mut text) = (false, false);
        for (i, route) in self.routes.iter().enumerate().take(64) {
            if route.wants(meta) {
                wanted |= 1 << i;
                match route.format {
                    LogFormat::Json => json = true,
                    LogFormat::Text => text = true,
                }
            }
        }
        if wanted == 0 {
            return;
        }
        let spans: Vec<&'static str> =
            ctx.event_scope(event).map(|scope| scope.from_root().map(|span| span.name()).collect()).unwrap_or_default();

        let render = |scratch: &mut Scratch| {
            scratch.timestamp.clear();
            timestamp(&mut scratch.timestamp);
            let head =
                Head { timestamp: &scratch.timestamp, level: meta.level(), target: meta.target(), spans: &spans };
            let mut lines: [Option<Line>; 2] = [None, None];
            for (slot, fields) in [(0, json, &mut scratch.json), (1, text, &mut scratch.text)]
                .into_iter()
                .filter_map(|(slot, w, f)| w.then_some((slot, f)))
            {
                fields.clear();
                event.record(fields);
                scratch.out.clear();
                line(&mut scratch.out, &head, fields);
                lines[slot] = Some(Line::from(scratch.out.as_bytes()));
            }
            for (i, route) in self.routes.iter().enumerate().take(64) {
                if wanted & (1 << i) != 0 {
                    let slot = usize::from(route.format == LogFormat::Text);
                    if let Some(line) = &lines[slot] {
                        route.sink.send(line.clone());
                    }
                }
            }
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => render(&mut scratch),
            // An event logged while formatting another (from a `Debug` impl): fresh buffers.
            Err(_) => render(&mut Scratch {
                timestamp: String::new(),
                json: Fields::new(LogFormat::Json),
                text: Fields::new(LogFormat::Text),
                out: String::new(),
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn targets_match_themselves_and_their_children_only() {
        assert!(matches("worker", "worker"));
        assert!(matches("worker", "worker::beat"));
        assert!(!matches("worker", "workers"));
        assert!(!matches("worker", "app::worker"));
    }
}
