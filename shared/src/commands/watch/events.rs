//! File events for a watch: `notify` (inotify on Linux), or our [`Poller`] where inotify is
//! not available (some network and FUSE file systems, an exhausted watch limit), and the
//! settling of a burst: a save touches several files, a `git checkout` hundreds, and one
//! cycle should follow them all. A burst is over once no change has come for [`SETTLE`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::inputs::{Root, is_noise};
use super::poll::Poller;
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
    receiver: UnboundedReceiver<Change>,
    sender: UnboundedSender<Change>,
    roots: Vec<Root>,
    /// The directories the watcher has.
    watched: BTreeMap<PathBuf, Watched>,
    /// What the cycles write themselves (`--image-refs`, `--oci-layout-path`, ...).
    ignored: Vec<PathBuf>,
    /// The files stdout and stderr go to, by device and inode: `resolve --watch > out.yaml`
    /// in the module must not start a cycle with every stream it prints.
    streams: Vec<(u64, u64)>,
}

/// A directory the watcher has: whether its subdirectories are included, and which directory
/// it was (device and inode) when the watch began. One removed and made again is another
/// directory, and the watch died with the first.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Watched {
    recursive: bool,
    identity: Option<(u64, u64)>,
}

fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// The directory to watch for `dir`: itself, or, while it is not there, its nearest ancestor
/// that is (its own files only), whose events tell when it is made again.
fn watchable(dir: &Path, recursive: bool) -> (PathBuf, bool) {
    if dir.is_dir() {
        return (dir.to_path_buf(), recursive);
    }
    match dir.ancestors().skip(1).find(|a| a.is_dir()) {
        Some(ancestor) => (ancestor.to_path_buf(), false),
        None => (dir.to_path_buf(), recursive),
    }
}

/// The files in `dir` (and its subdirectories when `recursive`, symlinks not followed) last
/// modified at or after `since`.
fn changed_since(dir: &Path, recursive: bool, since: SystemTime, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let (path, Ok(kind)) = (entry.path(), entry.file_type()) else { continue };
        if is_noise(&path) {
            continue;
        }
        if kind.is_dir() {
            if recursive {
                changed_since(&path, recursive, since, found);
            }
        } else if entry.metadata().and_then(|m| m.modified()).is_ok_and(|modified| modified >= since) {
            found.push(path);
        }
    }
}

/// A path that changed, and whether the change made it.
type Change = (PathBuf, bool);

fn handler(sender: UnboundedSender<Change>) -> impl Fn(notify::Result<notify::Event>) + Send + 'static {
    move |event| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let made = matches!(event.kind, EventKind::Create(_));
        for path in event.paths {
            let _ = sender.send((path, made));
        }
    }
}

fn poller(sender: UnboundedSender<Change>) -> Result<Box<dyn Watcher + Send>, WatchError> {
    let watcher = Poller::start(handler(sender), POLL_INTERVAL)
        .map_err(|e| WatchError::Start { source: notify::Error::io(e) })?;
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
        if polling {
            let why = if poll { "KUBECTL_KO_WATCH_POLL is set" } else { "inotify is not available" };
            output::detail(format!("polling the files for changes every {} ms ({why})", POLL_INTERVAL.as_millis()));
        }
        Ok(Events {
            watcher,
            polling,
            receiver,
            sender,
            roots: Vec::new(),
            watched: BTreeMap::new(),
            ignored: Vec::new(),
            streams: output::stream_files(),
        })
    }

    /// Watches `roots` from now on (and what was watched before and is not among them, no
    /// longer). A directory that cannot be watched is a warning: the others still are.
    ///
    /// A directory watched only from now on may have changed while the cycle that found it
    /// was running (a workspace module, say, first known once `go list` answered): its files
    /// written since `since` count as changes, so that no edit falls between the build that
    /// read them and the watch.
    pub fn set_roots(&mut self, roots: Vec<Root>, since: Option<SystemTime>) {
        let mut wanted: BTreeMap<PathBuf, bool> = BTreeMap::new();
        for root in &roots {
            let (dir, recursive) = watchable(&root.dir, root.recursive);
            *wanted.entry(dir).or_default() |= recursive;
        }
        self.roots = roots;
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(dir, w)| wanted.get(*dir) != Some(&w.recursive) || identity(dir) != w.identity)
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in stale {
            let _ = self.watcher.unwatch(&dir);
            self.watched.remove(&dir);
        }
        for (dir, recursive) in wanted {
            if !self.watched.contains_key(&dir) {
                if let Some(since) = since {
                    let mut changed = Vec::new();
                    changed_since(&dir, recursive, since, &mut changed);
                    changed.into_iter().for_each(|path| drop(self.sender.send((path, false))));
                }
                self.watch(dir, recursive);
            }
        }
    }

    fn watch(&mut self, dir: PathBuf, recursive: bool) {
        let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        match self.watcher.watch(&dir, mode) {
            Ok(()) => {
                let identity = identity(&dir);
                self.watched.insert(dir, Watched { recursive, identity });
            }
            Err(e) if !self.polling && !matches!(e.kind, notify::ErrorKind::PathNotFound) => {
                output::warn(format!("watching {}: {e}; polling the files every 0.5 s instead", dir.display()));
                match poller(self.sender.clone()) {
                    Ok(poller) => self.watcher = poller,
                    Err(e) => return output::warn(e.to_string()),
                }
                self.polling = true;
                let dirs = std::mem::take(&mut self.watched);
                dirs.into_iter()
                    .map(|(d, w)| (d, w.recursive))
                    .chain([(dir, recursive)])
                    .for_each(|(d, r)| self.watch(d, r));
            }
            Err(e) => output::warn(WatchError::Watch { path: dir, source: e }.to_string()),
        }
    }

    /// Changes under these paths never count: the cycles write them, and counting them would
    /// start a cycle after every cycle.
    pub fn ignore(&mut self, paths: Vec<PathBuf>) {
        self.ignored = paths;
    }

    fn counts(&self, path: &Path) -> bool {
        !is_noise(path)
            && !self.ignored.iter().any(|i| path.starts_with(i))
            && self.roots.iter().any(|r| r.covers(path))
            && !output::is_stream(&self.streams, path)
    }

    /// Waits for a change that counts, then for the burst it starts to settle. A file the
    /// burst made (its first event in the burst is its creation) and that is gone again
    /// changed nothing: the temporary file of an editor that saves by renaming a new file over
    /// the old one, or a probe of the directory (vim's `4913`). A burst of only such files is
    /// no burst. A file that was there before the burst and is gone after it is a change,
    /// whatever happened in between.
    pub async fn burst(&mut self) -> Burst {
        loop {
            // Each path, and whether its first event in the burst made it.
            let mut changes: BTreeMap<PathBuf, bool> = BTreeMap::new();
            let first = loop {
                let Some((path, made)) = self.receiver.recv().await else { return std::future::pending().await };
                if self.counts(&path) {
                    changes.insert(path, made);
                    break Instant::now();
                }
            };
            while let Ok(Some((path, made))) = tokio::time::timeout(SETTLE, self.receiver.recv()).await {
                if self.counts(&path) {
                    changes.entry(path).or_insert(made);
                }
            }
            let paths: BTreeSet<PathBuf> = changes
                .into_iter()
                .filter(|(path, made)| !made || std::fs::symlink_metadata(path).is_ok())
                .map(|(path, _)| path)
                .collect();
            if !paths.is_empty() {
                return Burst { paths, first };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn saw_a_new_file(poll: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let mut events = Events::start(poll).unwrap();
        events.set_roots(vec![Root { dir: dir.clone(), recursive: true, only: None }], None);
        std::fs::create_dir(dir.join("pkg")).unwrap();
        tokio::time::sleep(Duration::from_millis(if poll { 700 } else { 50 })).await;
        std::fs::write(dir.join("pkg/new.go"), "package pkg\n").unwrap();
        std::fs::write(dir.join(".git"), "noise").unwrap();
        events.ignore(vec![dir.join("out")]);
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(dir.join("out/refs.txt"), "written by a cycle").unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert!(burst.paths.iter().any(|p| p.ends_with("pkg/new.go") || p.ends_with("pkg")), "{:?}", burst.paths);
        assert!(!burst.paths.iter().any(|p| p.ends_with(".git")), "{:?}", burst.paths);
        assert!(!burst.paths.iter().any(|p| p.starts_with(dir.join("out"))), "{:?}", burst.paths);
    }

    #[tokio::test]
    async fn a_directory_watched_late_reports_what_changed_since_the_cycle_began() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(dir.join("lib/greet")).unwrap();
        std::fs::write(dir.join("lib/go.mod"), "module example.com/lib\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let since = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("lib/greet/greet.go"), "package greet\n").unwrap();
        let mut events = Events::start(false).unwrap();
        events.set_roots(vec![Root { dir: dir.join("lib"), recursive: true, only: None }], Some(since));
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert_eq!(burst.paths.into_iter().collect::<Vec<_>>(), [dir.join("lib/greet/greet.go")]);
    }

    #[tokio::test]
    async fn a_directory_removed_and_made_again_is_watched_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let lib = dir.join("lib");
        std::fs::create_dir(&lib).unwrap();
        let mut events = Events::start(false).unwrap();
        let roots = vec![Root { dir: lib.clone(), recursive: true, only: None }];
        events.set_roots(roots.clone(), None);
        std::fs::remove_dir(&lib).unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert!(burst.paths.contains(&lib), "{:?}", burst.paths);
        // While it is gone, its parent tells when it is back.
        events.set_roots(roots.clone(), None);
        std::fs::create_dir(&lib).unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert!(burst.paths.contains(&lib), "{:?}", burst.paths);
        // Then the new directory itself is watched.
        events.set_roots(roots, None);
        std::fs::write(lib.join("e.go"), "package lib\n").unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert!(burst.paths.contains(&lib.join("e.go")), "{:?}", burst.paths);
    }

    /// An editor's save by rename: a new file written, then renamed over the old one.
    async fn saved_by_rename(poll: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::write(dir.join("main.go"), "package main\n").unwrap();
        let mut events = Events::start(poll).unwrap();
        events.set_roots(vec![Root { dir: dir.clone(), recursive: true, only: None }], None);
        let settle = Duration::from_millis(if poll { 1500 } else { 700 });
        tokio::time::sleep(settle).await;
        // A probe made and removed: no burst.
        std::fs::write(dir.join("4913"), "").unwrap();
        std::fs::remove_file(dir.join("4913")).unwrap();
        assert!(tokio::time::timeout(settle, events.burst()).await.is_err(), "a burst of a probe alone");
        std::fs::write(dir.join("sedAb12Cd"), "package main // 2\n").unwrap();
        std::fs::rename(dir.join("sedAb12Cd"), dir.join("main.go")).unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert_eq!(burst.paths.into_iter().collect::<Vec<_>>(), [dir.join("main.go")]);
        // A file that was there, made again and removed within one burst: a change.
        std::fs::write(dir.join("util.go"), "package main\n").unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert!(burst.paths.contains(&dir.join("util.go")), "{:?}", burst.paths);
        std::fs::remove_file(dir.join("util.go")).unwrap();
        std::fs::write(dir.join("util.go"), "package main // 2\n").unwrap();
        std::fs::remove_file(dir.join("util.go")).unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), events.burst()).await.expect("no burst");
        assert_eq!(burst.paths.into_iter().collect::<Vec<_>>(), [dir.join("util.go")]);
    }

    #[tokio::test]
    async fn a_save_by_rename_is_a_change_of_the_file_alone() {
        saved_by_rename(false).await;
    }

    #[tokio::test]
    async fn the_polling_fallback_sees_a_save_by_rename_alike() {
        saved_by_rename(true).await;
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
