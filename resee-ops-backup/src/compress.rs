//! Block-parallel gzip: the input is cut into blocks, each compressed on its own thread into a complete gzip
//! member, and the members are written in order. A sequence of members is a valid gzip file (RFC 1952 §2.2)
//! that `gunzip`, `gzip -t` and `zcat` read as one stream; this is what `pigz --independent` does.
//!
//! Memory is bounded whatever the input size, and allocated once: one block being filled, one queued,
//! `threads` blocks compressing, each with its output buffer; blocks, output buffers and compressors are
//! recycled rather than freed (allocating a fresh megabyte per block on whichever blocking thread runs the
//! job spreads the heap over many allocator arenas, and that, not the data in flight, made the peak RSS).

use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use resee_ops_core::ErrorKind;

use crate::codec::rows::RowCounter;
use crate::{BackupError, Result};

/// Raw bytes per gzip member. 1 MiB keeps the ratio within about 1 % of a single stream (the deflate
/// window is 32 KiB) while keeping memory small.
pub(crate) const BLOCK_SIZE: usize = 1024 * 1024;

/// How many raw bytes of the start and the end of the stream to keep for checks.
pub(crate) const KEEP: usize = 4096;

/// What went through the compressor.
#[derive(Debug, Clone)]
pub(crate) struct StreamStats {
    pub(crate) raw_size: u64,
    pub(crate) compressed_size: u64,
    pub(crate) sha256: String,
    pub(crate) tail: Vec<u8>,
    /// Compressed size of each gzip member, in order (lets verification inflate members in parallel).
    pub(crate) member_sizes: Vec<u64>,
    /// Rows of each table in the dump.
    pub(crate) tables: std::collections::BTreeMap<String, u64>,
}

/// What is learnt from the raw stream as it passes: size, last bytes (the trailer), rows per table.
#[derive(Debug, Default)]
pub(crate) struct RawObserver {
    raw_size: u64,
    tail: Vec<u8>,
    rows: RowCounter,
}

impl RawObserver {
    pub(crate) fn observe(&mut self, block: &[u8]) {
        self.raw_size += block.len() as u64;
        keep_tail(&mut self.tail, block);
        self.rows.feed(block);
    }

    /// The stats so far, with the compressed side still empty.
    pub(crate) fn finish(self) -> StreamStats {
        StreamStats {
            raw_size: self.raw_size,
            compressed_size: 0,
            sha256: String::new(),
            tail: self.tail,
            member_sizes: Vec::new(),
            tables: self.rows.finish(),
        }
    }
}

/// Blocks handed back by their consumer for the reader to fill again.
pub(crate) type Recycle = std::sync::mpsc::SyncSender<Vec<u8>>;

/// Reads `input` in blocks of `block_size` on its own task, so that the producer (`pg_dump`) never waits for
/// a block to be compressed or written, only for the bounded queue of `depth` blocks. The last block is
/// shorter than `block_size` (possibly empty); a read error ends the stream. Blocks sent back through the
/// returned [`Recycle`] are filled again instead of allocating new ones.
pub(crate) fn spawn_block_reader<R>(
    mut input: R,
    block_size: usize,
    depth: usize,
) -> (mpsc::Receiver<std::io::Result<Vec<u8>>>, tokio::task::JoinHandle<()>, Recycle)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let depth = depth.max(1);
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(depth);
    // Enough for every block that can be out at once; any more are freed.
    let (recycle, recycled) = std::sync::mpsc::sync_channel::<Vec<u8>>(depth + 8);
    let reader = tokio::spawn(async move {
        loop {
            let mut block = recycled.try_recv().unwrap_or_default();
            block.clear();
            block.reserve_exact(block_size);
            // `read_buf` fills the spare capacity (exactly `block_size`: every block is made here): no
            // zeroing, no growth.
            let result = loop {
                if block.len() >= block_size {
                    break Ok(());
                }
                match input.read_buf(&mut block).await {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            let done = block.len() < block_size;
            let item = result.map(|()| block);
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed || done {
                return;
            }
        }
    });
    (rx, reader, recycle)
}

/// Something that accepts the compressed stream.
pub(crate) trait Sink {
    /// Appends bytes.
    fn write(&mut self, buf: &[u8]) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Compresses one block into one gzip member with libdeflate (whole-buffer compression: at the same level
/// about as small as zlib and faster; see `/work/shared/CRATES.md` and the backup bench).
pub fn compress_block(block: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSORS: std::cell::RefCell<Vec<(u32, libdeflater::Compressor)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let lvl = libdeflater::CompressionLvl::new(i32::try_from(level).unwrap_or(i32::MAX))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("gzip level {level}: {e:?}")))?;
    COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let at = match compressors.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                compressors.push((level, libdeflater::Compressor::new(lvl)));
                compressors.len() - 1
            }
        };
        let compressor = &mut compressors[at].1;
        let mut out = vec![0u8; compressor.gzip_compress_bound(block.len())];
        let n = compressor
            .gzip_compress(block, &mut out)
            .map_err(|e| std::io::Error::other(format!("libdeflate: {e:?}")))?;
        out.truncate(n);
        Ok(out)
    })
}

/// A compressor with its output buffer, used by one job at a time and then handed back.
struct Deflater {
    compressor: libdeflater::Compressor,
    /// At least `gzip_compress_bound` of the block long (zeroed once, when it grows).
    out: Vec<u8>,
    /// The member: the first `len` bytes of `out`.
    len: usize,
}

/// The jobs' compressors: exactly as many as jobs ever ran at once, whatever blocking threads run them.
type Deflaters = std::sync::Arc<std::sync::Mutex<Vec<Deflater>>>;

/// What a compression job gives back: the member (in its recycled buffer), and the raw block for reuse.
type Job = tokio::task::JoinHandle<(std::io::Result<Deflater>, Vec<u8>)>;

fn deflate_job(deflaters: &Deflaters, block: Vec<u8>, level: u32) -> Job {
    let deflaters = deflaters.clone();
    tokio::task::spawn_blocking(move || {
        let reused = deflaters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let result = reused.map_or_else(
            || {
                let lvl = libdeflater::CompressionLvl::new(i32::try_from(level).unwrap_or(i32::MAX)).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("gzip level {level}: {e:?}"))
                })?;
                Ok(Deflater { compressor: libdeflater::Compressor::new(lvl), out: Vec::new(), len: 0 })
            },
            Ok,
        );
        let result = result.and_then(|mut d| {
            let bound = d.compressor.gzip_compress_bound(block.len());
            if d.out.len() < bound {
                d.out.resize(bound, 0);
            }
            d.len = d
                .compressor
                .gzip_compress(&block, &mut d.out)
                .map_err(|e| std::io::Error::other(format!("libdeflate: {e:?}")))?;
            Ok(d)
        });
        (result, block)
    })
}

/// Reads `input` to its end, gzip-compresses it with `threads` threads at `level`, and writes the result to
/// `sink`. Read errors and sink errors end it; nothing is retried here.
pub(crate) async fn compress_stream<R, S>(input: R, sink: &mut S, level: u32, threads: usize) -> Result<StreamStats>
where
    R: AsyncRead + Unpin + Send + 'static,
    S: Sink + Send,
{
    compress_stream_with_block(input, sink, level, threads, BLOCK_SIZE).await
}

pub(crate) async fn compress_stream_with_block<R, S>(
    input: R,
    sink: &mut S,
    level: u32,
    threads: usize,
    block_size: usize,
) -> Result<StreamStats>
where
    R: AsyncRead + Unpin + Send + 'static,
    S: Sink + Send,
{
    let threads = threads.max(1);
    // One block queued ahead: the reader keeps pg_dump's pipe drained while `threads` blocks compress.
    let (mut rx, reader, recycle) = spawn_block_reader(input, block_size, 1);
    let mut observer = RawObserver::default();
    let mut member_sizes = Vec::new();
    let mut hasher = Sha256::new();
    let deflaters = Deflaters::default();
    let mut inflight: VecDeque<Job> = VecDeque::new();
    let mut members = 0u64;
    let mut done = Done { sink, hasher: &mut hasher, member_sizes: &mut member_sizes, deflaters: &deflaters, recycle };

    let outcome: Result<()> = async {
        loop {
            let block = match rx.recv().await {
                Some(Ok(block)) => block,
                Some(Err(e)) => return Err(BackupError::io("reading the dump stream failed", e)),
                None => break,
            };
            if block.is_empty() && members > 0 {
                continue;
            }
            observer.observe(&block);
            members += 1;
            inflight.push_back(deflate_job(&deflaters, block, level));
            while inflight.len() >= threads {
                let job = inflight.pop_front().expect("non-empty");
                done.write_member(job).await?;
            }
        }
        if members == 0 {
            // Empty input: still write a valid (empty) gzip file.
            inflight.push_back(deflate_job(&deflaters, Vec::new(), level));
        }
        while let Some(job) = inflight.pop_front() {
            done.write_member(job).await?;
        }
        Ok(())
    }
    .await;
    drop(done);
    drop(rx);
    reader.abort();
    outcome?;
    let mut stats = observer.finish();
    stats.compressed_size = member_sizes.iter().sum();
    stats.member_sizes = member_sizes;
    stats.sha256 = hex(&hasher.finalize());
    Ok(stats)
}

/// Where finished jobs go: their member to the sink, their buffers back for reuse.
struct Done<'a, S> {
    sink: &'a mut S,
    hasher: &'a mut Sha256,
    member_sizes: &'a mut Vec<u64>,
    deflaters: &'a Deflaters,
    recycle: Recycle,
}

impl<S: Sink + Send> Done<'_, S> {
    async fn write_member(&mut self, job: Job) -> Result<()> {
        let (result, block) =
            job.await.map_err(|e| BackupError::new(ErrorKind::Io, format!("compression task failed: {e}")))?;
        let _ = self.recycle.try_send(block);
        let deflater = result.map_err(|e| BackupError::io("compression failed", e))?;
        let member = &deflater.out[..deflater.len];
        self.hasher.update(member);
        self.member_sizes.push(member.len() as u64);
        let written = self.sink.write(member).await;
        self.deflaters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(deflater);
        written
    }
}

/// Collecting in memory (the benchmarks, tests).
impl Sink for Vec<u8> {
    async fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.extend_from_slice(buf);
        Ok(())
    }
}

/// Compresses `data` with the same block-parallel pipeline a backup uses (for the benchmarks).
pub async fn compress_parallel(data: Vec<u8>, level: u32, threads: usize) -> Result<Vec<u8>> {
    let mut sink = Vec::new();
    compress_stream(std::io::Cursor::new(data), &mut sink, level, threads).await?;
    Ok(sink)
}

pub(crate) fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    if data.len() >= KEEP {
        tail.clear();
        tail.extend_from_slice(&data[data.len() - KEEP..]);
    } else {
        tail.extend_from_slice(data);
        if tail.len() > KEEP {
            tail.drain(..tail.len() - KEEP);
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!("INSERT INTO t VALUES ({i}, 'name {}', {});\n", i * 7919 % 1000, i % 13).as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    #[tokio::test]
    async fn round_trips_through_a_multi_member_gzip() {
        for (len, block) in [(0, 1024), (10, 1024), (1024, 1024), (100_003, 4096), (3 * 1024 * 1024 + 5, BLOCK_SIZE)] {
            let data = sample(len);
            let mut sink = Vec::new();
            let stats =
                compress_stream_with_block(std::io::Cursor::new(data.clone()), &mut sink, 6, 3, block).await.unwrap();
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&sink[..]).read_to_end(&mut back).unwrap();
            assert!(back == data, "round trip of {len} bytes");
            assert_eq!(stats.raw_size, len as u64);
            assert_eq!(stats.compressed_size, sink.len() as u64);
            assert_eq!(stats.sha256, hex(&Sha256::digest(&sink)));
            assert_eq!(stats.tail, data[len.saturating_sub(KEEP)..]);
        }
    }

    #[tokio::test]
    async fn sink_errors_end_the_stream() {
        struct Full;
        impl Sink for Full {
            async fn write(&mut self, _: &[u8]) -> Result<()> {
                Err(BackupError::new(ErrorKind::StorageFull, "full"))
            }
        }
        let err = compress_stream(std::io::Cursor::new(sample(100_000)), &mut Full, 1, 2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StorageFull);
    }
}
