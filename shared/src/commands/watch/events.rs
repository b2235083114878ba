//! File events for a watch: `notify` (inotify on Linux), or its `PollWatcher` where inotify is
//! not available (some network and FUSE file systems, an exhausted watch limit), and the
//! settling of a burst: a save touches several files, a `git checkout` hundreds, and one
//! cycle should follow them all. A burst is over once no change has come for [`SETTLE`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{EventKind, PollWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::inputs::{Root, is_noise};
use crate::error::WatchError;
use crate::output;

/// How long a burst of changes must be quiet before a cycle starts.
pub const SETTLE: Duration = Duration::from_millis(100);
/// How often the polling fallback looks at the files.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The changes of one burst.
pub struct Burst {
    /// The changed paths that count, sorted.
    pub paths: BTreeSet<PathBuf>,
    /// When the first of them was seen.
    pub first: Instant,
}

/// The file watcher and the roots it watches.
pub struct Events {
    watcher: Box<dyn Watcher + Send>,
    polling: bool,
    receiver: UnboundedReceiver<PathBuf>,
    sender: UnboundedSender<PathBuf>,
    roots: Vec<Root>,
}

fn handler(sender: UnboundedSender<PathBuf>) -> impl Fn(notify::Result<notify::Event>) + Send + 'static {
    move |event| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            let _ = sender.send(path);
        }
    }
}

fn poller(sender: UnboundedSender<PathBuf>) -> Result<Box<dyn Watcher + Send>, WatchError> {
    let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
    let watcher = PollWatcher::new(handler(sender), config).map_err(|e| WatchError::Start { source: e })?;
    Ok(Box::new(watcher))
}

impl Events {
    /// Starts the native watcher, or the polling one when `poll` is set or the native one fails.
    pub fn start(poll: bool) -> Result<Events, WatchError> {
        let (sender, receiver) = unbounded_channel();
        let native = if poll { None } else { notify::recommended_watcher(handler(sender.clone())).ok() };
        let (watcher, polling): (Box<dyn Watcher + Send>, bool) = match native {
            Some(watcher) => (Box::new(watcher), false),
            None => (poller(sender.clone())?, true),
        };
        Ok(Events { watcher, polling, receiver, sender, roots: Vec::new() })
    }

    /// Watches `roots` from now on (and what was watched before and is not among them, no longer).
    pub fn set_roots(&mut self, roots: Vec<Root>) -> Result<(), WatchError> {
        for old in self.roots.iter().filter(|r| !roots.contains(r)) {
            let _ = self.watcher.unwatch(&old.dir);
        }
        let added: Vec<Root> = roots.iter().filter(|r| !self.roots.contains(r)).cloned().collect();
        self.roots = roots;
        for root in added {
            self.watch(&root)?;
        }
        Ok(())
    }

    fn watch(&mut self, root: &Root) -> Result<(), WatchError> {
        let mode = if root.recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        match self.watcher.watch(&root.dir, mode) {
            Ok(()) => Ok(()),
            Err(e) if !self.polling && !matches!(e.kind, notify::ErrorKind::PathNotFound) => {
                output::warn(format!("watching {}: {e}; polling the files every 0.5 s instead", root.dir.display()));
                self.watcher = poller(self.sender.clone())?;
                self.polling = true;
                let roots = std::mem::take(&mut self.roots);
                roots.iter().try_for_each(|r| self.watch(r))?;
                self.roots = roots;
                Ok(())
            }
            Err(e) => Err(WatchError::Watch { path: root.dir.clone(), source: e }),
        }
    }

    fn counts(&self, path: &Path) -> bool {
        !is_noise(path) && self.roots.iter().any(|r| r.covers(path))
    }

    /// Waits for a change that counts, then for the burst it starts to settle.
    pub async fn burst(&mut self) -> Burst {
        let mut paths = BTreeSet::new();
        let first = loop {
            let Some(path) = self.receiver.recv().await else { return std::future::pending().await };
            if self.counts(&path) {
                paths.insert(path);
                break Instant::now();
            }
        };
        while let Ok(Some(path)) = tokio::time::timeout(SETTLE, self.receiver.recv()).await {
            if self.counts(&path) {
                paths.insert(path);
            }
        }
        Burst { paths, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn saw_a_new_file(poll: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let mut events = Events::start(poll).unwrap();
        events.set_roots(vec![Root { dir: dir.clone(), recursive: true, only: None }]).unwrap();
        std::fs::create_dir(dir.join("pkg")).unwrap();
        tokio::time::sleep(Duration::from_millis(if poll { 700 } else { 50 })).await;
        std::fs::write(dir.join("pkg/new.go"), "package pkg\n").unwrap();
        std::fs::write(dir.join(".git"), "noise").unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert!(burst.paths.iter().any(|p| p.ends_with("pkg/new.go") || p.ends_with("pkg")), "{:?}", burst.paths);
        assert!(!burst.paths.iter().any(|p| p.ends_with(".git")), "{:?}", burst.paths);
    }

    #[tokio::test]
    async fn a_file_added_in_a_new_subdirectory_is_seen() {
        saw_a_new_file(false).await;
    }

    #[tokio::test]
    async fn the_polling_fallback_sees_it_too() {
        saw_a_new_file(true).await;
    }
}
