//! The polling watcher: every half second, the metadata of every file under the watched
//! directories is compared with the last look. Used where inotify is not available, or takes
//! watches and never reports (some network and FUSE mounts).
//!
//! notify's own `PollWatcher` compares modification times in whole seconds (and sizes not at
//! all), so a file written again within the second of the last look, at the same size, went
//! unseen: a quick second save, a generator writing a file twice. Here a file's stamp is its
//! modification time to the nanosecond, its size, and on Unix its inode and change time (which a
//! write always moves, even when the modification time is set back).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::event::{CreateKind, ModifyKind, RemoveKind};
use notify::{Event, EventHandler, EventKind, RecursiveMode, Watcher, WatcherKind};

/// What a file looks like to the poller; any difference is a change. A directory is only its
/// inode: an entry made or removed in it is reported as that entry (as inotify does), not as
/// the directory, which would count as a change to every package under it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    dir: bool,
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        if meta.is_dir() {
            return Stamp {
                modified: None,
                len: 0,
                dir: true,
                #[cfg(unix)]
                inode: meta.ino(),
                #[cfg(unix)]
                changed: (0, 0),
            };
        }
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            dir: false,
            #[cfg(unix)]
            inode: meta.ino(),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Every path under a directory (the directory itself too), with its stamp.
type Snapshot = BTreeMap<PathBuf, Stamp>;

/// Looks at `dir` and, when `recursive`, everything under it, through symlinks as inotify's
/// walk does (a linked `kodata` directory is read by the build); `.git` is not entered (no
/// build reads it). A directory that does not exist (yet) is an empty snapshot: what is made
/// there later is seen.
fn snapshot(dir: &Path, recursive: bool) -> Snapshot {
    let mut found = Snapshot::new();
    let Ok(meta) = std::fs::metadata(dir) else { return found };
    let mut entered = BTreeSet::new();
    first_visit(&mut entered, &meta);
    found.insert(dir.to_path_buf(), Stamp::of(&meta));
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if recursive && meta.is_dir() && entry.file_name() != ".git" && first_visit(&mut entered, &meta) {
                pending.push(path.clone());
            }
            found.insert(path, Stamp::of(&meta));
        }
    }
    found
}

/// Whether a directory is entered for the first time in this walk: a link back up (a loop)
/// is not entered again.
#[cfg(unix)]
fn first_visit(entered: &mut BTreeSet<(u64, u64)>, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    entered.insert((meta.dev(), meta.ino()))
}

/// Without inodes to tell a loop, only real directories are entered.
#[cfg(not(unix))]
fn first_visit(_: &mut BTreeSet<(u64, u64)>, meta: &std::fs::Metadata) -> bool {
    !meta.file_type().is_symlink()
}

/// The paths that differ between two looks, each with what happened to it.
fn differences(before: &Snapshot, after: &Snapshot) -> Vec<(PathBuf, EventKind)> {
    let paths: BTreeSet<&PathBuf> = before.keys().chain(after.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let kind = match (before.get(path), after.get(path)) {
                (Some(old), Some(new)) if old != new => EventKind::Modify(ModifyKind::Any),
                (None, Some(_)) => EventKind::Create(CreateKind::Any),
                (Some(_), None) => EventKind::Remove(RemoveKind::Any),
                _ => return None,
            };
            Some((path.clone(), kind))
        })
        .collect()
}

/// One watched directory: whether it is recursive, which `watch` call made it (a look that
/// began before a newer `watch` of the same directory is thrown away), and the last look.
struct Watched {
    recursive: bool,
    generation: u64,
    snapshot: Snapshot,
}

#[derive(Default)]
struct Shared {
    watched: BTreeMap<PathBuf, Watched>,
    generation: u64,
}

/// Polls its directories on a thread of its own, which ends when the poller is dropped.
pub struct Poller {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Poller {
    /// Starts polling every `interval`, reporting to `handler`.
    pub fn start(handler: impl EventHandler, interval: Duration) -> std::io::Result<Poller> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (looked, stopped) = (shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kubectl-ko watch poll".into())
            .spawn(move || poll(looked, stopped, handler, interval))?;
        Ok(Poller { shared, stop })
    }
}

fn poll(shared: Arc<Mutex<Shared>>, stop: Arc<AtomicBool>, mut handler: impl EventHandler, interval: Duration) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(interval);
        let dirs: Vec<(PathBuf, bool, u64)> = match shared.lock() {
            Ok(shared) => shared.watched.iter().map(|(d, w)| (d.clone(), w.recursive, w.generation)).collect(),
            Err(_) => return,
        };
        for (dir, recursive, generation) in dirs {
            let now = snapshot(&dir, recursive);
            let changes = {
                let Ok(mut shared) = shared.lock() else { return };
                match shared.watched.get_mut(&dir) {
                    Some(watched) if watched.generation == generation => {
                        let changes = differences(&watched.snapshot, &now);
                        watched.snapshot = now;
                        changes
                    }
                    _ => continue,
                }
            };
            for (path, kind) in changes {
                handler.handle_event(Ok(Event::new(kind).add_path(path)));
            }
        }
    }
}

impl Watcher for Poller {
    fn new<F: EventHandler>(handler: F, config: notify::Config) -> notify::Result<Poller> {
        let interval = config.poll_interval().unwrap_or(Duration::from_millis(500));
        Poller::start(handler, interval).map_err(notify::Error::io)
    }

    /// Takes the first look now, so a change made once this returns is seen.
    fn watch(&mut self, dir: &Path, mode: RecursiveMode) -> notify::Result<()> {
        let recursive = mode == RecursiveMode::Recursive;
        let first = snapshot(dir, recursive);
        let mut shared = self.shared.lock().map_err(|_| notify::Error::generic("the poller stopped"))?;
        shared.generation += 1;
        let generation = shared.generation;
        shared.watched.insert(dir.to_path_buf(), Watched { recursive, generation, snapshot: first });
        Ok(())
    }

    fn unwatch(&mut self, dir: &Path) -> notify::Result<()> {
        let mut shared = self.shared.lock().map_err(|_| notify::Error::generic("the poller stopped"))?;
        shared.watched.remove(dir).map(drop).ok_or_else(notify::Error::watch_not_found)
    }

    fn kind() -> WatcherKind {
        WatcherKind::PollWatcher
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::sync::mpsc;

    use super::*;

    fn poller() -> (Poller, mpsc::Receiver<PathBuf>) {
        let (sender, receiver) = mpsc::channel();
        let handler = move |event: notify::Result<Event>| {
            event.unwrap().paths.into_iter().for_each(|p| drop(sender.send(p)));
        };
        (Poller::start(handler, Duration::from_millis(20)).unwrap(), receiver)
    }

    fn set_modified(path: &Path, seconds: u64, nanos: u32) {
        let at = SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos);
        File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
    }

    fn seen(receiver: &mpsc::Receiver<PathBuf>, path: &Path) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match receiver.recv_timeout(left) {
                Ok(p) if p == path => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    #[test]
    fn a_rewrite_within_the_same_second_at_the_same_size_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("apps.yaml");
        std::fs::write(&file, "replicas: 1\n").unwrap();
        set_modified(&file, 1_700_000_000, 100_000_000);
        let (mut poller, receiver) = poller();
        poller.watch(tmp.path(), RecursiveMode::NonRecursive).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(&file, "replicas: 3\n").unwrap();
        set_modified(&file, 1_700_000_000, 600_000_000);
        assert!(seen(&receiver, &file), "the second write was not seen");
    }

    #[cfg(unix)]
    #[test]
    fn linked_directories_are_followed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (tree, shared) = (tmp.path().join("tree"), tmp.path().join("shared"));
        std::fs::create_dir_all(tree.join("kodata")).unwrap();
        std::fs::create_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(&shared, tree.join("kodata/assets")).unwrap();
        std::os::unix::fs::symlink(&tree, tree.join("kodata/loop")).unwrap();
        let (mut poller, receiver) = poller();
        poller.watch(&tree, RecursiveMode::Recursive).unwrap();
        std::fs::write(shared.join("page.html"), "<p>hi</p>").unwrap();
        assert!(seen(&receiver, &tree.join("kodata/assets/page.html")));
    }

    #[test]
    fn new_files_in_new_directories_and_removals_are_seen_but_not_deeper_without_recursion() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, flat) = (tmp.path().join("tree"), tmp.path().join("flat"));
        std::fs::create_dir_all(&flat).unwrap();
        let (mut poller, receiver) = poller();
        // The tree does not exist yet: it is seen once it does.
        poller.watch(&dir, RecursiveMode::Recursive).unwrap();
        poller.watch(&flat, RecursiveMode::NonRecursive).unwrap();
        std::fs::create_dir_all(dir.join("pkg/sub")).unwrap();
        std::fs::write(dir.join("pkg/sub/new.go"), "package sub\n").unwrap();
        assert!(seen(&receiver, &dir.join("pkg/sub/new.go")));
        std::fs::remove_file(dir.join("pkg/sub/new.go")).unwrap();
        assert!(seen(&receiver, &dir.join("pkg/sub/new.go")));
        std::fs::create_dir(flat.join("deeper")).unwrap();
        assert!(seen(&receiver, &flat.join("deeper")));
        std::fs::write(flat.join("deeper/file"), "").unwrap();
        std::fs::write(flat.join("own"), "").unwrap();
        assert!(seen(&receiver, &flat.join("own")));
        poller.unwatch(&flat).unwrap();
        // Neither what is below a flat watch nor a directory whose entries changed.
        let others: Vec<PathBuf> = receiver.try_iter().collect();
        assert!(!others.iter().any(|p| p == &flat.join("deeper/file") || p == &flat.join("deeper")), "{others:?}");
        assert!(!others.iter().any(|p| p == &flat || p == &dir.join("pkg/sub")), "{others:?}");
    }
}
