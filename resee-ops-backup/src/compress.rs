//! Block-parallel gzip: the input is cut into blocks, each compressed on its own thread into a complete gzip
//! member, and the members are written in order. A sequence of members is a valid gzip file (RFC 1952 §2.2)
//! that `gunzip`, `gzip -t` and `zcat` read as one stream; this is what `pigz --independent` does.
//!
//! Memory is bounded whatever the input size: one block being filled, `threads` blocks queued, `threads`
//! blocks compressing.

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

/// Reads `input` in blocks of `block_size` on its own task, so that the producer (`pg_dump`) never waits for
/// a block to be compressed or written, only for the bounded queue of `depth` blocks. The last block is
/// shorter than `block_size` (possibly empty); a read error ends the stream.
pub(crate) fn spawn_block_reader<R>(
    mut input: R,
    block_size: usize,
    depth: usize,
) -> (mpsc::Receiver<std::io::Result<Vec<u8>>>, tokio::task::JoinHandle<()>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(depth.max(1));
    let reader = tokio::spawn(async move {
        loop {
            let mut block = vec![0u8; block_size];
            let mut filled = 0;
            let result = loop {
                if filled == block.len() {
                    break Ok(());
                }
                match input.read(&mut block[filled..]).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            block.truncate(filled);
            let done = filled < block_size;
            let item = result.map(|()| block);
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed || done {
                return;
            }
        }
    });
    (rx, reader)
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
    let (mut rx, reader) = spawn_block_reader(input, block_size, threads);
    let mut observer = RawObserver::default();
    let mut member_sizes = Vec::new();
    let mut hasher = Sha256::new();
    let mut inflight: VecDeque<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>> = VecDeque::new();
    let mut members = 0u64;

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
            inflight.push_back(tokio::task::spawn_blocking(move || compress_block(&block, level)));
            while inflight.len() >= threads {
                let job = inflight.pop_front().expect("non-empty");
                write_member(job, sink, &mut hasher, &mut member_sizes).await?;
            }
        }
        if members == 0 {
            // Empty input: still write a valid (empty) gzip file.
            inflight.push_back(tokio::task::spawn_blocking(move || compress_block(&[], level)));
        }
        while let Some(job) = inflight.pop_front() {
            write_member(job, sink, &mut hasher, &mut member_sizes).await?;
        }
        Ok(())
    }
    .await;
    drop(rx);
    reader.abort();
    outcome?;
    let mut stats = observer.finish();
    stats.compressed_size = member_sizes.iter().sum();
    stats.member_sizes = member_sizes;
    stats.sha256 = hex(&hasher.finalize());
    Ok(stats)
}

async fn write_member<S: Sink + Send>(
    job: tokio::task::JoinHandle<std::io::Result<Vec<u8>>>,
    sink: &mut S,
    hasher: &mut Sha256,
    member_sizes: &mut Vec<u64>,
) -> Result<()> {
    let member = job
        .await
        .map_err(|e| BackupError::new(ErrorKind::Io, format!("compression task failed: {e}")))?
        .map_err(|e| BackupError::io("compression failed", e))?;
    hasher.update(&member);
    member_sizes.push(member.len() as u64);
    sink.write(&member).await
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
