//! Block-parallel gzip: the input is cut into blocks, each compressed on its own thread into a complete gzip
//! member, and the members are written in order. A sequence of members is a valid gzip file (RFC 1952 §2.2)
//! that `gunzip`, `gzip -t` and `zcat` read as one stream; this is what `pigz --independent` does.
//!
//! Memory is bounded whatever the input size: one block being filled, `threads` blocks queued, `threads`
//! blocks compressing.

use std::collections::VecDeque;
use std::io::Write as _;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use resee_ops_core::ErrorKind;

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
    pub(crate) head: Vec<u8>,
    pub(crate) tail: Vec<u8>,
    /// Compressed size of each gzip member, in order (lets verification inflate members in parallel).
    pub(crate) member_sizes: Vec<u64>,
}

/// Something that accepts the compressed stream.
pub(crate) trait Sink {
    /// Appends bytes.
    fn write(&mut self, buf: &[u8]) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Compresses one block into one gzip member.
pub fn compress_block(block: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut enc =
        flate2::write::GzEncoder::new(Vec::with_capacity(block.len() / 4 + 64), flate2::Compression::new(level));
    enc.write_all(block)?;
    enc.finish()
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
    mut input: R,
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
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(threads);
    // The reader runs on its own so that the producer (pg_dump) never waits for a block to be compressed
    // or written, only for the bounded queue.
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

    let mut stats = StreamStats {
        raw_size: 0,
        compressed_size: 0,
        sha256: String::new(),
        head: Vec::with_capacity(KEEP),
        tail: Vec::with_capacity(2 * KEEP),
        member_sizes: Vec::new(),
    };
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
            stats.raw_size += block.len() as u64;
            if stats.head.len() < KEEP {
                let n = (KEEP - stats.head.len()).min(block.len());
                stats.head.extend_from_slice(&block[..n]);
            }
            keep_tail(&mut stats.tail, &block);
            members += 1;
            inflight.push_back(tokio::task::spawn_blocking(move || compress_block(&block, level)));
            while inflight.len() >= threads {
                let job = inflight.pop_front().expect("non-empty");
                write_member(job, sink, &mut hasher, &mut stats).await?;
            }
        }
        if members == 0 {
            // Empty input: still write a valid (empty) gzip file.
            inflight.push_back(tokio::task::spawn_blocking(move || compress_block(&[], level)));
        }
        while let Some(job) = inflight.pop_front() {
            write_member(job, sink, &mut hasher, &mut stats).await?;
        }
        Ok(())
    }
    .await;
    drop(rx);
    reader.abort();
    outcome?;
    stats.sha256 = hex(&hasher.finalize());
    Ok(stats)
}

async fn write_member<S: Sink + Send>(
    job: tokio::task::JoinHandle<std::io::Result<Vec<u8>>>,
    sink: &mut S,
    hasher: &mut Sha256,
    stats: &mut StreamStats,
) -> Result<()> {
    let member = job
        .await
        .map_err(|e| BackupError::new(ErrorKind::Io, format!("compression task failed: {e}")))?
        .map_err(|e| BackupError::io("compression failed", e))?;
    hasher.update(&member);
    stats.compressed_size += member.len() as u64;
    stats.member_sizes.push(member.len() as u64);
    sink.write(&member).await
}

/// Compresses `data` with the same block-parallel pipeline a backup uses (for the benchmarks).
pub async fn compress_parallel(data: Vec<u8>, level: u32, threads: usize) -> Result<Vec<u8>> {
    struct VecSink(Vec<u8>);
    impl Sink for VecSink {
        async fn write(&mut self, buf: &[u8]) -> Result<()> {
            self.0.extend_from_slice(buf);
            Ok(())
        }
    }
    let mut sink = VecSink(Vec::new());
    compress_stream(std::io::Cursor::new(data), &mut sink, level, threads).await?;
    Ok(sink.0)
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

    struct VecSink(Vec<u8>);

    impl Sink for VecSink {
        async fn write(&mut self, buf: &[u8]) -> Result<()> {
            self.0.extend_from_slice(buf);
            Ok(())
        }
    }

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
            let mut sink = VecSink(Vec::new());
            let stats =
                compress_stream_with_block(std::io::Cursor::new(data.clone()), &mut sink, 6, 3, block).await.unwrap();
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&sink.0[..]).read_to_end(&mut back).unwrap();
            assert!(back == data, "round trip of {len} bytes");
            assert_eq!(stats.raw_size, len as u64);
            assert_eq!(stats.compressed_size, sink.0.len() as u64);
            assert_eq!(stats.sha256, hex(&Sha256::digest(&sink.0)));
            assert_eq!(stats.head, data[..len.min(KEEP)]);
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
