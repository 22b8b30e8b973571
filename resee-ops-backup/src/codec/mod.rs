//! The compressed formats a backup can have, and reading them back.
//!
//! - gzip (`.sql.gz`, the default): block-parallel members (see `compress.rs`), encoded with libdeflate.
//! - zstd (`.sql.zst`): one multithreaded zstd stream with content checksums ([`zstd_stream`]).
//!
//! Both are decoded in-process for verification and restore by [`decoder`].

pub(crate) mod rows;
pub(crate) mod zstd_stream;

use std::io::Read;

/// A backup's compressed format, known from its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    /// The codec of an artifact name, by its extension.
    pub(crate) fn of(name: &str) -> Option<Self> {
        if name.ends_with(".sql.gz") {
            Some(Self::Gzip)
        } else if name.ends_with(".sql.zst") {
            Some(Self::Zstd)
        } else {
            None
        }
    }

    pub(crate) const fn extension(self) -> &'static str {
        match self {
            Self::Gzip => ".sql.gz",
            Self::Zstd => ".sql.zst",
        }
    }

    /// The name in manifests (`gzip`, `zstd`).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// A reader of the SQL inside `input` (checksums checked as it goes: gzip CRC-32 and length per member, zstd
/// content checksums).
pub(crate) fn decoder<'a>(codec: Codec, input: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        Codec::Gzip => {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(256 * 1024, input)))
        }
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
    })
}

/// A blocking [`Read`] over chunks sent from async code (the compressed bytes read from a target).
#[derive(Debug)]
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        Self { rx, buf: Vec::new(), pos: 0 }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
