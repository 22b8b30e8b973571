//! Real Celery workers for the tests: found, started in their own process group, stopped on drop (also when
//! the test panics) and by a watcher when the test process dies.
//!
//! Python with Celery 5 is looked up in this order: `RESEE_TEST_CELERY_PYTHON`; the workspace's
//! `.venv-test/bin/python` (made by `scripts/test.sh`); a `python3` on `PATH` that can `import celery`.
//! If none works the test FAILS with a message naming the fix: it never skips.
//!
//! Also used by the Celery bench (`benches/benches/celery.rs`), so paths are taken from the workspace root.
#![allow(dead_code, unreachable_pub)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// The workspace root (every crate sits one level below it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory holding `resee_celery_app.py`.
fn fixtures() -> PathBuf {
    workspace().join("resee-ops-monitor").join("tests").join("fixtures")
}

fn celery_version(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import celery, redis, packaging; print(celery.__version__)"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import celery and redis: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version.starts_with("5.") {
        Ok(version)
    } else {
        Err(format!("{} has Celery {version}, not 5.x", python.display()))
    }
}

/// A python that can run Celery 5 workers; panics naming the fix when there is none.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let mut tried = Vec::new();
        let mut candidates = Vec::new();
        if let Ok(p) = std::env::var("RESEE_TEST_CELERY_PYTHON")
            && !p.trim().is_empty()
        {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(workspace().join(".venv-test/bin/python"));
        candidates.push(PathBuf::from("python3"));
        for c in candidates {
            match celery_version(&c) {
                Ok(_) => return c,
                Err(why) => tried.push(why),
            }
        }
        panic!(
            "no Python with Celery 5 for the Celery tests ({}). Fix: run `scripts/test.sh` (it creates .venv-test/ \
             with `pip install celery==5.7.0 redis==8.1.0 packaging`), or set RESEE_TEST_CELERY_PYTHON to a python that \
             can `import celery, redis, packaging` (Debian: `apt-get install python3-celery python3-redis python3-packaging`).",
            tried.join("; ")
        )
    })
}

/// The broker options of one test: its Redis URL (database included) and transport options.
#[derive(Clone, Debug, Default)]
pub struct Broker {
    pub url: String,
    pub prefix: String,
    pub sep: Option<String>,
    pub steps: Option<Vec<u8>>,
    /// Celery's `control_exchange` (default `celery`).
    pub control_exchange: Option<String>,
}

impl Broker {
    fn envs(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("RESEE_CELERY_BROKER", self.url.clone()), ("RESEE_CELERY_PREFIX", self.prefix.clone())];
        if let Some(sep) = &self.sep {
            env.push(("RESEE_CELERY_SEP", sep.clone()));
        }
        if let Some(steps) = &self.steps {
            env.push(("RESEE_CELERY_STEPS", steps.iter().map(u8::to_string).collect::<Vec<_>>().join(",")));
        }
        if let Some(exchange) = &self.control_exchange {
            env.push(("RESEE_CELERY_CONTROL_EXCHANGE", exchange.clone()));
        }
        env
    }

    /// Runs `resee_celery_app.py ARGS` to completion (enqueueing, Celery's own ping) and returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg("resee_celery_app.py")
            .args(args)
            .current_dir(fixtures())
            .envs(self.envs())
            .stdin(Stdio::null())
            .output()
            .expect("run python");
        assert!(out.status.success(), "python {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a `--pool=solo` worker named `name` consuming `queue` and waits until it is ready.
    pub fn worker(&self, name: &str, queue: &str) -> Worker {
        Worker::start(self, name, queue)
    }
}

/// A running Celery worker, in its own process group; dropping it stops the group.
#[derive(Debug)]
pub struct Worker {
    pub name: String,
    shell: Child,
    log: PathBuf,
}

impl Worker {
    fn start(broker: &Broker, name: &str, queue: &str) -> Self {
        let log = std::env::temp_dir().join(format!(
            "resee-celery-{}-{}-{}.log",
            std::process::id(),
            name.replace(['@', '/'], "_"),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        // The shell reaps the worker, passes SIGTERM on, and kills it when this test process goes away,
        // however it goes.
        let script = format!(
            "trap 'kill -TERM $w 2>/dev/null; wait $w; exit 0' TERM INT; \
             '{python}' -m celery -A resee_celery_app worker --pool=solo -n '{name}' -Q '{queue}' -l info \
             --without-mingle --without-gossip >'{log}' 2>&1 & w=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; \
             kill -KILL $w 2>/dev/null; wait $w",
            python = python().display(),
            parent = std::process::id(),
            log = log.display(),
        );
        let shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(fixtures())
            .envs(broker.envs())
            .env("C_FORCE_ROOT", "1")
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let worker = Self { name: name.to_owned(), shell, log };
        worker.wait_ready();
        worker
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(&format!("{} ready.", self.name)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "Celery worker {} not ready within 90 s; its log:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The worker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.shell.id() as i32).expect("a pid")
    }
}

impl Drop for Worker {
    /// SIGTERM to the group (Celery's warm shutdown), SIGKILL after 10 s; waits until the shell, which reaps
    /// the worker, has exited.
    fn drop(&mut self) {
        let pgid = self.pgid();
        let _ = kill_process_group(pgid, Signal::TERM);
        let started = Instant::now();
        while matches!(self.shell.try_wait(), Ok(None)) {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = kill_process_group(pgid, Signal::KILL);
                let _ = self.shell.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
