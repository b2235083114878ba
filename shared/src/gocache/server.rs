//! The request loop of `kubectl ko gocache`: the capabilities first, then each request read
//! from Go and answered. One thread (a blocking one of the runtime) reads the requests and
//! answers what it can at once: gets from the local tier or a shard already read, puts once
//! their output is stored (Go waits for that answer; the put's entry and its hand-off to the
//! registry follow on the same thread). Only what waits on the registry (a lookup before its
//! shard is read, a download) runs as a task, answering in any order, as Go matches answers
//! by ID. This keeps most answers free of hand-offs between threads, each of which waits for a
//! CPU that the compiler keeps busy. `close`, or the end of the input, waits for the tasks and
//! the uploads still running (bounded), trims the local tier, and answers last. With
//! `KUBECTL_KO_TIMINGS=1` it also says how long Go waited on the cache.

use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::task::JoinSet;

use super::protocol::{Request, Response, read_request};
use super::{GoCache, GoCacheError, Lookup};
use crate::{output, timing};

/// How long `close` waits for uploads still running.
const UPLOAD_GRACE: Duration = Duration::from_secs(60);

/// Serves Go on `input` and `output` until it says `close` or closes the input. The reading
/// runs on a blocking thread of the current runtime; the registry's work on the runtime.
pub async fn serve<R, W>(cache: Arc<GoCache>, input: R, output: W) -> Result<(), GoCacheError>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || serve_blocking(&runtime, cache, input, output))
        .await
        .expect("the request loop does not panic")
}

fn serve_blocking<R, W>(
    runtime: &tokio::runtime::Handle,
    cache: Arc<GoCache>,
    mut input: R,
    output: W,
) -> Result<(), GoCacheError>
where
    R: BufRead,
    W: Write + Send + 'static,
{
    let answers = Arc::new(Answers::new(output));
    answers.send(&Response::hello());
    // Reach the registry while Go starts, so its first lookups find the shards read.
    let warming = cache.clone();
    runtime.spawn(async move { warming.warm_up().await });
    let waits = Arc::new(Waits::default());
    let mut in_flight = JoinSet::new();
    let mut closing = None;
    let read = loop {
        let request = match read_request(&mut input) {
            Ok(Some(request)) => request,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if request.command == "close" {
            closing = Some(request.id);
            break Ok(());
        }
        if !request.body.is_empty() {
            waits.body.add(request.body_read);
        }
        answer(&cache, request, &answers, &waits, &mut in_flight, runtime);
    };
    runtime.block_on(async {
        while in_flight.join_next().await.is_some() {}
        cache.finish_uploads(UPLOAD_GRACE).await;
    });
    cache.evict();
    if timing::enabled() {
        output::step(format!("timing: Go build cache: {}", waits.summary()));
    }
    if let Some(id) = closing {
        answers.send(&Response { id, ..Default::default() });
    }
    read?;
    answers.result().map_err(GoCacheError::Answer)
}

/// The output to Go, shared by the reading thread and the tasks: one whole line at a time.
/// After a failed write nothing more is written, and the first error is kept.
struct Answers<W> {
    out: Mutex<(W, Option<std::io::Error>)>,
}

impl<W: Write> Answers<W> {
    fn new(output: W) -> Answers<W> {
        Answers { out: Mutex::new((output, None)) }
    }

    fn send(&self, response: &Response) {
        let mut out = self.out.lock().expect("the output is never poisoned");
        if out.1.is_none()
            && let Err(e) = out.0.write_all(&response.to_line()).and_then(|()| out.0.flush())
        {
            out.1 = Some(e);
        }
    }

    fn result(&self) -> std::io::Result<()> {
        match self.out.lock().expect("the output is never poisoned").1.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Answers one `get` or `put` (or an error for a command this program never declared). A put
/// is answered once its output is stored, and then finished; a get that needs the registry
/// becomes a task in `in_flight`.
fn answer<W: Write + Send + 'static>(
    cache: &Arc<GoCache>,
    request: Request,
    answers: &Arc<Answers<W>>,
    waits: &Arc<Waits>,
    in_flight: &mut JoinSet<()>,
    runtime: &tokio::runtime::Handle,
) {
    let (id, started) = (request.id, Instant::now());
    let response = match request.command.as_str() {
        "get" => match cache.get_now(&request.action_id) {
            Lookup::Found(entry, path) => found(id, entry, path, started, waits),
            Lookup::Miss => missed(id, started, waits),
            Lookup::Ask => {
                let (cache, answers, waits) = (cache.clone(), answers.clone(), waits.clone());
                in_flight.spawn_on(
                    async move {
                        // Go waits for an answer to every get: a lookup that panics is a miss.
                        let lookup = AssertUnwindSafe(cache.get_remote(&request.action_id)).catch_unwind();
                        let response = match lookup.await {
                            Ok(Some((entry, path))) => found(id, entry, path, started, &waits),
                            Ok(None) | Err(_) => missed(id, started, &waits),
                        };
                        answers.send(&response);
                    },
                    runtime,
                );
                return;
            }
        },
        "put" => match cache.put(request.action_id, request.output_id, request.body) {
            Ok(put) => {
                answers.send(&Response { id, disk_path: put.path.display().to_string(), ..Default::default() });
                waits.puts.add(started.elapsed());
                return cache.finish_put(put);
            }
            Err(e) => Response { id, err: format!("storing a Go build output: {e}"), ..Default::default() },
        },
        other => Response { id, err: format!("unknown GOCACHEPROG command {other:?}"), ..Default::default() },
    };
    answers.send(&response);
}

fn found(id: i64, entry: super::Entry, path: std::path::PathBuf, started: Instant, waits: &Waits) -> Response {
    waits.hits.add(started.elapsed());
    Response {
        id,
        output_id: entry.output_id,
        size: entry.size,
        disk_path: path.display().to_string(),
        ..Default::default()
    }
}

fn missed(id: i64, started: Instant, waits: &Waits) -> Response {
    waits.misses.add(started.elapsed());
    Response { id, miss: true, ..Default::default() }
}

/// How many requests of a kind came and how long Go waited for their answers in all.
#[derive(Default)]
struct Tally {
    count: AtomicU64,
    micros: AtomicU64,
}

impl Tally {
    fn add(&self, waited: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn show(&self, what: &str) -> String {
        let ms = self.micros.load(Ordering::Relaxed) as f64 / 1000.0;
        format!("{} {what} {ms:.1} ms", self.count.load(Ordering::Relaxed))
    }
}

/// Where Go waited on this program, for `KUBECTL_KO_TIMINGS`: the answers to gets (hits and
/// misses) and puts, counted from the moment the request was read, and the put bodies'
/// transfer, during which Go's other requests queue behind its write lock.
#[derive(Default)]
struct Waits {
    hits: Tally,
    misses: Tally,
    puts: Tally,
    body: Tally,
}

impl Waits {
    fn summary(&self) -> String {
        format!(
            "{}, {}, {}, {} (Go's time waiting, summed over requests)",
            self.hits.show("hits answered in"),
            self.misses.show("misses in"),
            self.puts.show("puts stored in"),
            self.body.show("put bodies read in"),
        )
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::gocache::Settings;

    /// What a test reads back of the output.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn converse(cache: Arc<GoCache>, input: String) -> Vec<serde_json::Value> {
        let output = Shared::default();
        serve(cache, std::io::Cursor::new(input.into_bytes()), output.clone()).await.unwrap();
        let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test]
    async fn a_put_is_got_back_from_disk_and_close_is_answered_last() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { dir: dir.path().to_path_buf(), max_bytes: 1 << 30, repo: None };
        let cache = Arc::new(GoCache::new(settings, None));
        let body = b"package archive";
        let action = STANDARD.encode([7u8; 32]);
        let output = STANDARD.encode(hex::decode(crate::digest::Digest::of(body).hex()).unwrap());
        let put = format!(
            "{{\"ID\":1,\"Command\":\"put\",\"ActionID\":\"{action}\",\"OutputID\":\"{output}\",\"BodySize\":{}}}\n\n\"{}\"\n",
            body.len(),
            STANDARD.encode(body)
        );
        let answers = converse(cache.clone(), put).await;
        assert_eq!(answers[0]["KnownCommands"], serde_json::json!(["get", "put", "close"]));
        let path = answers[1]["DiskPath"].as_str().unwrap().to_string();
        assert_eq!(std::fs::read(&path).unwrap(), body);

        let gets = format!(
            "{{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"{action}\"}}\n\n\
             {{\"ID\":2,\"Command\":\"get\",\"ActionID\":\"{}\"}}\n\n{{\"ID\":3,\"Command\":\"close\"}}\n\n",
            STANDARD.encode([8u8; 32])
        );
        let answers = converse(cache, gets).await;
        let by_id = |id: i64| answers.iter().find(|a| a["ID"] == id).unwrap().clone();
        assert_eq!(by_id(1)["DiskPath"], path);
        assert_eq!(by_id(1)["OutputID"], output);
        assert_eq!(by_id(1)["Size"], body.len());
        assert_eq!(by_id(2)["Miss"], true);
        assert_eq!(answers.last().unwrap()["ID"], 3, "close is answered after everything else");
    }
}
