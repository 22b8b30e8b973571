//! A sink: a bounded queue of finished lines and the background thread that writes them.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use resee_ops_core::{Error, ErrorKind};

use crate::config::LogFormat;
use crate::format::own_line;

/// Mode of the log files (before the umask).
pub const FILE_MODE: u32 = 0o640;
/// Mode of a log directory this crate creates (before the umask).
pub const DIR_MODE: u32 = 0o750;

/// Lines written per `write` call at most.
const BATCH_BYTES: usize = 64 * 1024;
/// Lines taken from the queue before they are written.
const BATCH_LINES: usize = 1024;

/// How long an awake writer sleeps when its queue is empty before looking again. While it polls, callers
/// never have to wake it (no system call on the caller's thread); a line waits at most about this long.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Empty polls (about 50 ms of quiet) after which the writer sleeps until the next line wakes it, so an
/// idle service has no timer wake-ups.
const IDLE_POLLS: u32 = 50;
/// Line buffers kept for reuse per sink: written lines go back to the caller's side instead of being freed,
/// so a steady stream of events allocates nothing.
const POOL_LINES: usize = 1024;
/// Buffers larger than this (a huge event) are freed rather than kept.
const POOL_MAX_LINE: usize = 16 * 1024;
/// Capacity of a new line buffer.
const LINE_CAPACITY: usize = 512;

/// One finished line, `\n` included.
pub(crate) type Line = Vec<u8>;

pub(crate) enum Msg {
    Line(Line),
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// What one sink has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// The channel's name (`general`, `error`, `worker`, `security`, …), or `console`.
    pub name: String,
    /// Lines written.
    pub written: u64,
    /// Lines dropped because the queue was full (or the sink was shut down).
    pub dropped: u64,
    /// Lines lost because writing failed (full disk, unwritable directory).
    pub failed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) name: String,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// A caller has unparked the writer since it last woke (so others need not).
    nudged: AtomicBool,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SinkStats {
        SinkStats {
            name: self.name.clone(),
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The caller's end of a sink.
#[derive(Clone, Debug)]
pub(crate) struct SinkSender {
    tx: Sender<Msg>,
    /// Written lines' buffers, for reuse.
    pool: Receiver<Line>,
    counters: Arc<Counters>,
    lossless: bool,
    writer: Thread,
    /// Queue length from which a caller wakes a polling writer rather than let it sleep out its interval.
    nudge_at: usize,
}

impl SinkSender {
    /// Queues a copy of `line` (in a recycled buffer when there is one).
    pub(crate) fn send_copy(&self, line: &[u8]) {
        let mut buf = self.pool.try_recv().unwrap_or_else(|_| Vec::with_capacity(LINE_CAPACITY.max(line.len())));
        buf.clear();
        buf.extend_from_slice(line);
        self.send(buf);
    }

    /// Queues `line`; never blocks unless the host chose lossless. The writer is only woken when it sleeps
    /// until the next line, or when the queue fills up.
    pub(crate) fn send(&self, line: Line) {
        let sent = match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {
                if self.tx.len() >= self.nudge_at {
                    self.nudge();
                }
                true
            }
            Err(TrySendError::Full(msg)) => {
                self.nudge();
                self.lossless && self.tx.send(msg).is_ok()
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        if !sent {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn nudge(&self) {
        if !self.counters.nudged.load(Ordering::Relaxed) && !self.counters.nudged.swap(true, Ordering::AcqRel) {
            self.writer.unpark();
        }
    }
}

/// The guard's end of a sink: flush, shut down, read the counters.
#[derive(Debug)]
pub(crate) struct SinkControl {
    tx: Sender<Msg>,
    pub(crate) counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    writer: Thread,
}

/// `timeout` from now; a timeout too large for an `Instant` (`Duration::MAX`) means "no limit": about 30
/// years, never a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = Instant::now();
    now.checked_add(timeout).or_else(|| now.checked_add(FAR_FUTURE)).unwrap_or(now)
}

impl SinkControl {
    /// Asks the writer to write everything queued so far; the answer arrives on the returned channel.
    fn request(&self, make: fn(Sender<()>) -> Msg, deadline: Instant) -> Option<Receiver<()>> {
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let wait = deadline.saturating_duration_since(Instant::now());
        self.writer.unpark(); // a polling writer: now, not at its next poll
        let sent = self.tx.send_timeout(make(ack_tx), wait).ok().map(|()| ack_rx);
        self.writer.unpark();
        sent
    }

    pub(crate) fn flush_all(sinks: &[SinkControl], timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let acks: Vec<_> = sinks.iter().map(|s| s.request(Msg::Flush, deadline)).collect();
        acks.into_iter().all(|ack| ack.is_some_and(|rx| rx.recv_deadline(deadline).is_ok()))
    }

    pub(crate) fn shutdown_all(sinks: &mut [SinkControl], timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let acks: Vec<_> = sinks.iter().map(|s| s.request(Msg::Shutdown, deadline)).collect();
        let mut all = true;
        for (sink, ack) in sinks.iter_mut().zip(acks) {
            if ack.is_some_and(|rx| rx.recv_deadline(deadline).is_ok()) {
                if let Some(thread) = sink.thread.take() {
                    let _ = thread.join();
                }
            } else {
                all = false; // a writer stuck in a write: leave its thread behind rather than hang the host
            }
        }
        all
    }
}

/// Where a sink's lines go.
pub(crate) enum Output {
    File(RotatingFile),
    Stream(Box<dyn Write + Send>),
}

/// Reports a sink's failures and recoveries to the console (once per failure).
pub(crate) type Report = Arc<dyn Fn(tracing::Level, &str) + Send + Sync>;

/// Starts the writer thread of one sink.
pub(crate) fn spawn(
    name: &str,
    output: Output,
    format: LogFormat,
    capacity: usize,
    lossless: bool,
    report: Option<Report>,
) -> Result<(SinkSender, SinkControl), Error> {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded(capacity.clamp(1, POOL_LINES));
    let counters = Arc::new(Counters { name: name.to_owned(), ..Counters::default() });
    let mut writer = Writer {
        output,
        format,
        counters: counters.clone(),
        report,
        failing: None,
        reported_dropped: 0,
        pool: pool_tx,
    };
    let thread =
        std::thread::Builder::new().name(format!("log-{name}")).spawn(move || writer.run(&rx)).map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot start the writer thread of log channel {name}")).with_source(e)
        })?;
    let waker = thread.thread().clone();
    Ok((
        SinkSender {
            tx: tx.clone(),
            pool: pool_rx,
            counters: counters.clone(),
            lossless,
            writer: waker.clone(),
            nudge_at: (capacity / 2).max(1),
        },
        SinkControl { tx, counters, thread: Some(thread), writer: waker },
    ))
}

struct Writer {
    output: Output,
    format: LogFormat,
    counters: Arc<Counters>,
    report: Option<Report>,
    /// Lines lost since the current failure began, when failing.
    failing: Option<u64>,
    reported_dropped: u64,
    /// Where written lines' buffers go back to the callers.
    pool: Sender<Line>,
}

impl Writer {
    fn run(&mut self, rx: &Receiver<Msg>) {
        let mut batch: Vec<Line> = Vec::with_capacity(BATCH_LINES);
        let mut idle_polls = 0;
        loop {
            let first = if idle_polls >= IDLE_POLLS {
                // Quiet for a while: sleep until a caller's line (or the guard) wakes this thread.
                match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(msg) => msg,
                    Err(TryRecvError::Empty) => {
                        std::thread::park_timeout(POLL_INTERVAL);
                        self.counters.nudged.store(false, Ordering::Release);
                        idle_polls += 1;
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            idle_polls = 0;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Line(line) => {
                        batch.push(line);
                        if batch.len() >= BATCH_LINES {
                            self.write(&mut batch);
                        }
                    }
                    Msg::Flush(ack) => {
                        self.write(&mut batch);
                        self.report_dropped(rx);
                        self.flush();
                        let _ = ack.send(());
                    }
                    Msg::Shutdown(ack) => {
                        self.write(&mut batch);
                        self.report_dropped(rx);
                        self.flush();
                        let _ = ack.send(());
                        return;
                    }
                }
                next = rx.try_recv().ok();
            }
            // The queue is empty: write what was taken, say what was dropped, and push it out.
            self.write(&mut batch);
            self.report_dropped(rx);
            self.flush();
        }
    }

    fn report_dropped(&mut self, rx: &Receiver<Msg>) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.reported_dropped && rx.is_empty() {
            let new = dropped - self.reported_dropped;
            self.reported_dropped = dropped;
            let line = own_line(
                self.format,
                tracing::Level::WARN,
                &format!("{new} log lines were dropped: the {} log writer could not keep up", self.counters.name),
                &[("dropped", new), ("dropped_total", dropped)],
            );
            let mut batch = vec![line.into_bytes()];
            self.write(&mut batch);
        }
    }

    fn write(&mut self, batch: &mut Vec<Line>) {
        if batch.is_empty() {
            return;
        }
        let lines = batch.len() as u64;
        let result = match &mut self.output {
            Output::File(file) => file.write_lines(batch),
            Output::Stream(stream) => batch.iter().try_for_each(|line| stream.write_all(line)),
        };
        for line in batch.drain(..) {
            if line.capacity() <= POOL_MAX_LINE {
                let _ = self.pool.try_send(line); // a full pool: freed here
            }
        }
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(lines, Ordering::Relaxed);
                if let Some(lost) = self.failing.take() {
                    let message = format!("log channel {} writes again after {lost} lost lines", self.counters.name);
                    self.say(tracing::Level::WARN, &message);
                    let line = own_line(self.format, tracing::Level::WARN, &message, &[("lost", lost)]);
                    let mut batch = vec![line.into_bytes()];
                    self.write(&mut batch);
                }
            }
            Err(err) => {
                self.counters.failed.fetch_add(lines, Ordering::Relaxed);
                match &mut self.failing {
                    Some(lost) => *lost += lines,
                    None => {
                        self.failing = Some(lines);
                        let what = match &self.output {
                            Output::File(file) => file.path.display().to_string(),
                            Output::Stream(_) => "the console".to_owned(),
                        };
                        self.say(
                            tracing::Level::ERROR,
                            &format!(
                                "log channel {} cannot write {what}: {err}; its lines are counted as lost until it \
                                 works again",
                                self.counters.name
                            ),
                        );
                    }
                }
            }
        }
    }

    fn flush(&mut self) {
        if let Output::Stream(stream) = &mut self.output {
            let _ = stream.flush();
        }
    }

    fn say(&self, level: tracing::Level, message: &str) {
        match &self.report {
            Some(report) => report(level, message),
            None => eprintln!("{}: {message}", crate::OWN_TARGET),
        }
    }
}

/// One channel's file, rotated by size with `file-rotate` (`general.log`, `general.log.1`, …).
///
/// `file-rotate` decides to rotate before a write when the file is already larger than the limit
/// (`ContentLimit::BytesSurpassed`), so lines are never cut. This type tracks the same count to cut its
/// batches exactly where line-by-line writing would rotate, which keeps every rotated file within one
/// line of the limit while writing 64 KiB at a time. `file-rotate` panics or silently stops writing when
/// the directory disappears or cannot be written; every call is guarded, and any error drops the
/// rotator, to be opened anew (directory included) on the next batch.
pub(crate) struct RotatingFile {
    pub(crate) path: PathBuf,
    max_bytes: u64,
    backups: usize,
    rotator: Option<FileRotate<AppendCount>>,
    /// What `file-rotate` counts: the bytes in the current file.
    count: u64,
    buf: Vec<u8>,
}

impl RotatingFile {
    /// Opens (creating it `0640`) `dir/file`; the error says which file and why.
    pub(crate) fn open(dir: &Path, file: &str, max_bytes: u64, backups: usize) -> Result<Self, Error> {
        let mut this = Self {
            path: dir.join(file),
            max_bytes,
            backups,
            rotator: None,
            count: 0,
            buf: Vec::with_capacity(BATCH_BYTES),
        };
        this.reopen().map_err(|e| io_error(&format!("cannot open log file {}", this.path.display()), e))?;
        Ok(this)
    }

    fn options() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.read(true).create(true).append(true).mode(FILE_MODE);
        options
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.rotator = None;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_dir(dir)?;
        // file-rotate swallows open errors (and would then drop every line): open once here to see them.
        let probe = Self::options().open(&self.path)?;
        let len = probe.metadata()?.len();
        let needs_newline = len > 0 && last_byte(&probe, len)? != Some(b'\n');
        drop(probe);
        let path = self.path.clone();
        let (backups, max_bytes) = (self.backups, self.max_bytes);
        let rotator = guarded(move || {
            Ok(FileRotate::new(
                path,
                AppendCount::new(backups),
                ContentLimit::BytesSurpassed(usize::try_from(max_bytes).unwrap_or(usize::MAX)),
                Compression::None,
                Some(Self::options()),
            ))
        })?;
        self.rotator = Some(rotator);
        self.count = std::fs::metadata(&self.path)?.len();
        if needs_newline {
            // A write cut short by a full disk left half a line: end it so the next line stands alone.
            self.buf.push(b'\n');
            self.count += 1;
        }
        Ok(())
    }

    fn write_lines(&mut self, lines: &[Line]) -> io::Result<()> {
        if self.rotator.is_none() {
            self.buf.clear();
            self.reopen()?;
        }
        let result = self.write_batched(lines);
        if result.is_err() {
            self.rotator = None;
            self.buf.clear();
        }
        result
    }

    fn write_batched(&mut self, lines: &[Line]) -> io::Result<()> {
        for line in lines {
            if self.count > self.max_bytes {
                // Line by line, file-rotate would rotate before this line: end the batch here; the next
                // write rotates.
                self.write_buf()?;
                self.count = 0;
            }
            self.buf.extend_from_slice(line);
            self.count += line.len() as u64;
            if self.buf.len() >= BATCH_BYTES {
                self.write_buf()?;
            }
        }
        self.write_buf()
    }

    fn write_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(rotator) = self.rotator.as_mut() else {
            return Err(io::Error::other("the log file is not open"));
        };
        let buf = std::mem::take(&mut self.buf);
        let rotates = self.count - buf.len() as u64 == 0; // this batch starts a new file
        let result = guarded(AssertUnwindSafe(|| rotator.write_all(&buf)));
        self.buf = buf;
        self.buf.clear();
        result?;
        if rotates && !self.path.exists() {
            return Err(io::Error::other("the new log file could not be created after rotation"));
        }
        Ok(())
    }
}

fn guarded<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(io::Error::other(format!("log rotation failed: {what}")))
        }
    }
}

fn last_byte(file: &std::fs::File, len: u64) -> io::Result<Option<u8>> {
    use std::os::unix::fs::FileExt;
    let mut byte = [0u8; 1];
    let n = file.read_at(&mut byte, len - 1)?;
    Ok((n == 1).then_some(byte[0]))
}

/// Creates `dir` (and its parents) `0750` when missing; an existing directory keeps its mode.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

pub(crate) fn io_error(what: &str, err: io::Error) -> Error {
    let kind = match err.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ErrorKind::InvalidConfig,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::StorageFull,
        _ => ErrorKind::Io,
    };
    Error::new(kind, format!("{what}: {err}"))
}
