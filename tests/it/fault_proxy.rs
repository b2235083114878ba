//! A fault-injecting HTTP/1.1 proxy in front of a real registry, programmable per test.
//!
//! It listens on a port it binds itself (port 0: the kernel picks a free one, and the proxy
//! keeps the listener, so no other process can take the port in between) and forwards each
//! request to the upstream registry on a connection of its own with `Connection: close`, so
//! every client connection carries one request and the rest of it is a plain byte pipe. Rules
//! ([`Rule`]) pick requests by method and path and make them fail in one way ([`Fault`]):
//! an error status, a reset or a cut in either direction, a corrupted body, silence, a slow
//! link, a redirect. Every request is recorded ([`Seen`]) with its `Authorization` header.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What happens to a request a rule picks.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status at once (the request is read whole first), optionally with `Retry-After`.
    Status { code: u16, retry_after: Option<u64> },
    /// Forward the request, but reset the connection after this many bytes of its body.
    ResetUpload { after: usize },
    /// Forward the request and this many bytes of the response body, then reset the connection.
    ResetDownload { after: usize },
    /// Forward the request and this many bytes of the response body, then close the connection.
    Truncate { after: usize },
    /// Forward everything, but flip one byte in the middle of the response body.
    Corrupt,
    /// Read the request and never answer (the connection stays open until the client closes it).
    Silent,
    /// Forward the request body at this many bytes per second.
    Throttle { bytes_per_sec: usize },
    /// Answer `307` to `to` followed by the request's path (with the proxy's prefixes stripped).
    Redirect { to: String },
    /// Answer `200` with this body and content type instead of the registry's.
    Replace { content_type: String, body: String },
    /// As `Status`, but only for a request that carries a body (a commit `PUT` with the bytes).
    StatusIfBody { code: u16 },
    /// Forward everything, but write the response's `Location` relative to the request's
    /// URL (`<uuid>?_state=...` for an upload), as RFC 3986 allows and some registries do.
    RelativeLocation,
    /// Answer this status with a chunked body that never ends (until the client hangs up).
    Endless { code: u16 },
}

/// Which requests a fault applies to, and how often.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: Option<&'static str>,
    /// A substring of the request path, e.g. `/blobs/uploads/` or `/manifests/`.
    pub path: String,
    /// Another substring the path must hold too.
    pub also: Option<String>,
    /// How many matching requests the fault applies to; `usize::MAX` for all.
    pub times: usize,
    pub fault: Fault,
    matched: usize,
}

impl Rule {
    pub fn new(method: Option<&'static str>, path: &str, fault: Fault) -> Rule {
        Rule { method, path: path.to_string(), also: None, times: 1, fault, matched: 0 }
    }

    pub fn times(mut self, times: usize) -> Rule {
        self.times = times;
        self
    }

    pub fn also(mut self, path: &str) -> Rule {
        self.also = Some(path.to_string());
        self
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    /// The fault applied to it, if any.
    pub fault: Option<String>,
}

struct Shared {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    /// Path prefixes removed before forwarding (and before a redirect adds its own).
    strip: Vec<String>,
    /// An `Authorization` header the proxy adds when forwarding (a storage backend's own access).
    upstream_authorization: Option<String>,
    stop: AtomicBool,
}

pub struct FaultProxy {
    /// `host:port` to use as the registry.
    pub host: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy on 127.0.0.1 in front of `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        Self::start_on("127.0.0.1", upstream, rules, Vec::new(), None)
    }

    /// A proxy on `ip` (another loopback address is another host), stripping `strip` prefixes
    /// from paths and adding `upstream_authorization` to what it forwards.
    pub fn start_on(
        ip: &str,
        upstream: &str,
        rules: Vec<Rule>,
        strip: Vec<String>,
        upstream_authorization: Option<String>,
    ) -> FaultProxy {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("fault proxy cannot listen on {ip}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rules: Mutex::new(rules),
            seen: Mutex::new(Vec::new()),
            strip,
            upstream_authorization,
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = accept_shared.clone();
                thread::spawn(move || {
                    let _ = handle(&shared, stream);
                });
            }
        });
        FaultProxy { host: format!("{ip}:{port}"), shared }
    }

    /// Replaces the rules.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.shared.rules.lock().unwrap() = rules;
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The paths of the manifest requests (under `/manifests/`) seen so far with `method`.
    pub fn manifest_requests(&self, method: &str) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.contains("/manifests/"))
            .map(|s| s.path)
            .collect()
    }

    /// The requests a fault was applied to.
    pub fn faulted(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.fault.is_some()).collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

/// A request head: the request line and the headers, as received.
struct Head {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_head(reader: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some(Head { method: method.into(), path: path.into(), version: version.into(), headers })
}

/// The request body, whole (Content-Length or chunked).
fn read_body(reader: &mut impl BufRead, head: &Head) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                // Trailers end with an empty line; the chunk's CRLF was that line when there are none.
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let length: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    body.resize(length, 0);
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// Closes a connection with a TCP reset rather than an orderly FIN (linger zero).
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn respond(client: &mut TcpStream, status: &str, extra: &[(&str, String)]) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (k, v) in extra {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    client.write_all(text.as_bytes())
}

/// A response head with its `Location` made relative to the directory of `request_path`.
fn relative_location(head: &str, request_path: &str) -> String {
    let path = request_path.split('?').next().unwrap_or(request_path);
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    head.split_inclusive("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("location") => {
                let value = value.trim();
                let value =
                    value.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or(value);
                match value.strip_prefix(dir) {
                    Some(rest) if !dir.is_empty() => format!("{name}: {rest}\r\n"),
                    _ => line.to_string(),
                }
            }
            _ => line.to_string(),
        })
        .collect()
}

fn handle(shared: &Shared, client: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    // Anything that is not HTTP/1 (a TLS hello while the client probes for HTTPS) is dropped.
    let Some(mut head) = read_head(&mut reader) else { return Ok(()) };
    let original = head.path.clone();
    // A reset after N body bytes only applies to a request that has that many.
    let body_len = head.header("content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = head.header("transfer-encoding").is_some();
    let mut fault = None;
    for r in shared.rules.lock().unwrap().iter_mut() {
        let applies = match r.fault {
            Fault::ResetUpload { after } => chunked || body_len.is_some_and(|n| n > after),
            Fault::StatusIfBody { .. } => chunked || body_len.is_some_and(|n| n > 0),
            _ => true,
        };
        if applies
            && r.method.is_none_or(|m| m == head.method)
            && original.contains(&r.path)
            && r.also.as_ref().is_none_or(|p| original.contains(p.as_str()))
        {
            r.matched += 1;
            if r.matched <= r.times {
                fault = Some(r.fault.clone());
                break;
            }
        }
    }
    for prefix in &shared.strip {
        if let Some(rest) = head.path.strip_prefix(prefix.as_str())
            && rest.starts_with('/')
        {
            head.path = rest.to_string();
        }
    }
    shared.seen.lock().unwrap().push(Seen {
        method: head.method.clone(),
        path: original,
        authorization: head.header("authorization").map(str::to_string),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
    });
    match &fault {
        Some(Fault::Status { code, retry_after }) => {
            read_body(&mut reader, &head)?;
            let extra: Vec<(&str, String)> = retry_after.iter().map(|s| ("Retry-After", s.to_string())).collect();
            let reason = if *code == 429 { "Too Many Requests" } else { "Service Unavailable" };
            return respond(&mut client, &format!("{code} {reason}"), &extra);
        }
        Some(Fault::StatusIfBody { code }) => {
            read_body(&mut reader, &head)?;
            return respond(&mut client, &format!("{code} Refused"), &[]);
        }
        Some(Fault::Redirect { to }) => {
            read_body(&mut reader, &head)?;
            return respond(&mut client, "307 Temporary Redirect", &[("Location", format!("{to}{}", head.path))]);
        }
        Some(Fault::Replace { content_type, body }) => {
            read_body(&mut reader, &head)?;
            let text = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return client.write_all(text.as_bytes());
        }
        Some(Fault::Endless { code }) => {
            read_body(&mut reader, &head)?;
            let head = format!(
                "HTTP/1.1 {code} Endless\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            client.write_all(head.as_bytes())?;
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
            while !shared.stop.load(Ordering::Relaxed) {
                client.write_all(chunk.as_bytes())?;
            }
            return Ok(());
        }
        Some(Fault::Silent) => {
            // Take whatever the client sends, answer nothing, until it gives up.
            let mut sink = [0u8; 64 * 1024];
            while !shared.stop.load(Ordering::Relaxed) {
                match reader.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            return Ok(());
        }
        _ => {}
    }

    let mut upstream = TcpStream::connect(&shared.upstream)?;
    let mut request = format!("{} {} {}\r\n", head.method, head.path, head.version);
    for (k, v) in &head.headers {
        let skip = k.eq_ignore_ascii_case("connection")
            || (shared.upstream_authorization.is_some() && k.eq_ignore_ascii_case("authorization"));
        if !skip {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if let Some(auth) = &shared.upstream_authorization {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    upstream.write_all(request.as_bytes())?;

    // The request body: client -> upstream, in a thread, as it comes.
    let body_fault = fault.clone();
    let mut to_upstream = upstream.try_clone()?;
    let client_for_reset = client.try_clone()?;
    let upload = thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        loop {
            let want = match &body_fault {
                Some(Fault::Throttle { bytes_per_sec }) => buf.len().min((*bytes_per_sec / 10).max(1)),
                _ => buf.len(),
            };
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(Fault::ResetUpload { after }) = &body_fault
                && sent + n >= *after
            {
                let _ = to_upstream.write_all(&buf[..after.saturating_sub(sent)]);
                reset(&client_for_reset);
                let _ = client_for_reset.shutdown(Shutdown::Both);
                let _ = to_upstream.shutdown(Shutdown::Both);
                return Ok(());
            }
            to_upstream.write_all(&buf[..n])?;
            sent += n;
            if let Some(Fault::Throttle { .. }) = &body_fault {
                thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = to_upstream.shutdown(Shutdown::Write);
        Ok(())
    });

    // The response: upstream -> client, with the response faults.
    let mut from_upstream = BufReader::new(upstream.try_clone()?);
    let mut response_head = Vec::new();
    loop {
        let mut line = Vec::new();
        if from_upstream.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let end = line == b"\r\n";
        response_head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    if let Some(Fault::RelativeLocation) = &fault {
        response_head = relative_location(&String::from_utf8_lossy(&response_head), &head.path).into_bytes();
    }
    let response_text = String::from_utf8_lossy(&response_head).to_string();
    let length: Option<usize> = response_text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok());
    client.write_all(&response_head)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = match from_upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match &fault {
            Some(Fault::ResetDownload { after }) | Some(Fault::Truncate { after }) if sent + n >= *after => {
                client.write_all(&buf[..after.saturating_sub(sent)])?;
                client.flush()?;
                if matches!(fault, Some(Fault::ResetDownload { .. })) {
                    // Give the bytes time to leave before the reset discards what is unsent.
                    thread::sleep(Duration::from_millis(50));
                    reset(&client);
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Corrupt) => {
                let middle = length.unwrap_or(0) / 2;
                if middle >= sent && middle < sent + n {
                    buf[middle - sent] ^= 0xff;
                }
            }
            _ => {}
        }
        client.write_all(&buf[..n])?;
        sent += n;
    }
    // The client closes its side on `Connection: close`, which also ends the body thread.
    let _ = client.shutdown(Shutdown::Write);
    drop(upload);
    Ok(())
}
