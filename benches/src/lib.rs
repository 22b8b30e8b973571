//! Benchmarks of resee-ops: see `benches/benches/` and the scripts beside them.
