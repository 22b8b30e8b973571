//! Helpers shared by the integration tests: real sockets that misbehave.
#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A loopback port that accepts TCP connections and never sends a byte. Accepted sockets are held open
/// for the life of the test process.
pub fn hanging_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            held.lock().unwrap().push(stream);
        }
    });
    port
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

/// A string unique to this call, for Redis keys of one test.
pub fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("resee-test:{tag}:{}:{nanos}", std::process::id())
}

/// `url` with `user:password@` as its userinfo, whatever it had.
pub fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host_part}")
}

/// Asserts `elapsed` lies in `[at_least, at_least + slack]`.
pub fn assert_between(elapsed: Duration, at_least: Duration, slack: Duration) {
    assert!(
        elapsed >= at_least && elapsed <= at_least + slack,
        "took {elapsed:?}, expected between {at_least:?} and {:?}",
        at_least + slack
    );
}
pub mod celery;
