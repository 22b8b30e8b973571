//! Core's [prelude](resee_ops_core::prelude) plus the backup, its local target, retention and restore:
//! `use resee_ops_backup::prelude::*;`.

pub use resee_ops_core::prelude::*;

pub use crate::{
    BackupConfig, BackupOutcome, CompressionProfile, LocalDirTarget, PgDumpBackup, Restorer, RetentionPolicy,
};
