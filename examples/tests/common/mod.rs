//! Helpers of the process-level tests: an example binary run with a clean environment, its collected
//! log, plain HTTP/1.0 requests, and a loopback stand-in for Slack.

#![allow(dead_code, unreachable_pub)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The example binary, built by `cargo test` under `<target>/<profile>/examples/`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p resee-ops-examples` builds it (or `cargo build -p resee-ops-examples --example {name}`)",
        path.display()
    );
    path
}

/// A command with a clean environment: only what the test sets, plus PATH (to find pg_dump) and HOME.
pub fn command(name: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(binary(name));
    cmd.env_clear().current_dir(dir).env("RUST_LOG", "info");
    for keep in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    cmd
}

/// A running service whose stderr is collected.
pub struct Service {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Service {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) for `what` to hold, failing with the log if it does not.
    pub fn wait_for<T>(&mut self, limit: Duration, what: &str, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited ({status}) while waiting for {what}:\n{}", self.log());
            }
            assert!(start.elapsed() < limit, "no {what} within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address from the "listening" log line (`address=...`; the tests bind port 0).
    pub fn address(&mut self) -> SocketAddr {
        self.wait_for(Duration::from_secs(60), "listening line", |s| {
            let log = s.log();
            let line = log.lines().find(|l| l.contains("listening"))?;
            let addr = line.split("address=").nth(1)?.split_whitespace().next()?;
            addr.parse().ok()
        })
    }

    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(Duration::from_secs(30))
    }

    pub fn terminate_within(&mut self, limit: Duration) -> ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < limit, "no exit {limit:?} after SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over plain HTTP/1.0: (status, content type, body).
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    Some((status, content_type, body.to_owned()))
}

/// A loopback stand-in for Slack: answers 503 to the first `failures` requests, then `200 ok`; keeps the
/// bodies it accepted.
pub fn fake_slack(failures: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/services/T0/B0/test", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let sink = accepted.clone();
    std::thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen += 1;
            let response = if seen <= failures {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            } else {
                sink.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (url, accepted)
}

/// `POST path` with an empty body over plain HTTP/1.0: the status.
pub fn post(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}
