//! Reference deployments of resee-ops: see `examples/`.
