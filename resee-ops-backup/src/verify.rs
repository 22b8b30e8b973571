//! Reading an artifact back and proving it is a complete dump; the manifest that marks a backup complete.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use chrono::{DateTime, Utc};
use resee_ops_core::{ArtifactName, BackupTarget};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::codec::{ChannelReader, Codec};
use crate::compress::{KEEP, hex, keep_tail};
use crate::error;
use crate::{BackupError, Result};

/// The line `pg_dump` writes at the end of a complete plain-format dump.
pub const DUMP_TRAILER: &str = "-- PostgreSQL database dump complete";

const DUMP_HEADER: &str = "-- PostgreSQL database dump";

/// The completion marker of a backup, stored as `{artifact}.manifest.json` after the artifact was verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// The artifact this manifest describes.
    pub artifact: String,
    /// The database name component.
    pub database: String,
    /// The environment name component.
    pub environment: String,
    /// SHA-256 of the artifact bytes, hex.
    pub sha256: String,
    /// Size of the artifact in bytes.
    pub compressed_size: u64,
    /// Size of the SQL dump in bytes.
    pub raw_size: u64,
    /// `gzip` or `zstd`.
    pub compression: String,
    /// The compression level used.
    pub level: u32,
    /// Version of the `pg_dump` that wrote it.
    pub pg_dump_version: String,
    /// Version of the server it was dumped from.
    pub server_version: String,
    /// When the attempt that wrote it started.
    pub started_at: DateTime<Utc>,
    /// When it was verified.
    pub finished_at: DateTime<Utc>,
    /// How long the attempt took.
    #[serde(with = "resee_ops_core::serde_duration")]
    pub duration: Duration,
    /// Rows of every table in the dump, counted in the dump stream itself (so exactly pg_dump's snapshot),
    /// keyed by the table's name as the dump writes it (`public.people`, `"Odd schema"."T"`). Absent in
    /// manifests written before row counts were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<BTreeMap<String, u64>>,
}

impl Manifest {
    /// The name of the manifest of `artifact`.
    pub fn name_for(artifact: &ArtifactName) -> Result<ArtifactName> {
        ArtifactName::new(format!("{artifact}.manifest.json"))
    }
}

/// What verification found out about an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// The artifact.
    pub name: ArtifactName,
    /// Its size in bytes.
    pub compressed_size: u64,
    /// The size of the SQL inside.
    pub raw_size: u64,
    /// SHA-256 of the artifact, hex.
    pub sha256: String,
    /// The `pg_dump` version named in the dump header, if any.
    pub pg_dump_version: Option<String>,
    /// The server version named in the dump header, if any.
    pub server_version: Option<String>,
    /// Whether a manifest was found and matched.
    pub manifest_checked: bool,
}

/// Verifies an existing artifact on `target`: full decompression with CRC checks, a `pg_dump` header and the
/// completion trailer present, plausible sizes, and, when `{name}.manifest.json` exists, its SHA-256 and
/// sizes. Catches truncated, bit-flipped and cut-short files.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use resee_ops_backup::verify_artifact;
/// use resee_ops_core::ErrorKind;
/// use resee_ops_core::{ArtifactName, BackupTarget, testing::InMemoryBackupTarget};
///
/// let target = InMemoryBackupTarget::new();
/// let name = ArtifactName::new("x.sql.gz").unwrap();
/// let mut w = target.create(&name).await.unwrap();
/// w.write(b"not gzip at all").await.unwrap();
/// w.commit().await.unwrap();
/// let err = verify_artifact(&target, &name).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Integrity);
/// # });
/// ```
pub async fn verify_artifact(target: &dyn BackupTarget, name: &ArtifactName) -> Result<Verification> {
    let verification = verify_content(target, name).await?;
    let manifest_name = Manifest::name_for(name)?;
    let manifest = match target.open(&manifest_name).await {
        Ok(mut r) => {
            let mut text = Vec::new();
            r.read_to_end(&mut text).await.map_err(|e| BackupError::io(format!("cannot read {manifest_name}"), e))?;
            let m: Manifest = serde_json::from_slice(&text)
                .map_err(|e| error::integrity(format!("{manifest_name} is not a valid manifest: {e}")))?;
            Some(m)
        }
        Err(e) if e.kind() == resee_ops_core::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    match manifest {
        Some(m) => {
            check_expected(&verification, &m.sha256, m.compressed_size, m.raw_size)?;
            Ok(Verification { manifest_checked: true, ..verification })
        }
        None => Ok(verification),
    }
}

pub(crate) fn check_expected(v: &Verification, sha256: &str, compressed: u64, raw: u64) -> Result<()> {
    if v.sha256 != sha256 {
        return Err(error::integrity(format!("{}: SHA-256 {} differs from the expected {sha256}", v.name, v.sha256)));
    }
    if v.compressed_size != compressed || v.raw_size != raw {
        return Err(error::integrity(format!(
            "{}: sizes {} / {} (compressed / raw) differ from the expected {compressed} / {raw}",
            v.name, v.compressed_size, v.raw_size
        )));
    }
    Ok(())
}

/// Reads the artifact back and checks the content on its own (no manifest).
pub(crate) async fn verify_content(target: &dyn BackupTarget, name: &ArtifactName) -> Result<Verification> {
    let codec = Codec::of(name.as_str()).ok_or_else(|| {
        BackupError::new(resee_ops_core::ErrorKind::InvalidInput, format!("{name} is not a .sql.gz or .sql.zst backup"))
    })?;
    let reader = target.open(name).await?;
    verify_stream(reader, name, codec).await
}

/// Reads `reader` to its end and checks it: it decodes with valid checksums, holds a complete dump.
pub(crate) async fn verify_stream(
    mut reader: resee_ops_core::ArtifactReader,
    name: &ArtifactName,
    codec: Codec,
) -> Result<Verification> {
    // Hashing stays here while a blocking thread decodes: two cores, two jobs.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let inflate = tokio::task::spawn_blocking(move || inflate_all(codec, ChannelReader::new(rx)));
    let mut hasher = Sha256::new();
    let mut compressed_size = 0u64;
    let read_result: Result<()> = async {
        loop {
            let mut chunk = vec![0u8; 256 * 1024];
            let n = reader.read(&mut chunk).await.map_err(|e| BackupError::io(format!("cannot read {name}"), e))?;
            if n == 0 {
                return Ok(());
            }
            chunk.truncate(n);
            hasher.update(&chunk);
            compressed_size += n as u64;
            if tx.send(chunk).await.is_err() {
                // The inflater stopped early: its result says why.
                return Ok(());
            }
        }
    }
    .await;
    drop(tx);
    let inflated = inflate
        .await
        .map_err(|e| BackupError::new(resee_ops_core::ErrorKind::Io, format!("verification task failed: {e}")))?;
    read_result?;
    let (raw_size, head, tail) =
        inflated.map_err(|e| error::integrity(format!("{name} is not a valid {} file: {e}", codec.as_str())))?;
    finish_checks(name, compressed_size, raw_size, &head, &tail, hex(&hasher.finalize()))
}

fn finish_checks(
    name: &ArtifactName,
    compressed_size: u64,
    raw_size: u64,
    head: &[u8],
    tail: &[u8],
    sha256: String,
) -> Result<Verification> {
    if compressed_size == 0 {
        return Err(error::integrity(format!("{name} is empty")));
    }
    let head = String::from_utf8_lossy(head);
    if !head.contains(DUMP_HEADER) {
        return Err(error::integrity(format!("{name} does not start like a pg_dump plain-format dump")));
    }
    if !trailer_present(tail) {
        return Err(error::integrity(format!(
            "{name} is incomplete: the dump does not end with {DUMP_TRAILER:?} (pg_dump was cut short)"
        )));
    }
    let field = |prefix: &str| {
        head.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    };
    Ok(Verification {
        name: name.clone(),
        compressed_size,
        raw_size,
        sha256,
        pg_dump_version: field("-- Dumped by pg_dump version "),
        server_version: field("-- Dumped from database version "),
        manifest_checked: false,
    })
}

/// Verifies an artifact this process has just written (read back from its staged copy through `reader`),
/// whose gzip member sizes are known: the same checks as [`verify_content`], with the members inflated on
/// `threads` threads. The SHA-256 over the whole byte stream (compared by the caller) ties the members
/// together.
pub(crate) async fn verify_members(
    mut reader: resee_ops_core::ArtifactReader,
    name: &ArtifactName,
    member_sizes: &[u64],
    threads: usize,
) -> Result<Verification> {
    let mut hasher = Sha256::new();
    let mut compressed_size = 0u64;
    let mut raw_size = 0u64;
    let mut head = Vec::new();
    let mut tail = Vec::with_capacity(2 * KEEP);
    let mut inflight = std::collections::VecDeque::new();
    // Each job's member and output buffers come back with its result, to be used again: the inflated
    // megabyte per member is allocated (and zeroed) once per job slot, not once per member.
    let mut spare: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let corrupt = |what: String| error::integrity(format!("{name} is not a valid gzip file: {what}"));
    let mut collect = |job: Inflated, spare: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<()> {
        let (result, buffers) = job;
        spare.push(buffers);
        let (raw, member_head, member_tail) = result.map_err(|e| corrupt(e.to_string()))?;
        if head.is_empty() {
            head = member_head;
        }
        keep_tail(&mut tail, &member_tail);
        raw_size += raw;
        Ok(())
    };
    for (i, &size) in member_sizes.iter().enumerate() {
        let (mut member, out) = spare.pop().unwrap_or_default();
        member.resize(usize::try_from(size).unwrap_or(usize::MAX), 0);
        reader.read_exact(&mut member).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                error::integrity(format!("{name} is shorter than what was written (member {i})"))
            } else {
                BackupError::io(format!("cannot read {name}"), e)
            }
        })?;
        hasher.update(&member);
        compressed_size += size;
        inflight.push_back(tokio::task::spawn_blocking(move || {
            let mut out = out;
            (inflate_member(&member, &mut out), (member, out))
        }));
        while inflight.len() > threads.max(1) {
            let job = inflight.pop_front().expect("non-empty");
            collect(job.await.map_err(|e| corrupt(format!("verification task failed: {e}")))?, &mut spare)?;
        }
    }
    while let Some(job) = inflight.pop_front() {
        collect(job.await.map_err(|e| corrupt(format!("verification task failed: {e}")))?, &mut spare)?;
    }
    let mut extra = [0u8; 1];
    if reader.read(&mut extra).await.map_err(|e| BackupError::io(format!("cannot read {name}"), e))? != 0 {
        return Err(error::integrity(format!("{name} is longer than what was written")));
    }
    finish_checks(name, compressed_size, raw_size, &head, &tail, hex(&hasher.finalize()))
}

/// An inflated member's raw size, head and tail, with the job's buffers (member, output) for reuse.
type Inflated = (std::io::Result<(u64, Vec<u8>, Vec<u8>)>, (Vec<u8>, Vec<u8>));

/// Inflates exactly one gzip member (CRC and length checked) that must fill `member` to its last byte,
/// into `out` (grown when needed, never shrunk).
/// With libdeflate (whole-buffer, about twice zlib's speed): the member's trailer gives the size to expect,
/// and libdeflate checks the CRC-32 and that size.
fn inflate_member(member: &[u8], out: &mut Vec<u8>) -> std::io::Result<(u64, Vec<u8>, Vec<u8>)> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let isize = member
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes([member[at], member[at + 1], member[at + 2], member[at + 3]]))
        .ok_or_else(|| bad("gzip member too short".into()))?;
    // Our members hold at most one block; a larger claim is damage, not a reason to allocate.
    if isize as usize > 4 * crate::compress::BLOCK_SIZE {
        return Err(bad(format!("gzip member claims {isize} bytes")));
    }
    if out.len() < isize as usize {
        out.resize(isize as usize, 0);
    }
    let out = &mut out[..isize as usize];
    let n = libdeflater::Decompressor::new()
        .gzip_decompress(member, out)
        .map_err(|e| bad(format!("corrupt gzip member: {e:?}")))?;
    if n != out.len() {
        return Err(bad("gzip member length does not match its trailer".into()));
    }
    let head = out[..out.len().min(KEEP)].to_vec();
    let tail = out[out.len().saturating_sub(KEEP)..].to_vec();
    Ok((n as u64, head, tail))
}

/// Reads `decoder` to its end and returns the raw size with the first and last [`KEEP`] bytes (for the
/// header and trailer checks); the decoder checks CRCs and lengths as it goes.
fn drain(decoder: &mut impl Read) -> std::io::Result<(u64, Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut raw = 0u64;
    let mut head = Vec::with_capacity(KEEP);
    let mut tail = Vec::with_capacity(2 * KEEP);
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if head.len() < KEEP {
            let k = (KEEP - head.len()).min(n);
            head.extend_from_slice(&buf[..k]);
        }
        keep_tail(&mut tail, &buf[..n]);
        raw += n as u64;
    }
    Ok((raw, head, tail))
}

/// Whether the end of a dump holds the completion trailer, followed only by blank lines and the
/// `\unrestrict` line of recent releases.
pub(crate) fn trailer_present(tail: &[u8]) -> bool {
    let text = String::from_utf8_lossy(tail);
    let Some(at) = text.rfind(DUMP_TRAILER) else {
        return false;
    };
    let before_ok = at == 0 || text[..at].ends_with('\n');
    let after = &text[at + DUMP_TRAILER.len()..];
    before_ok
        && after.starts_with('\n')
        && after.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l == "--" || l.starts_with("\\unrestrict ")
        })
}

fn inflate_all(codec: Codec, input: ChannelReader) -> std::io::Result<(u64, Vec<u8>, Vec<u8>)> {
    drain(&mut crate::codec::decoder(codec, input)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_detection() {
        assert!(trailer_present(b"x\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n"));
        assert!(trailer_present(b"-- PostgreSQL database dump complete\n\n"));
        assert!(!trailer_present(b"-- PostgreSQL database dump complete\nCOPY t FROM stdin;\n"));
        assert!(!trailer_present(b"INSERT INTO t VALUES (1);\n"));
        assert!(!trailer_present(b"-- PostgreSQL database dump comp"));
    }
}
