//! What the integration tests share: a console that records, file readers, a tmpfs mount.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resee_ops_logging::{LogGuard, Logging, LoggingConfig};

pub const WAIT: Duration = Duration::from_secs(30);

/// A console writer whose output the test can read.
#[derive(Clone, Default)]
pub struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds `config` with a recording console.
pub fn build(config: LoggingConfig) -> (tracing::Dispatch, LogGuard, Console) {
    let console = Console::default();
    let (dispatch, guard) = Logging::new(config).with_console_writer(console.clone()).build().expect("logging");
    (dispatch, guard, console)
}

/// The lines of `dir/file`, none if it does not exist.
pub fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file)).map(|s| s.lines().map(str::to_owned).collect()).unwrap_or_default()
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A tmpfs mounted for the length of a test (root only); unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `options` (e.g. `size=256k` or `ro`) on `dir`; `None` when mounting is not possible
    /// here (not root, or no permission to mount in this container), with the reason printed.
    pub fn mount(dir: &Path, options: &str) -> Option<Self> {
        if !is_root() {
            println!("not root: using the fallback instead of a tmpfs");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir).output().ok()?;
        if !out.status.success() {
            println!("cannot mount a tmpfs ({}): using the fallback", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
