//! An in-process fake registry for the transport's unit tests: an HTTP/1 server on
//! `127.0.0.1:0` (it reports the port it got) that answers each route from a script of
//! replies and records every request it is sent.
//!
//! A route is a method and a path (the query is not part of it, so a mount `POST` and an
//! upload `POST` share one). Its replies are used in order and the last one repeats; a request
//! no route knows is answered 404.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One scripted answer.
#[derive(Clone, Debug)]
pub(super) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// Send only this many bytes of the body (with the whole body's `Content-Length`), then
    /// break the connection.
    truncate_at: Option<usize>,
}

impl Reply {
    pub(super) fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: Bytes::new(), truncate_at: None }
    }

    pub(super) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub(super) fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }

    pub(super) fn truncated_at(mut self, bytes: usize) -> Reply {
        self.truncate_at = Some(bytes);
        self
    }
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub(super) struct Recorded {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Option<String>,
    pub(super) headers: hyper::HeaderMap,
    pub(super) body: Bytes,
}

impl Recorded {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Route {
    method: String,
    path: String,
    replies: VecDeque<Reply>,
}

#[derive(Default)]
struct Script {
    routes: Vec<Route>,
    requests: Vec<Recorded>,
}

impl Script {
    fn reply_to(&mut self, method: &str, path: &str) -> Reply {
        let route = self.routes.iter_mut().find(|r| r.method == method && r.path == path);
        match route {
            Some(route) if route.replies.len() > 1 => route.replies.pop_front().unwrap_or(Reply::status(500)),
            Some(route) => route.replies.front().cloned().unwrap_or(Reply::status(500)),
            None => Reply::status(404),
        }
    }
}

/// The fake registry; it stops serving when dropped.
pub(super) struct FakeRegistry {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeRegistry {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub(super) async fn start() -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake registry");
        let addr = listener.local_addr().expect("the fake registry's address");
        let script = Arc::new(Mutex::new(Script::default()));
        let server = tokio::spawn(serve(listener, script.clone()));
        FakeRegistry { addr, script, server }
    }

    /// `127.0.0.1:PORT`, the registry part of a reference.
    pub(super) fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub(super) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts the replies of `method path`, in order; the last one repeats.
    pub(super) fn route(&self, method: &str, path: &str, replies: impl IntoIterator<Item = Reply>) -> &Self {
        let route =
            Route { method: method.to_string(), path: path.to_string(), replies: replies.into_iter().collect() };
        let mut script = self.script.lock().expect("fake registry lock");
        script.routes.retain(|r| !(r.method == route.method && r.path == route.path));
        script.routes.push(route);
        self
    }

    /// Every request received so far, in order.
    pub(super) fn requests(&self) -> Vec<Recorded> {
        self.script.lock().expect("fake registry lock").requests.clone()
    }

    /// The requests received for `method path`.
    pub(super) fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path == path).collect()
    }
}

async fn serve(listener: tokio::net::TcpListener, script: Arc<Mutex<Script>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let script = script.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| answer(script.clone(), request));
            // A client that speaks TLS to it, or a truncated reply, ends the connection.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

async fn answer(script: Arc<Mutex<Script>>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    let reply = {
        let mut script = script.lock().expect("fake registry lock");
        let reply = script.reply_to(&recorded.method, &recorded.path);
        script.requests.push(recorded);
        reply
    };
    Ok(response(reply))
}

fn response(reply: Reply) -> Response<Body> {
    let length = reply.body.len();
    let body: Body = match reply.truncate_at {
        None => Full::new(reply.body).map_err(|never| match never {}).boxed(),
        Some(at) => {
            let head = reply.body.slice(..at.min(length));
            let frames = futures_util::stream::iter([
                Ok(Frame::data(head)),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the fake registry broke off")),
            ]);
            StreamBody::new(frames).boxed()
        }
    };
    let mut builder = Response::builder().status(reply.status).header("content-length", length);
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(body).expect("a scripted reply is a valid response")
}

/// A client that finds no credentials anywhere.
pub(super) fn anonymous_client() -> super::RegistryClient {
    super::RegistryClient::new(crate::auth::Keychain::anonymous(), Default::default()).expect("a registry client")
}

/// A client whose keychain holds `user:password` for `host`.
pub(super) fn client_logged_in(host: &str, user: &str, password: &str) -> super::RegistryClient {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } }).to_string();
    let config = crate::auth::DockerConfig::parse(config.as_bytes(), "the test's config").expect("a docker config");
    let keychain = crate::auth::Keychain::with_sources(vec![Box::new(config)]);
    super::RegistryClient::new(keychain, Default::default()).expect("a registry client")
}

/// The fake's `/v2/` answers 200: no authentication.
pub(super) async fn open_registry() -> FakeRegistry {
    let fake = FakeRegistry::start().await;
    fake.route("GET", "/v2/", [Reply::status(200)]);
    fake
}
