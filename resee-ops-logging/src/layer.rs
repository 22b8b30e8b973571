//! The `tracing-subscriber` layer: routes each event to the channels that want it, formats it once per
//! format on the caller's thread, and hands the line to each sink's queue.

use std::cell::RefCell;

use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ChannelConfig, LogFormat};
use crate::format::{Fields, Head, line, timestamp};
use crate::sink::SinkSender;

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

/// A thread's reused buffers: an event allocates nothing once they have grown to its size.
struct Scratch {
    timestamp: String,
    spans: Vec<&'static str>,
    json: Fields,
    text: Fields,
    json_line: String,
    text_line: String,
}

impl Scratch {
    fn new() -> Self {
        Self {
            timestamp: String::with_capacity(40),
            spans: Vec::new(),
            json: Fields::new(LogFormat::Json),
            text: Fields::new(LogFormat::Text),
            json_line: String::with_capacity(512),
            text_line: String::with_capacity(512),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
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

        // Each format is rendered once, into this thread's buffers; each sink gets a copy of its format's
        // line in a buffer recycled by its writer.
        let render = |scratch: &mut Scratch| {
            scratch.spans.clear();
            if let Some(scope) = ctx.event_scope(event) {
                scratch.spans.extend(scope.from_root().map(|span| span.name()));
            }
            scratch.timestamp.clear();
            timestamp(&mut scratch.timestamp);
            let head = Head {
                timestamp: &scratch.timestamp,
                level: meta.level(),
                target: meta.target(),
                spans: &scratch.spans,
            };
            for (wanted, fields, out) in
                [(json, &mut scratch.json, &mut scratch.json_line), (text, &mut scratch.text, &mut scratch.text_line)]
            {
                if wanted {
                    fields.clear();
                    event.record(fields);
                    out.clear();
                    line(out, &head, fields);
                }
            }
            for (i, route) in self.routes.iter().enumerate().take(64) {
                if wanted & (1 << i) != 0 {
                    let line = match route.format {
                        LogFormat::Json => &scratch.json_line,
                        LogFormat::Text => &scratch.text_line,
                    };
                    route.sink.send_copy(line.as_bytes());
                }
            }
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => render(&mut scratch),
            // An event logged while formatting another (from a `Debug` impl): fresh buffers.
            Err(_) => render(&mut Scratch::new()),
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
