//! Timeouts that measure silence, not duration, what a failed transfer is called, and the
//! retry policy: how often a request is tried ([`MAX_ATTEMPTS`]), how long to wait between
//! tries (`Retry-After`, or backing off), and downloads fetched again from their start.
//!
//! Every request runs under a watchdog: it fails when nothing moved for the stall timeout
//! (30 s, or `KUBECTL_KO_STALL_TIMEOUT` seconds). "Moving" is a chunk of the request body
//! taken by the connection, the response headers arriving, or a chunk of the response body
//! arriving; so an upload or download that keeps moving never times out, however long it
//! takes, and the wait for an answer after the body is sent is bounded by the same timeout.
//!
//! The connection takes body chunks as fast as the kernel's send buffer has room, and on a
//! slow link that buffer can hold many seconds of data, which then goes out while nothing
//! seems to move. So a request that sent a body gets, on top of the stall timeout, the time
//! its buffered bytes need at a slow link's pace ([`drain_allowance`]: at most 4 MiB at
//! 64 KiB/s, 64 s). Meanwhile the kernel watches that the peer keeps acknowledging what was
//! sent (`TCP_USER_TIMEOUT`, set to the stall timeout), so a link that dies then is still
//! caught within the stall timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;

use super::{RegistryClient, RegistryError, Repository};
use crate::digest::Digest;
use crate::output;
use crate::settings::Environment;

/// The environment variable that sets the stall timeout in seconds.
pub const STALL_TIMEOUT_ENV: &str = "KUBECTL_KO_STALL_TIMEOUT";
/// The stall timeout when the variable is unset.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// The stall timeout `KUBECTL_KO_STALL_TIMEOUT` sets in `env` (seconds, more than 0 and at
/// most a day), else [`DEFAULT_STALL`]; a bad value is an error that names it.
pub fn stall_timeout(env: &Environment) -> Result<Duration, RegistryError> {
    match env.trimmed(STALL_TIMEOUT_ENV) {
        None => Ok(DEFAULT_STALL),
        Some(v) => match v.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
            _ => Err(RegistryError::StallTimeout { value: env.text(STALL_TIMEOUT_ENV).unwrap_or(v).to_string() }),
        },
    }
}

/// Seconds, as a person writes them: `30 s`, `1.5 s`.
pub fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 { format!("{secs:.0} s") } else { format!("{secs:.1} s") }
}

/// When a request last moved. Touching it costs one clock read and one atomic store.
pub(super) struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    /// Request body bytes the connection has taken.
    sent: AtomicU64,
}

/// The most a kernel is assumed to buffer of a request body (Linux's largest automatic send
/// buffer, `tcp_wmem`), and the slowest link it is assumed to drain at.
const BUFFERED_MAX: u64 = 4 << 20;
const SLOW_LINK_BYTES_PER_SEC: u64 = 64 << 10;

/// How long the bytes a connection took may still be on their way (see the module docs).
pub(super) fn drain_allowance(sent: u64) -> Duration {
    Duration::from_millis(sent.min(BUFFERED_MAX) * 1000 / SLOW_LINK_BYTES_PER_SEC)
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity { origin: Instant::now(), last_ms: AtomicU64::new(0), sent: AtomicU64::new(0) })
    }

    pub(super) fn touch(&self) {
        self.last_ms.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.touch();
    }

    /// Completes once nothing has moved for `limit` (plus the drain allowance of a body).
    pub(super) async fn silence(&self, limit: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit + drain_allowance(self.sent.load(Ordering::Relaxed));
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }

    /// A request body from a stream of chunks, each one marking progress as the connection takes it.
    pub(super) fn body<S>(self: &Arc<Self>, stream: S) -> reqwest::Body
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let activity = self.clone();
        reqwest::Body::wrap_stream(stream.map(move |chunk| {
            if let Ok(bytes) = &chunk {
                activity.sent(bytes.len());
            }
            chunk
        }))
    }

    /// A request body from bytes in memory, sent in pieces so a slow link shows progress.
    pub(super) fn bytes_body(self: &Arc<Self>, bytes: Bytes) -> reqwest::Body {
        const PIECE: usize = 64 * 1024;
        if bytes.len() <= PIECE {
            return reqwest::Body::from(bytes);
        }
        let pieces = (0..bytes.len()).step_by(PIECE).map(move |at| Ok(bytes.slice(at..(at + PIECE).min(bytes.len()))));
        self.body(futures_util::stream::iter(pieces.collect::<Vec<_>>()))
    }
}

/// The rustls error in `error`, also inside io::Errors (whose `source()` skips the error they
/// wrap, so walking the sources does not meet it).
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let io = error.downcast_ref::<std::io::Error>()?;
    let inner: &(dyn std::error::Error + 'static) = io.get_ref()?;
    rustls_error(inner)
}

/// Why a request or a transfer failed below HTTP, in the words a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// Nothing listens at the address.
    Refused,
    /// The host name does not resolve.
    Dns(String),
    /// The TLS handshake failed (often a certificate the client does not trust).
    Tls(String),
    /// The registry answered the TLS handshake in plain HTTP.
    PlainHttp,
    /// The connection could not be set up in time.
    ConnectTimeout,
    /// The registry reset the connection.
    Reset,
    /// The registry closed the connection before the message was complete.
    Closed,
    /// Nothing moved for the stall timeout.
    Stalled(Duration),
    /// The request could not even be made (an invalid URL): retrying cannot help.
    BadUrl(String),
    /// The body went on past what such an answer can be (bytes): not read further.
    TooLarge(usize),
    Other(String),
}

impl Failure {
    /// True for failures that happen before the registry ever answers: it may not be there.
    pub(super) fn is_connect(&self) -> bool {
        matches!(
            self,
            Failure::Refused
                | Failure::Dns(_)
                | Failure::Tls(_)
                | Failure::PlainHttp
                | Failure::ConnectTimeout
                | Failure::BadUrl(_)
        )
    }

    pub(super) fn is_stall(&self) -> bool {
        matches!(self, Failure::Stalled(_))
    }

    /// What happened, in a few words.
    pub(super) fn describe(&self) -> String {
        match self {
            Failure::Refused => "connection refused".into(),
            Failure::Dns(cause) => format!("the host name does not resolve ({cause})"),
            Failure::Tls(cause) => format!("TLS handshake failed ({cause})"),
            Failure::PlainHttp => "it answers in plain HTTP, not HTTPS".into(),
            Failure::ConnectTimeout => "no connection could be set up within 15 s".into(),
            Failure::Reset => "the registry reset the connection".into(),
            Failure::Closed => "the registry closed the connection before the transfer was complete".into(),
            Failure::Stalled(limit) => {
                format!("the registry stopped answering (nothing moved for {})", seconds(*limit))
            }
            Failure::BadUrl(cause) => format!("not a valid address ({cause})"),
            Failure::TooLarge(max) => {
                format!("the answer went on past {} MiB, more than such an answer can be", max >> 20)
            }
            Failure::Other(cause) => cause.clone(),
        }
    }

    /// What to do about a failure to connect.
    pub(super) fn hint(&self) -> &'static str {
        match self {
            Failure::Refused => "nothing listens there: check the address and port, or start the registry",
            Failure::Dns(_) => "check the registry's host name and your DNS",
            Failure::Tls(_) => {
                "trust the registry's CA with --registry-ca-file or SSL_CERT_FILE, or skip the check with --insecure-registry"
            }
            Failure::PlainHttp => {
                "pass --insecure-registry to talk plain HTTP to it (kubectl ko does so by itself only for registries on this machine)"
            }
            Failure::ConnectTimeout => "check the address, and that no firewall drops the connection",
            Failure::BadUrl(_) => "check the registry name",
            _ => "check the registry and the network between you",
        }
    }

    /// Classifies a transport error by its causes.
    pub(super) fn of(error: &reqwest::Error) -> Failure {
        if error.is_builder() {
            return Failure::BadUrl(error.to_string());
        }
        let mut cause: &dyn std::error::Error = error;
        let mut text = error.to_string();
        loop {
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return Failure::Refused,
                    std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe => return Failure::Reset,
                    std::io::ErrorKind::UnexpectedEof => return Failure::Closed,
                    _ => {}
                }
            }
            if let Some(tls) = rustls_error(cause) {
                if matches!(tls, rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) {
                    return Failure::PlainHttp;
                }
                return Failure::Tls(tls.to_string());
            }
            match cause.source() {
                Some(next) => {
                    text = next.to_string();
                    cause = next;
                }
                None => break,
            }
        }
        let lower = text.to_lowercase();
        let chain = format!("{error:?}").to_lowercase();
        if error.is_timeout() {
            Failure::ConnectTimeout
        } else if chain.contains("dns error") || lower.contains("failed to lookup address") {
            Failure::Dns(text)
        } else if lower.contains("certificate") || chain.contains("invalidcertificate") {
            Failure::Tls(text)
        } else if chain.contains("incompletemessage")
            || lower.contains("connection closed before message completed")
            || lower.contains("end of file before message length reached")
        {
            Failure::Closed
        } else if lower.contains("connection reset") || lower.contains("broken pipe") {
            Failure::Reset
        } else if lower.contains("connection refused") {
            Failure::Refused
        } else {
            Failure::Other(text)
        }
    }
}

/// "after 1 attempt", "after 4 attempts".
pub fn after_attempts(attempts: u32) -> String {
    if attempts == 1 { "after 1 attempt".into() } else { format!("after {attempts} attempts") }
}

/// The next chunk of a response body, or `Stalled` when none arrives within `limit`.
pub(super) async fn next_chunk<S>(stream: &mut S, limit: Duration) -> Result<Option<Bytes>, Failure>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    match tokio::time::timeout(limit, stream.next()).await {
        Err(_) => Err(Failure::Stalled(limit)),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(Failure::of(&e)),
    }
}

/// The most a manifest, an index or a referrers list is read to (as ko reads them).
pub(super) const MANIFEST_MAX: usize = 100 << 20;
/// The most a token answer is read to.
pub(super) const TOKEN_MAX: usize = 4 << 20;
/// What is read of an error's body: enough for any message, however long the body goes on.
pub(super) const ERROR_BODY_MAX: usize = 64 << 10;

/// A whole (small) response body of at most `max` bytes, with the same stall rule; a body
/// that goes on past it fails (a registry that sends without end would fill the memory).
pub(super) async fn read_body(response: reqwest::Response, limit: Duration, max: usize) -> Result<Bytes, Failure> {
    let mut stream = response.bytes_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = next_chunk(&mut stream, limit).await? {
        if out.len() + chunk.len() > max {
            return Err(Failure::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// The first [`ERROR_BODY_MAX`] bytes of an error's body; what follows is not read.
pub(super) async fn read_error_body(response: reqwest::Response, limit: Duration) -> Bytes {
    let mut stream = response.bytes_stream();
    let mut out = bytes::BytesMut::new();
    while let Ok(Some(chunk)) = next_chunk(&mut stream, limit).await {
        let room = ERROR_BODY_MAX - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() == ERROR_BODY_MAX {
            break;
        }
    }
    out.freeze()
}

/// Sends a request with no streamed body, bounded by `limit` until its headers arrive.
pub(super) async fn send(request: reqwest::RequestBuilder, limit: Duration) -> Result<reqwest::Response, Failure> {
    match tokio::time::timeout(limit, request.send()).await {
        Err(_) => Err(Failure::Stalled(limit)),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(Failure::of(&e)),
    }
}

/// Attempts per request: the first and three retries.
pub(super) const MAX_ATTEMPTS: u32 = 4;

pub(super) fn retry_delay(attempt: u32, response: Option<&reqwest::Response>) -> Duration {
    let header = response.and_then(|r| r.headers().get(RETRY_AFTER)).and_then(|v| v.to_str().ok());
    match header.and_then(|v| retry_after(v, jiff::Timestamp::now())) {
        Some(wait) => wait.min(Duration::from_secs(30)),
        None => Duration::from_millis(250 * 2u64.pow(attempt.saturating_sub(1))),
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (RFC 9110 allows both; a rate limiter may
/// send either), as the time from `now` until then (none for a date already past).
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

pub(super) fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A short pause that differs between processes, so that racing uploads drift apart.
pub(crate) fn jitter() -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    Duration::from_millis(u64::from((nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % 300))
}

/// Why one try of a download failed.
pub(super) enum TryError {
    /// Worth another try: the body broke off or did not match its digest.
    Again { detail: String, failure: Option<Failure> },
    /// Worth another try too: the bytes arrived whole with another digest than asked for.
    WrongContent { expected: Digest, got: Digest },
    /// Final: the registry answered an error, or the local file failed.
    Final(RegistryError),
}

impl TryError {
    /// A body that broke off is fetched again; one past its limit fails for good.
    pub(super) fn from_body(repo: &Repository, operation: &str, failure: Failure) -> TryError {
        match failure {
            Failure::TooLarge(_) => TryError::Final(RegistryError::Protocol {
                registry: repo.registry.clone(),
                repository: repo.path.clone(),
                operation: operation.to_string(),
                detail: failure.describe(),
            }),
            failure => TryError::Again { detail: failure.describe(), failure: Some(failure) },
        }
    }
}

impl From<RegistryError> for TryError {
    fn from(e: RegistryError) -> Self {
        TryError::Final(e)
    }
}

impl RegistryClient {
    /// Runs `one_try` until it succeeds, fails for good, or has failed [`MAX_ATTEMPTS`] times.
    /// A download that breaks off (reset, closed early, silent for the stall timeout) or
    /// arrives with the wrong digest is fetched again from its start.
    pub(super) async fn with_download_retries<T, F, Fut>(
        &self,
        repo: &Repository,
        operation: &str,
        mut one_try: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TryError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match one_try().await {
                Ok(value) => return Ok(value),
                Err(TryError::Final(e)) => return Err(e),
                Err(TryError::WrongContent { expected, got }) if attempt >= MAX_ATTEMPTS => {
                    return Err(RegistryError::WrongContent {
                        registry: repo.registry.clone(),
                        repository: repo.path.clone(),
                        operation: operation.to_string(),
                        expected,
                        got,
                        attempts: attempt,
                    });
                }
                Err(TryError::WrongContent { expected, got }) => {
                    let detail = format!("the registry sent content with digest {got}, not {expected}");
                    output::detail(format!("{}: {operation}: {detail}; downloading it again", repo.registry));
                    tokio::time::sleep(retry_delay(attempt, None)).await;
                }
                Err(TryError::Again { detail, failure }) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(match failure {
                            Some(failure) => self.transport_error(repo, operation, &failure, attempt),
                            None => RegistryError::Transfer {
                                registry: repo.registry.clone(),
                                repository: repo.path.clone(),
                                operation: operation.to_string(),
                                detail,
                                attempts: attempt,
                                stalled: false,
                            },
                        });
                    }
                    output::detail(format!("{}: {operation}: {detail}; downloading it again", repo.registry));
                    tokio::time::sleep(retry_delay(attempt, None)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers the TLS handshake in plain HTTP (a registry without TLS, asked
    /// for HTTPS) is told apart from a certificate problem.
    #[tokio::test]
    async fn a_plain_http_answer_to_https_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            for stream in listener.incoming().take(1) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let client = super::super::client::http_client(false, Vec::new(), Duration::from_secs(10)).unwrap();
        let error = client.get(format!("https://127.0.0.1:{port}/v2/")).send().await.unwrap_err();
        assert_eq!(Failure::of(&error), Failure::PlainHttp, "{error:?}");
        assert!(Failure::PlainHttp.hint().contains("--insecure-registry"));
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now: jiff::Timestamp = "2026-12-03T23:00:00Z".parse().unwrap();
        assert_eq!(retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Thu, 03 Dec 2026 23:00:06 GMT", now), Some(Duration::from_secs(6)));
        assert_eq!(retry_after("Thu, 03 Dec 2026 22:59:00 GMT", now), Some(Duration::ZERO), "a date past");
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn the_stall_timeout_is_the_variable_s_seconds_or_the_default() {
        let stall = |value: &str| stall_timeout(&Environment::from_pairs([(STALL_TIMEOUT_ENV, value)]));
        assert_eq!(stall_timeout(&Environment::default()).unwrap(), DEFAULT_STALL);
        assert_eq!(stall(" ").unwrap(), DEFAULT_STALL);
        assert_eq!(stall("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["0", "-1", "soon", "86401", "inf"] {
            let err = stall(bad).unwrap_err().to_string();
            assert!(err.contains(STALL_TIMEOUT_ENV) && err.contains(bad), "{err}");
        }
    }

    #[tokio::test]
    async fn silence_is_measured_from_the_last_progress() {
        let activity = Activity::new();
        let limit = Duration::from_millis(400);
        let started = Instant::now();
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.silence(limit).await })
        };
        // Progress every 100 ms for a second: never 400 ms of silence.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!watcher.is_finished());
            activity.touch();
        }
        watcher.await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1400));
    }

    #[test]
    fn buffered_bytes_get_time_to_drain_up_to_a_bound() {
        assert_eq!(drain_allowance(0), Duration::ZERO);
        assert_eq!(drain_allowance(64 << 10), Duration::from_secs(1));
        assert_eq!(drain_allowance(1 << 30), Duration::from_secs(64));
    }

    #[test]
    fn retries_wait_as_the_registry_asks_within_bounds() {
        assert_eq!(retry_delay(1, None), Duration::from_millis(250));
        assert_eq!(retry_delay(3, None), Duration::from_secs(1));
    }

    #[test]
    fn attempts_are_counted_in_good_english() {
        assert_eq!(after_attempts(1), "after 1 attempt");
        assert_eq!(after_attempts(4), "after 4 attempts");
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }

    #[tokio::test]
    async fn failures_to_connect_have_their_own_words() {
        crate::tls::install_crypto_provider();
        // Port 9 (discard) has no listener on loopback.
        let client = reqwest::Client::new();
        let err = client.get("http://127.0.0.1:9/v2/").send().await.unwrap_err();
        assert_eq!(Failure::of(&err), Failure::Refused);
        let err = client.get("http://nonexistent.invalid/v2/").send().await.unwrap_err();
        assert!(matches!(Failure::of(&err), Failure::Dns(_)), "{err:?}");
    }
}
