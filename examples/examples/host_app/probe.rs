//! A custom `HealthProbe`: an HTTP dependency of the host (a payment provider's status URL, another
//! internal service) answers `GET` with a 2xx within its timeout.
//!
//! Plain HTTP/1.1 over a tokio `TcpStream`, so the host needs no HTTP client for it; a host that has one
//! (reqwest) would use it here instead. The rules every probe keeps (core's `health_probe` conformance
//! suite checks them, see `examples/tests/host_app.rs`): `check` bounds its own work by its timeout, never
//! panics, and says nothing secret (the URL may not carry credentials, and outputs name only host and port).

use std::time::Duration;

use resee_ops_core::prelude::*;
use tokio::net::TcpStream;

/// `GET http://host:port/path` answers 2xx within the timeout.
#[derive(Debug, Clone)]
pub(crate) struct HttpDependency {
    name: String,
    authority: String,
    path: String,
    timeout: Duration,
}

impl HttpDependency {
    /// A probe called `name` of `url` (`http://host:port/path`; no credentials), 2 s timeout.
    pub(crate) fn new(name: impl Into<String>, url: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::new(ErrorKind::InvalidConfig, format!("dependency URL: {why}"));
        let rest = url.strip_prefix("http://").ok_or_else(|| invalid("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(invalid("credentials do not belong in a health check URL"));
        }
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        Ok(Self { name: name.into(), authority, path: path.to_owned(), timeout: Duration::from_secs(2) })
    }

    /// Sets the timeout of one check (connect, request and response together).
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The status code of one `GET`.
    async fn get(&self) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(&self.authority).await?;
        let host = &self.authority;
        let request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", self.path);
        stream.write_all(request.as_bytes()).await?;
        // The status line is all we need: `HTTP/1.1 200 OK`.
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            match stream.read(&mut head[read..]).await? {
                0 => break,
                n => read += n,
            }
        }
        let line = String::from_utf8_lossy(&head[..read]);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
    }
}

#[async_trait]
impl HealthProbe for HttpDependency {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> ProbeOutcome {
        let started = tokio::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, self.get()).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let at = &self.authority;
        match answer {
            Ok(Ok(code)) if (200..300).contains(&code) => ProbeOutcome::up().with_observed(ms.round(), "ms"),
            Ok(Ok(code)) => ProbeOutcome::down(format!("{at} answered HTTP {code}")),
            Ok(Err(e)) => ProbeOutcome::down(format!("{at}: {e}")),
            Err(_) => ProbeOutcome::down(format!("{at} did not answer within {} ms", self.timeout.as_millis())),
        }
    }

    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        if resolved {
            ProbeAlertText::new(format!("{} reachable again", self.name))
        } else {
            let text = outcome.output.clone().unwrap_or_default();
            ProbeAlertText::new(format!("{} unreachable", self.name)).with_text(text)
        }
    }
}
