//! A sink: the lines waiting to be written, and the background thread that writes them.
//!
//! Callers append finished lines to one growing byte buffer per sink (under a mutex held for the copy
//! only); the writer swaps that buffer for its own empty one about every millisecond while lines come, and
//! writes the taken lines out. Both buffers keep their capacity, so a steady stream of events allocates
//! nothing and touches the same few hot pages: no allocation, no page fault and no cross-thread free on the
//! caller's thread, which is what kept the caller's p99 above a microsecond with a queue of line buffers.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender as Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

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

/// How long an awake writer sleeps when nothing is pending before looking again. While it polls, callers
/// never have to wake it (no system call on the caller's thread); a line waits at most about this long.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Empty polls (about 50 ms of quiet) after which the writer sleeps until the next line wakes it, so an
/// idle service has no timer wake-ups.
const IDLE_POLLS: u32 = 50;
/// Bytes a new buffer has ready (its pages touched) before the first line.
const INITIAL_BYTES: usize = 64 * 1024;
/// A buffer that grew beyond this in a burst is shrunk back to [`INITIAL_BYTES`] once written.
const MAX_RETAINED_BYTES: usize = 16 * 1024 * 1024;

/// Lines in one contiguous buffer: line `i` is `bytes[ends[i - 1]..ends[i]]`, `\n` included.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Lines {
    /// An empty buffer with room for [`INITIAL_BYTES`] (of at most `capacity` lines), its memory touched.
    fn ready(capacity: usize) -> Self {
        let mut lines = Self::default();
        lines.prepare(INITIAL_BYTES, capacity);
        lines
    }

    /// Makes room for `bytes` bytes and the lines they hold (at most `capacity`) and touches the memory, so
    /// that callers appending later neither reallocate nor fault pages in: the writer, which calls this,
    /// pays for growth instead of the caller. No-op once the buffer is that large.
    fn prepare(&mut self, bytes: usize, capacity: usize) {
        debug_assert!(self.is_empty());
        let bytes = bytes.min(MAX_RETAINED_BYTES);
        if self.bytes.capacity() < bytes {
            self.bytes.reserve_exact(bytes);
            let touched = self.bytes.capacity();
            self.bytes.resize(touched, 0);
            self.bytes.clear();
        }
        // Lines of 64 bytes or more: a shorter line average may still grow `ends` on the caller's side.
        let lines = (bytes / 64).min(capacity);
        if self.ends.capacity() < lines {
            self.ends.reserve_exact(lines);
            let touched = self.ends.capacity();
            self.ends.resize(touched, 0);
            self.ends.clear();
        }
    }

    fn one(line: &[u8]) -> Self {
        let mut lines = Self::default();
        lines.push(line);
        lines
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
    }

    /// Empties the buffer, keeping its capacity unless a burst made it larger than [`MAX_RETAINED_BYTES`].
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        if self.bytes.capacity() > MAX_RETAINED_BYTES {
            self.bytes.shrink_to(INITIAL_BYTES);
            self.ends.shrink_to(INITIAL_BYTES / 64);
        }
    }
}

/// A request from the guard, answered once everything appended before it is written.
enum Request {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// What callers and the writer share, under [`Shared::pending`]'s lock.
struct Pending {
    lines: Lines,
    requests: Vec<Request>,
    /// The writer has stopped: lines are counted as dropped.
    closed: bool,
    /// The writer sleeps until woken (it has been idle): the next line wakes it.
    sleeping: bool,
    /// A caller has woken the polling writer early since its last swap (so others need not).
    nudged: bool,
    /// Lossless callers waiting for room.
    waiting: usize,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Notified when the writer takes the pending lines, for lossless callers waiting for room.
    room: Condvar,
    counters: Arc<Counters>,
    capacity: usize,
    lossless: bool,
    /// Pending lines from which a caller wakes a polling writer rather than let it sleep out its interval.
    nudge_at: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while the lock is held cannot leave `Pending` inconsistent (pushes are whole lines).
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops taking lines: those still pending and every later one are counted as dropped, and lossless
    /// callers stop waiting for room that would never come.
    fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        let late = pending.lines.len() as u64;
        pending.lines.clear();
        drop(pending);
        self.counters.dropped.fetch_add(late, Ordering::Relaxed);
        self.room.notify_all();
    }
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
#[derive(Clone)]
pub(crate) struct SinkSender {
    shared: Arc<Shared>,
    writer: Thread,
}

impl std::fmt::Debug for SinkSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSender").field("name", &self.shared.counters.name).finish_non_exhaustive()
    }
}

impl SinkSender {
    /// Appends a copy of `line` to the pending lines; never blocks unless the host chose lossless (then it
    /// waits for room). The writer is only woken when it sleeps until the next line, or when the pending
    /// lines reach half the capacity.
    pub(crate) fn send_copy(&self, line: &[u8]) {
        let shared = &*self.shared;
        let mut pending = shared.lock();
        while pending.lines.len() >= shared.capacity && shared.lossless && !pending.closed {
            pending.waiting += 1;
            pending.nudged = true;
            self.writer.unpark();
            pending = shared.room.wait(pending).unwrap_or_else(PoisonError::into_inner);
            pending.waiting -= 1;
        }
        if pending.closed || pending.lines.len() >= shared.capacity {
            drop(pending);
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.lines.push(line);
        let wake = if pending.sleeping {
            pending.sleeping = false;
            true
        } else if !pending.nudged && pending.lines.len() >= shared.nudge_at {
            pending.nudged = true;
            true
        } else {
            false
        };
        drop(pending);
        if wake {
            self.writer.unpark();
        }
    }
}

/// The guard's end of a sink: flush, shut down, read the counters.
pub(crate) struct SinkControl {
    shared: Arc<Shared>,
    pub(crate) counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
    writer: Thread,
}

impl std::fmt::Debug for SinkControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkControl").field("name", &self.counters.name).finish_non_exhaustive()
    }
}

/// `timeout` from now; a timeout too large for an `Instant` (`Duration::MAX`) means "no limit": about 30
/// years, never a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = Instant::now();
    now.checked_add(timeout).or_else(|| now.checked_add(FAR_FUTURE)).unwrap_or(now)
}

impl SinkControl {
    /// Asks the writer to write everything appended so far; the answer arrives on the returned channel
    /// (`None` when the writer has stopped already).
    fn request(&self, make: fn(Sender<()>) -> Request) -> Option<Receiver<()>> {
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        let mut pending = self.shared.lock();
        if pending.closed {
            return None;
        }
        pending.requests.push(make(ack_tx));
        pending.sleeping = false;
        drop(pending);
        self.writer.unpark(); // a polling writer: now, not at its next poll
        Some(ack_rx)
    }

    pub(crate) fn flush_all(sinks: &[SinkControl], timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let acks: Vec<_> = sinks.iter().map(|s| s.request(Request::Flush)).collect();
        acks.into_iter().all(|ack| ack.is_some_and(|rx| answered(&rx, deadline)))
    }

    pub(crate) fn shutdown_all(sinks: &mut [SinkControl], timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let acks: Vec<_> = sinks.iter().map(|s| s.request(Request::Shutdown)).collect();
        let mut all = true;
        for (sink, ack) in sinks.iter_mut().zip(acks) {
            if ack.is_some_and(|rx| answered(&rx, deadline)) {
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

/// Whether the writer answered a request before `deadline`.
fn answered(ack: &Receiver<()>, deadline: Instant) -> bool {
    ack.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
}

/// Where a sink's lines go.
pub(crate) enum Output {
    File(RotatingFile),
    Stream(Box<dyn Write + Send>),
}

/// Reports a sink's failures and recoveries to the console (once per failure).
pub(crate) type Report = Arc<dyn Fn(tracing::Level, &str) + Send + Sync>;

/// Starts the writer thread of one sink; `capacity` is the most lines that may wait to be written.
pub(crate) fn spawn(
    name: &str,
    output: Output,
    format: LogFormat,
    capacity: usize,
    lossless: bool,
    report: Option<Report>,
) -> Result<(SinkSender, SinkControl), Error> {
    let counters = Arc::new(Counters { name: name.to_owned(), ..Counters::default() });
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            lines: Lines::ready(capacity),
            requests: Vec::new(),
            closed: false,
            sleeping: false,
            nudged: false,
            waiting: 0,
        }),
        room: Condvar::new(),
        counters: counters.clone(),
        capacity,
        lossless,
        nudge_at: (capacity / 2).max(1),
    });
    let mut writer = Writer {
        output,
        format,
        counters: counters.clone(),
        report,
        failing: None,
        reported_dropped: 0,
        shared: shared.clone(),
    };
    let thread = std::thread::Builder::new().name(format!("log-{name}")).spawn(move || writer.run()).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot start the writer thread of log channel {name}")).with_source(e)
    })?;
    let waker = thread.thread().clone();
    Ok((
        SinkSender { shared: shared.clone(), writer: waker.clone() },
        SinkControl { shared, counters, thread: Some(thread), writer: waker },
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
    shared: Arc<Shared>,
}

/// Closes the sink when the writer's thread ends, however it ends (see [`Shared::close`]).
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Writer {
    fn run(&mut self) {
        let _close = CloseOnExit(self.shared.clone());
        let mut taken = Lines::ready(self.shared.capacity);
        let mut requests = Vec::new();
        let mut idle_polls = 0;
        loop {
            {
                let mut pending = self.shared.lock();
                if pending.lines.is_empty() && pending.requests.is_empty() {
                    if idle_polls >= IDLE_POLLS {
                        // Quiet for a while: sleep until a caller's line (or the guard) wakes this thread.
                        pending.sleeping = true;
                        drop(pending);
                        std::thread::park();
                    } else {
                        drop(pending);
                        std::thread::park_timeout(POLL_INTERVAL);
                        idle_polls += 1;
                    }
                    continue;
                }
                std::mem::swap(&mut pending.lines, &mut taken);
                std::mem::swap(&mut pending.requests, &mut requests);
                pending.sleeping = false;
                pending.nudged = false;
                if pending.waiting > 0 {
                    self.shared.room.notify_all();
                }
            }
            idle_polls = 0;
            self.write(&taken);
            // The next swap hands this buffer to the callers: ready for twice what just came in one round.
            let came = taken.bytes.len();
            taken.clear();
            taken.prepare(came.saturating_mul(2), self.shared.capacity);
            let shutdown = requests.iter().any(|r| matches!(r, Request::Shutdown(_)));
            if shutdown {
                // Lines appended after the shutdown request are not written: counted as dropped.
                self.shared.close();
            }
            self.report_dropped();
            self.flush();
            for request in requests.drain(..) {
                let (Request::Flush(ack) | Request::Shutdown(ack)) = request;
                let _ = ack.send(());
            }
            if shutdown {
                return;
            }
        }
    }

    /// Says how many lines were dropped since it last said so, once nothing is pending.
    fn report_dropped(&mut self) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.reported_dropped && self.shared.lock().lines.is_empty() {
            let new = dropped - self.reported_dropped;
            self.reported_dropped = dropped;
            let line = own_line(
                self.format,
                tracing::Level::WARN,
                &format!("{new} log lines were dropped: the {} log writer could not keep up", self.counters.name),
                &[("dropped", new), ("dropped_total", dropped)],
            );
            self.write(&Lines::one(line.as_bytes()));
        }
    }

    fn write(&mut self, lines: &Lines) {
        if lines.is_empty() {
            return;
        }
        let count = lines.len() as u64;
        let result = match &mut self.output {
            Output::File(file) => file.write_lines(lines),
            // A host's writer may panic: that is a failed write, not a dead sink.
            Output::Stream(stream) => guarded(AssertUnwindSafe(|| stream.write_all(&lines.bytes))),
        };
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(count, Ordering::Relaxed);
                if let Some(lost) = self.failing.take() {
                    let message = format!("log channel {} writes again after {lost} lost lines", self.counters.name);
                    self.say(tracing::Level::WARN, &message);
                    let line = own_line(self.format, tracing::Level::WARN, &message, &[("lost", lost)]);
                    self.write(&Lines::one(line.as_bytes()));
                }
            }
            Err(err) => {
                self.counters.failed.fetch_add(count, Ordering::Relaxed);
                match &mut self.failing {
                    Some(lost) => *lost += count,
                    None => {
                        self.failing = Some(count);
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
/// line of the limit while writing each batch of taken lines in as few writes as rotation allows. `file-rotate` panics or silently stops writing when
/// the directory disappears or cannot be written; every call is guarded, and any error drops the
/// rotator, to be opened anew (directory included) on the next batch.
pub(crate) struct RotatingFile {
    pub(crate) path: PathBuf,
    max_bytes: u64,
    backups: usize,
    rotator: Option<FileRotate<AppendCount>>,
    /// What `file-rotate` counts: the bytes in the current file, including those about to be written.
    count: u64,
    /// The file ends in half a line (a write cut short by a full disk): the next write starts with `\n`.
    newline_due: bool,
}

impl RotatingFile {
    /// Opens (creating it `0640`) `dir/file`; the error says which file and why.
    pub(crate) fn open(dir: &Path, file: &str, max_bytes: u64, backups: usize) -> Result<Self, Error> {
        let mut this = Self { path: dir.join(file), max_bytes, backups, rotator: None, count: 0, newline_due: false };
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
            self.newline_due = true;
            self.count += 1;
        }
        Ok(())
    }

    fn write_lines(&mut self, lines: &Lines) -> io::Result<()> {
        if self.rotator.is_none() {
            self.newline_due = false;
            self.reopen()?;
        }
        let result = self.write_cut(lines);
        if result.is_err() {
            self.rotator = None;
            self.newline_due = false;
        }
        result
    }

    /// Writes `lines` straight from their buffer, cut where line-by-line writing would rotate.
    fn write_cut(&mut self, lines: &Lines) -> io::Result<()> {
        let (mut start, mut end) = (0, 0);
        for &line_end in &lines.ends {
            if self.count > self.max_bytes {
                // Line by line, file-rotate would rotate before this line: write what came before it; the
                // next write rotates.
                self.write_range(&lines.bytes[start..end])?;
                start = end;
                self.count = 0;
            }
            self.count += (line_end - end) as u64;
            end = line_end;
        }
        self.write_range(&lines.bytes[start..end])
    }

    /// One write of `bytes` (after the pending `\n`, if any), which `count` already includes.
    fn write_range(&mut self, bytes: &[u8]) -> io::Result<()> {
        let newline = std::mem::take(&mut self.newline_due);
        if bytes.is_empty() && !newline {
            return Ok(());
        }
        let Some(rotator) = self.rotator.as_mut() else {
            return Err(io::Error::other("the log file is not open"));
        };
        let len = bytes.len() + usize::from(newline);
        let rotates = self.count == len as u64; // this write starts a new file
        let result = if newline {
            // Rare (after a full disk): one write, so file-rotate cannot rotate between the two parts.
            let mut joined = Vec::with_capacity(len);
            joined.push(b'\n');
            joined.extend_from_slice(bytes);
            guarded(AssertUnwindSafe(|| rotator.write_all(&joined)))
        } else {
            guarded(AssertUnwindSafe(|| rotator.write_all(bytes)))
        };
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

#[cfg(test)]
mod tests {
    use super::{INITIAL_BYTES, Lines, MAX_RETAINED_BYTES};

    #[test]
    fn a_prepared_buffer_takes_that_many_bytes_without_reallocating() {
        let mut lines = Lines::ready(1 << 20);
        assert!(lines.bytes.capacity() >= INITIAL_BYTES);
        lines.prepare(1 << 20, 1 << 20);
        let (bytes, ends) = (lines.bytes.as_ptr(), lines.ends.as_ptr());
        let line = [b'x'; 127];
        for _ in 0..(1 << 20) / 128 {
            lines.push(&line);
        }
        assert_eq!(lines.len(), 8192);
        assert_eq!(lines.bytes.as_ptr(), bytes, "the callers' appends never reallocate the bytes");
        assert_eq!(lines.ends.as_ptr(), ends, "nor the line ends");
    }

    #[test]
    fn lines_keep_their_boundaries_and_a_burst_is_not_retained() {
        let mut lines = Lines::ready(16);
        lines.push(b"one\n");
        lines.push(b"two\n");
        assert_eq!((lines.bytes.as_slice(), lines.ends.as_slice()), (b"one\ntwo\n".as_slice(), [4, 8].as_slice()));
        lines.push(&vec![b'y'; MAX_RETAINED_BYTES + 1]);
        lines.clear();
        assert!(lines.is_empty());
        assert!(lines.bytes.capacity() <= MAX_RETAINED_BYTES, "a burst's memory is given back");
        lines.prepare(usize::MAX, usize::MAX);
        assert!(lines.bytes.capacity() <= 2 * MAX_RETAINED_BYTES, "never prepared beyond the retained maximum");
    }
}
