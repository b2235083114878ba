//! The Docker Engine API spoken directly, for a machine with a daemon but no docker CLI (a CI
//! job in a Go image beside a `docker:dind` service, say), as ko speaks it: `DOCKER_HOST`
//! (`unix://` or plain `tcp://`) or the default socket. Only what `ko.local` needs: the
//! daemon's platform, `load` fed from a stream and `save` to a file. TLS, SSH and contexts
//! stay with the CLI.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncWriteExt;

use super::DockerError;
use crate::platform::Platform;
use crate::settings::Environment;

/// Where the daemon listens.
#[derive(Clone, Debug, PartialEq)]
enum Endpoint {
    Unix(String),
    Tcp(String),
}

/// The daemon's API, reached without the CLI.
#[derive(Clone, Debug)]
pub struct Api {
    endpoint: Endpoint,
    /// How messages name it: `DOCKER_HOST`'s value, or the default socket.
    host: String,
}

type Body = BoxBody<Bytes, std::io::Error>;

/// How long connecting to the daemon may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the API cannot be used without the CLI, when it cannot: the setting to change.
fn needs_cli(env: &Environment) -> Option<&'static str> {
    let set = |name| env.non_empty(name).is_some();
    let host = env.text("DOCKER_HOST").unwrap_or_default();
    if set("DOCKER_TLS_VERIFY") || set("DOCKER_CERT_PATH") {
        Some("DOCKER_TLS_VERIFY/DOCKER_CERT_PATH (TLS)")
    } else if set("DOCKER_CONTEXT") {
        Some("DOCKER_CONTEXT")
    } else if !host.is_empty() && !host.starts_with("unix://") && !host.starts_with("tcp://") {
        Some("a DOCKER_HOST that is neither unix:// nor tcp://")
    } else {
        None
    }
}

impl Api {
    /// The API `env` points at, or why only the CLI can reach it.
    pub fn from_env(env: &Environment) -> Result<Api, &'static str> {
        if let Some(why) = needs_cli(env) {
            return Err(why);
        }
        let host = env.text("DOCKER_HOST").filter(|h| !h.is_empty());
        let endpoint = match host {
            Some(h) if h.starts_with("tcp://") => {
                // `tcp://host[:port][/path]`: the port defaults to Docker's plain-HTTP one.
                let authority = h["tcp://".len()..].split('/').next().unwrap_or_default();
                let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    && !authority.ends_with(']');
                Endpoint::Tcp(if has_port { authority.to_string() } else { format!("{authority}:2375") })
            }
            Some(h) => Endpoint::Unix(h["unix://".len()..].to_string()),
            None => Endpoint::Unix("/var/run/docker.sock".into()),
        };
        let host = host.map_or_else(|| "unix:///var/run/docker.sock".to_string(), str::to_string);
        Ok(Api { endpoint, host })
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> DockerError {
        DockerError::NoDaemon { host: self.host.clone(), detail: detail.to_string() }
    }

    /// Sends one request on a connection of its own and returns the response.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Body,
    ) -> Result<hyper::Response<hyper::body::Incoming>, DockerError> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::CONTENT_TYPE, "application/x-tar")
            .body(body)
            .expect("a valid request");
        let timed_out = || self.unreachable(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()));
        let sent = match &self.endpoint {
            Endpoint::Unix(socket) => {
                let connect = tokio::net::UnixStream::connect(socket);
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect).await.map_err(|_| timed_out())?;
                exchange(stream.map_err(|e| self.unreachable(e))?, request).await
            }
            Endpoint::Tcp(address) => {
                let connect = tokio::net::TcpStream::connect(address);
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect).await.map_err(|_| timed_out())?;
                exchange(stream.map_err(|e| self.unreachable(e))?, request).await
            }
        };
        sent.map_err(|e| self.unreachable(e))
    }

    /// The body of a successful answer, or the daemon's message as the error of `command`.
    async fn answer(
        &self,
        command: &str,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Bytes, DockerError> {
        let status = response.status();
        let body = response.into_body().collect().await;
        let body = body.map_err(|e| failed(command, status.as_u16(), format!("reading the answer: {e}")))?.to_bytes();
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            return Err(failed(command, status.as_u16(), detail));
        }
        Ok(body)
    }

    /// The daemon's own platform (`GET /version`).
    pub async fn server_platform(&self) -> Result<Platform, DockerError> {
        let response = self.send("GET", "/version", empty()).await?;
        let body = self.answer("version", response).await?;
        let version: serde_json::Value = serde_json::from_slice(&body).map_err(|e| self.unreachable(e))?;
        match (version["Os"].as_str(), version["Arch"].as_str()) {
            (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.into(), arch: arch.into(), ..Platform::default() })
            }
            _ => Err(self.unreachable(format!("GET /version answered {version}"))),
        }
    }

    /// `POST /images/load` with the archive `feed` writes (on a blocking thread), returning
    /// what the daemon printed (`Loaded image: ...`). A failed load wins over the feed's error.
    pub async fn load<E, F>(&self, feed: F) -> Result<Result<String, E>, DockerError>
    where
        E: Send + 'static,
        F: FnOnce(&mut dyn Write) -> Result<(), E> + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let closed = Arc::new(AtomicBool::new(false));
        let writer = ChannelWriter { sender: sender.clone(), closed: closed.clone() };
        let fed = tokio::task::spawn_blocking(move || {
            let mut writer = std::io::BufWriter::with_capacity(256 << 10, writer);
            let fed = feed(&mut writer);
            let flushed = writer.flush();
            // A feed that failed on its own ends the body with an error, so that the daemon
            // does not take what was sent for a whole archive.
            if fed.is_err() {
                let _ = sender.blocking_send(Err(std::io::Error::other("the archive could not be written")));
            }
            (fed, flushed)
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((chunk.map(Frame::data), receiver))
        });
        let sent = self.send("POST", "/images/load?quiet=1", BodyExt::boxed(StreamBody::new(stream))).await;
        // The answer is read while the archive still goes out: a daemon that speaks early is
        // heard, and its words are the error.
        let (fed, body) = match sent {
            Ok(response) => tokio::join!(fed, self.answer("load", response)),
            Err(e) => (fed.await, Err(e)),
        };
        let (fed, flushed) = fed.expect("docker load feed");
        // The feed's own failure (not the daemon hanging up on it) is the one to tell.
        if fed.is_err() && !closed.load(Ordering::Relaxed) {
            return Ok(fed.map(|()| String::new()));
        }
        let body = body?;
        // The answer is a stream of JSON messages; an error comes as one of them.
        let mut printed = String::new();
        for message in serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>().flatten() {
            if let Some(error) = message["error"].as_str() {
                return Err(failed("load", 200, error.to_string()));
            }
            printed.push_str(message["stream"].as_str().unwrap_or_default());
        }
        if let Err(e) = flushed {
            return Err(self.unreachable(format!("the archive could not be sent: {e}")));
        }
        Ok(fed.map(|()| printed))
    }

    /// `GET /images/get?names=REFERENCE` into `dest`, as `docker save -o` writes it.
    pub async fn save(&self, reference: &str, dest: &Path) -> Result<(), DockerError> {
        let path = format!("/images/get?names={}", percent_encode(reference));
        let response = self.send("GET", &path, empty()).await?;
        if !response.status().is_success() {
            return self.answer("save", response).await.map(drop);
        }
        let write_error = |e: std::io::Error| DockerError::Failed {
            command: "save (Docker API)".into(),
            status: format!("writing {}", dest.display()),
            detail: e.to_string(),
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(write_error)?;
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.unreachable(e))?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await.map_err(write_error)?;
            }
        }
        file.flush().await.map_err(write_error)
    }
}

/// An HTTP/1.1 exchange on `stream`.
async fn exchange<S>(stream: S, request: hyper::Request<Body>) -> hyper::Result<hyper::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await
}

fn empty() -> Body {
    BodyExt::boxed(Empty::<Bytes>::new().map_err(|never| match never {}))
}

fn failed(command: &str, status: u16, detail: String) -> DockerError {
    DockerError::Failed { command: format!("{command} (Docker API)"), status: format!("HTTP {status}"), detail }
}

/// A reference as a query value: everything but unreserved characters and `:`/`/` escaped.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A writer whose bytes go, chunk by chunk, to the request body; `closed` once the body is
/// no longer read.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    closed: Arc<AtomicBool>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.sender.blocking_send(Ok(Bytes::copy_from_slice(buf))).is_err() {
            self.closed.store(true, Ordering::Relaxed);
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the Docker daemon stopped reading"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn docker_host_picks_the_endpoint_and_tls_or_contexts_need_the_cli() {
        let api = Api::from_env(&env(&[])).unwrap();
        assert_eq!(api.endpoint, Endpoint::Unix("/var/run/docker.sock".into()));
        let api = Api::from_env(&env(&[("DOCKER_HOST", "tcp://docker:2375")])).unwrap();
        assert_eq!(api.endpoint, Endpoint::Tcp("docker:2375".into()));
        let api = Api::from_env(&env(&[("DOCKER_HOST", "tcp://docker/")])).unwrap();
        assert_eq!(api.endpoint, Endpoint::Tcp("docker:2375".into()));
        let api = Api::from_env(&env(&[("DOCKER_HOST", "tcp://10.0.0.1:4243/path")])).unwrap();
        assert_eq!(api.endpoint, Endpoint::Tcp("10.0.0.1:4243".into()));
        let api = Api::from_env(&env(&[("DOCKER_HOST", "unix:///run/d.sock")])).unwrap();
        assert_eq!(api.endpoint, Endpoint::Unix("/run/d.sock".into()));
        assert!(Api::from_env(&env(&[("DOCKER_HOST", "ssh://me@host")])).is_err());
        assert!(Api::from_env(&env(&[("DOCKER_TLS_VERIFY", "1")])).is_err());
        assert!(Api::from_env(&env(&[("DOCKER_CONTEXT", "remote")])).is_err());
    }

    #[test]
    fn references_are_escaped_for_the_query() {
        assert_eq!(percent_encode("ko.local/a/b:v1"), "ko.local/a/b:v1");
        assert_eq!(percent_encode("a@sha256:00 &x"), "a%40sha256:00%20%26x");
    }
}
