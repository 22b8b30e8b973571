//! The zstd profile: the dump streamed through one multithreaded zstd encoder (with content checksums) into
//! the target. zstd's workers compress in parallel on their own; this side only feeds blocks in and moves the
//! compressed output out, both through bounded queues, so memory stays bounded whatever the dump's size.

use std::io::Write;

use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::compress::{BLOCK_SIZE, RawObserver, Sink, StreamStats, hex, spawn_block_reader};
use crate::{BackupError, Result};
use resee_ops_core::ErrorKind;

/// Compressed output is handed over in pieces of this size.
const OUT_CHUNK: usize = 256 * 1024;

/// The match window: 1 MiB (`windowLog` 20). At level 3 zstd would take 2 MiB for a stream of unknown size,
/// and its multithreaded buffers scale with the window; on SQL dumps the smaller window costs little ratio.
pub(crate) const WINDOW_LOG: u32 = 20;
/// Raw bytes per multithreaded job (`jobSize`). zstd's default is four windows (8 MiB at level 3), and it
/// keeps input and output buffers for several jobs per worker: that made the zstd profile's peak RSS.
pub(crate) const JOB_SIZE: u32 = 1024 * 1024;

/// A writer that sends what zstd writes, in [`OUT_CHUNK`] pieces, to the async side.
struct ChunkSender {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK));
        self.tx.blocking_send(chunk).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "sink gone"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(OUT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUT_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Reads `input` to its end, zstd-compresses it at `level` with `workers` threads, and writes the result to
/// `sink`.
pub(crate) async fn compress_stream<R, S>(input: R, sink: &mut S, level: i32, workers: u32) -> Result<StreamStats>
where
    R: AsyncRead + Unpin + Send + 'static,
    S: Sink + Send,
{
    let (mut blocks, reader, recycle) = spawn_block_reader(input, BLOCK_SIZE, 1);
    let (raw_tx, mut raw_rx) = mpsc::channel::<Vec<u8>>(1);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(4);
    let encoder = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut enc = zstd::stream::write::Encoder::new(ChunkSender { tx: out_tx, buf: Vec::new() }, level)?;
        enc.window_log(WINDOW_LOG)?;
        if workers > 1 {
            enc.multithread(workers)?;
            enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(JOB_SIZE))?;
        }
        enc.include_checksum(true)?;
        while let Some(block) = raw_rx.blocking_recv() {
            enc.write_all(&block)?;
            let _ = recycle.try_send(block);
        }
        enc.finish()?.flush()
    });

    let mut observer = RawObserver::default();
    let feed = async {
        let result = loop {
            match blocks.recv().await {
                Some(Ok(block)) => {
                    observer.observe(&block);
                    if raw_tx.send(block).await.is_err() {
                        // The encoder stopped: its result says why.
                        break Ok(());
                    }
                }
                Some(Err(e)) => break Err(BackupError::io("reading the dump stream failed", e)),
                None => break Ok(()),
            }
        };
        drop(raw_tx);
        result
    };
    // The drain owns the receiver: when the sink fails, dropping it stops the encoder, which stops the feed.
    let drain = async move {
        let mut hasher = Sha256::new();
        let mut compressed_size = 0u64;
        while let Some(chunk) = out_rx.recv().await {
            hasher.update(&chunk);
            compressed_size += chunk.len() as u64;
            sink.write(&chunk).await?;
        }
        Ok::<_, BackupError>((hasher, compressed_size))
    };
    let (fed, drained) = tokio::join!(feed, drain);
    reader.abort();
    let encoded =
        encoder.await.map_err(|e| BackupError::new(ErrorKind::Io, format!("compression task failed: {e}")))?;
    fed?;
    let (hasher, compressed_size) = drained?;
    encoded.map_err(|e| BackupError::io("zstd compression failed", e))?;
    let mut stats = observer.finish();
    stats.compressed_size = compressed_size;
    stats.sha256 = hex(&hasher.finalize());
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trips_and_counts() {
        for len in [0usize, 10, 3 * 1024 * 1024 + 7] {
            let data: Vec<u8> = (0..len).map(|i| b"COPY t;\nabc\n"[i % 12]).collect();
            let mut sink = Vec::new();
            let stats = compress_stream(std::io::Cursor::new(data.clone()), &mut sink, 3, 2).await.unwrap();
            let mut back = Vec::new();
            zstd::stream::read::Decoder::new(&sink[..]).unwrap().read_to_end(&mut back).unwrap();
            assert!(back == data, "round trip of {len} bytes");
            assert_eq!((stats.raw_size, stats.compressed_size), (len as u64, sink.len() as u64));
            assert_eq!(stats.sha256, hex(&Sha256::digest(&sink)));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sink_errors_end_the_stream() {
        struct Full;
        impl Sink for Full {
            async fn write(&mut self, _: &[u8]) -> Result<()> {
                Err(BackupError::new(ErrorKind::StorageFull, "full"))
            }
        }
        let data = vec![7u8; 4 * 1024 * 1024];
        let err = compress_stream(std::io::Cursor::new(data), &mut Full, 1, 2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StorageFull);
    }
}
