//! Backup CPU work on SQL-like text: gzip of one member (one thread), the block-parallel pipeline a backup
//! uses (1 and 2 threads, levels 6 and 1), and verification (read back, inflate, CRC, SHA-256, trailer).
//!
//! The end-to-end comparison with `pg_dump | gzip` and `pigz` lives in `benches/scripts/backup_vs_shell.sh`.

use resee_ops_benches::runtime;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resee_ops_backup::__bench::{compress_block, compress_parallel};
use resee_ops_backup::verify_artifact;
use resee_ops_core::testing::InMemoryBackupTarget;
use resee_ops_core::{ArtifactName, BackupTarget};

/// A plain-format dump of `bytes` bytes: COPY rows of ids, words, hashes, timestamps and numbers.
fn sql_text(bytes: usize) -> Vec<u8> {
    const WORDS: [&str; 12] =
        ["alpha", "beta", "gamma", "review", "card", "deck", "naïve", "café", "日本語", "learned", "due", "easy"];
    let mut out = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.20\n\
        -- Dumped by pg_dump version 15.20\n\nCOPY public.cards (id, front, back, hash, due, ease) FROM stdin;\n"
        .to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut i = 0u64;
    let trailer = b"\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
    while out.len() + trailer.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = |k: u64| WORDS[(k % WORDS.len() as u64) as usize];
        out.extend_from_slice(
            format!(
                "{i}\t{} {} {}\t{} {}\t{:016x}{:08x}\t2025-{:02}-{:02} {:02}:{:02}:00+00\t{}.{}\n",
                w(x),
                w(x >> 8),
                w(x >> 16),
                w(x >> 24),
                w(x >> 32),
                x,
                x >> 40,
                1 + (x >> 3) % 12,
                1 + (x >> 9) % 28,
                (x >> 5) % 24,
                (x >> 11) % 60,
                130 + (x >> 21) % 200,
                x % 100
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.extend_from_slice(trailer);
    out
}

fn compress(c: &mut Criterion) {
    let rt = runtime();
    let data = sql_text(16 * 1024 * 1024);
    let block = &data[..1024 * 1024];
    let mut g = c.benchmark_group("compress");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.bench_function("gzip6_one_member_1MiB", |b| b.iter(|| compress_block(black_box(block), 6).unwrap()));
    g.throughput(Throughput::Bytes(data.len() as u64));
    for (level, threads) in [(6, 1), (6, 2), (1, 2)] {
        g.bench_function(format!("pipeline_gzip{level}_{threads}threads_16MiB"), |b| {
            b.to_async(&rt).iter(|| compress_parallel(black_box(data.clone()), level, threads))
        });
    }
    g.finish();

    let gz = rt.block_on(compress_parallel(data.clone(), 6, 2)).unwrap();
    let single = compress_block(&data, 6).unwrap();
    println!(
        "ratio on {} MiB of SQL text: block-parallel {:.2}, single stream {:.2} ({:+.2} % size)",
        data.len() >> 20,
        data.len() as f64 / gz.len() as f64,
        data.len() as f64 / single.len() as f64,
        (gz.len() as f64 / single.len() as f64 - 1.0) * 100.0
    );
}

fn verify(c: &mut Criterion) {
    let rt = runtime();
    let data = sql_text(16 * 1024 * 1024);
    let gz = rt.block_on(compress_parallel(data.clone(), 6, 2)).unwrap();
    let target = InMemoryBackupTarget::new();
    let name = ArtifactName::new("bench_verify.sql.gz").unwrap();
    rt.block_on(async {
        let mut w = target.create(&name).await.unwrap();
        w.write(&gz).await.unwrap();
        w.commit().await.unwrap();
    });
    let mut g = c.benchmark_group("verify");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("verify_artifact_16MiB_raw", |b| {
        b.to_async(&rt).iter(|| async { verify_artifact(&target, &name).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, compress, verify);
criterion_main!(benches);
