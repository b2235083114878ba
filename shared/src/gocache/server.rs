//! The request loop of `kubectl ko gocache`: the capabilities first, then each request read
//! from Go and answered in its own task (Go matches answers by ID, so they may come in any
//! order); one writer task owns the output. A put is answered as soon as its output is stored,
//! since Go waits for it; the rest of the put follows. `close`, or the end of the input, waits
//! for the requests in flight and the uploads still running (bounded), trims the local tier,
//! and answers last. With `KUBECTL_KO_TIMINGS=1` it also says how long Go waited on the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::protocol::{Request, Response, read_request};
use super::{GoCache, GoCacheError};
use crate::{output, timing};

/// How long `close` waits for uploads still running.
const UPLOAD_GRACE: Duration = Duration::from_secs(60);

/// Serves Go on `input` and `output` until it says `close` or closes the input.
pub async fn serve<R, W>(cache: Arc<GoCache>, mut input: R, output: W) -> Result<(), GoCacheError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (answers, outbox) = mpsc::unbounded_channel::<Response>();
    let writer = tokio::spawn(write_answers(outbox, output));
    let _ = answers.send(Response::hello());
    // Reach the registry while Go starts, so its first lookup finds the connection made.
    let warming = cache.clone();
    tokio::spawn(async move { warming.warm_up().await });
    let waits = Arc::new(Waits::default());
    let mut in_flight = JoinSet::new();
    let mut closing = None;
    let read = loop {
        let request = match read_request(&mut input).await {
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
        let (cache, answers, waits) = (cache.clone(), answers.clone(), waits.clone());
        in_flight.spawn(async move { answer(&cache, request, &answers, &waits).await });
    };
    while in_flight.join_next().await.is_some() {}
    cache.finish_uploads(UPLOAD_GRACE).await;
    let evicting = cache.clone();
    let _ = tokio::task::spawn_blocking(move || evicting.evict()).await;
    if timing::enabled() {
        output::step(format!("timing: Go build cache: {}", waits.summary()));
    }
    if let Some(id) = closing {
        let _ = answers.send(Response { id, ..Default::default() });
    }
    drop(answers);
    let written = writer.await.unwrap_or(Ok(()));
    read?;
    written.map_err(GoCacheError::Answer)
}

async fn write_answers<W: AsyncWrite + Unpin>(
    mut outbox: mpsc::UnboundedReceiver<Response>,
    mut output: W,
) -> std::io::Result<()> {
    while let Some(response) = outbox.recv().await {
        output.write_all(&response.to_line()).await?;
        output.flush().await?;
    }
    Ok(())
}

/// Answers one `get` or `put` (or an error for a command this program never declared). A put
/// is answered once its output is stored, and then finished.
async fn answer(cache: &Arc<GoCache>, request: Request, answers: &mpsc::UnboundedSender<Response>, waits: &Waits) {
    let (id, started) = (request.id, Instant::now());
    let response = match request.command.as_str() {
        "get" => match cache.get(&request.action_id).await {
            Some((entry, path)) => {
                waits.hits.add(started.elapsed());
                Response {
                    id,
                    output_id: entry.output_id,
                    size: entry.size,
                    disk_path: path.display().to_string(),
                    ..Default::default()
                }
            }
            None => {
                waits.misses.add(started.elapsed());
                Response { id, miss: true, ..Default::default() }
            }
        },
        "put" => match cache.put(request.action_id, request.output_id, request.body).await {
            Ok(put) => {
                let _ = answers.send(Response { id, disk_path: put.path.display().to_string(), ..Default::default() });
                waits.puts.add(started.elapsed());
                return cache.finish_put(put).await;
            }
            Err(e) => Response { id, err: format!("storing a Go build output: {e}"), ..Default::default() },
        },
        other => Response { id, err: format!("unknown GOCACHEPROG command {other:?}"), ..Default::default() },
    };
    let _ = answers.send(response);
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

    async fn converse(cache: Arc<GoCache>, input: String) -> Vec<serde_json::Value> {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let reader = tokio::io::BufReader::new(input.as_bytes());
        serve(cache, reader, ours).await.unwrap();
        let mut text = String::new();
        let mut theirs = theirs;
        tokio::io::AsyncReadExt::read_to_string(&mut theirs, &mut text).await.unwrap();
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
