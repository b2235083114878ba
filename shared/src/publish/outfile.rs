//! Files the user names for results (`--tarball`, `--image-refs`). A symlink is written
//! through to its target (the link stays a link); a special file (a FIFO, a device,
//! `/dev/stdout`) is opened and written in place; only a regular file (or a new one) is
//! replaced atomically, through a temporary sibling renamed over it, with the mode it had or,
//! for a new file, 0644 less the umask. Where that cannot be done, an existing file is
//! written in place, as ko writes it: a file bind-mounted into a CI container cannot be
//! renamed over (`EBUSY`), and a file may be writable in a directory that is not. `-` (where
//! allowed) is standard output.

use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::PublishError;

/// The name that means standard output (for `--tarball`).
pub const STDOUT: &str = "-";

/// Symlinks followed before giving up, as the kernel does (`ELOOP` after 40).
const MAX_LINKS: usize = 40;

/// Where the bytes for a path go.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// This process's standard output or error (the handle, which works even for a socket).
    Stdout,
    Stderr,
    /// A FIFO, a device or a `/proc` file descriptor: opened and written as it is.
    InPlace(PathBuf),
    /// A regular file (existing or not) at the end of any symlinks: replaced atomically.
    Replace(PathBuf),
}

/// Whether `path` is `-`, standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT
}

/// Whether writing `path` as `--tarball` writes to this process's stdout (`-`, `/dev/stdout`).
pub fn tarball_to_stdout(path: &Path) -> bool {
    matches!(target(path, true), Ok(Target::Stdout))
}

fn target(path: &Path, allow_dash: bool) -> io::Result<Target> {
    if allow_dash && is_stdout(path) {
        return Ok(Target::Stdout);
    }
    let by_name = |p: &Path| match p.to_str() {
        Some("/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1") => Some(Target::Stdout),
        Some("/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2") => Some(Target::Stderr),
        _ => None,
    };
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        if let Some(t) = by_name(&current) {
            return Ok(t);
        }
        // /proc/<pid>/fd/<n> and friends are links to open files, not to paths: open as given.
        if current.starts_with("/proc") || current.starts_with("/dev/fd") {
            return Ok(Target::InPlace(current));
        }
        let meta = match std::fs::symlink_metadata(&current) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::Replace(current)),
            Err(e) => return Err(e),
            Ok(meta) => meta,
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = std::fs::read_link(&current)?;
            current = match current.parent() {
                Some(parent) if link.is_relative() => parent.join(link),
                _ => link,
            };
        } else if kind.is_file() {
            return Ok(Target::Replace(current));
        } else if kind.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory; name a file"));
        } else {
            return Ok(Target::InPlace(current));
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("more than {MAX_LINKS} levels of symbolic links")))
}

/// Checks before any work that `path` can be written: its directory exists, it is not a
/// directory, and `-` is not a terminal. `flag` names the option in the error.
pub fn check(flag: &'static str, path: &Path, allow_dash: bool) -> Result<(), PublishError> {
    let bad = |detail: String| PublishError::BadOutput { flag, path: path.to_path_buf(), detail };
    match target(path, allow_dash).map_err(|e| bad(e.to_string()))? {
        Target::Stdout if allow_dash && is_stdout(path) && io::stdout().is_terminal() => {
            Err(bad("standard output is a terminal; redirect it to a file or pipe it to `docker load`".into()))
        }
        Target::Stdout | Target::Stderr => Ok(()),
        // Not opened (a FIFO's reader would see the end of its input): only looked at, so that
        // a descriptor that is not open (`/dev/fd/7`) or a `/proc` file that cannot be made is
        // found before the build.
        Target::InPlace(special) => std::fs::metadata(&special).map(drop).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => bad(format!("{} does not exist, and cannot be made there", special.display())),
            _ => bad(format!("{}: {e}", special.display())),
        }),
        Target::Replace(file) => {
            let dir = parent(&file);
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(bad(format!("{} is not a directory", dir.display()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(bad(format!("the directory {} does not exist; create it first", dir.display())));
                }
                Err(e) => return Err(bad(format!("{}: {e}", dir.display()))),
            }
            // Found now, not after the build and the push: a file that cannot be written
            // (opening it for writing changes nothing), or a new file in a directory that
            // takes none.
            if file.exists() {
                std::fs::OpenOptions::new().write(true).open(&file).map(drop).map_err(|e| bad(e.to_string()))
            } else {
                crate::cache::temp_file_outside(dir, "probe", ".tmp")
                    .map(drop)
                    .map_err(|e| bad(format!("cannot make a file in {}: {e}", dir.display())))
            }
        }
    }
}

fn parent(file: &Path) -> &Path {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes what `content` produces to `path` (see the module comment for how). `durable`
/// syncs a replaced file before the rename.
pub fn write<F>(path: &Path, allow_dash: bool, durable: bool, content: F) -> Result<(), PublishError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), PublishError>,
{
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PublishError::Io { path: p, source }
    };
    match target(path, allow_dash).map_err(io_err(path))? {
        Target::Stdout => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            content(&mut out)?;
            out.flush().map_err(io_err(path))
        }
        Target::Stderr => {
            let mut out = io::BufWriter::new(io::stderr().lock());
            content(&mut out)?;
            out.flush().map_err(io_err(path))
        }
        Target::InPlace(special) => {
            // Appending, so that a descriptor shared with this process (a redirected
            // /dev/stdout) is not overwritten from its start.
            let file = std::fs::OpenOptions::new().append(true).open(&special).map_err(io_err(path))?;
            let mut out = io::BufWriter::new(file);
            content(&mut out)?;
            out.flush().map_err(io_err(path))
        }
        Target::Replace(file) => {
            let dir = parent(&file);
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let existing_mode = std::fs::metadata(&file).ok().map(|m| m.permissions().mode() & 0o7777);
            // A new file gets 0644 through open(2), so the umask applies, as for ko's files;
            // the temporary sibling goes even if a signal ends the process mid-write.
            let (mut temp, _guard) = match crate::cache::temp_file_outside(dir, &name, ".tmp") {
                Ok(made) => made,
                // A directory that takes no new file may still hold a writable one.
                Err(_) if existing_mode.is_some() => return write_in_place(&file, content),
                Err(e) => return Err(io_err(dir)(e)),
            };
            if let Some(mode) = existing_mode {
                temp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io_err(&file))?;
            }
            {
                let mut out = io::BufWriter::new(StopAware(temp.as_file_mut()));
                content(&mut out)?;
                out.flush().map_err(io_err(&file))?;
            }
            if durable {
                temp.as_file().sync_all().map_err(io_err(&file))?;
            }
            // A signal while it was written: the old file stays, the temporary one goes.
            if crate::interrupt::stopping().is_some() {
                return Err(io_err(&file)(stopped()));
            }
            match temp.persist(&file) {
                Ok(_) => Ok(()),
                // A mount point (a bind-mounted file) cannot be renamed over: copy the bytes.
                Err(e) if e.error.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                    let mut written = e.file.reopen().map_err(io_err(&file))?;
                    write_in_place(&file, |out| {
                        io::copy(&mut written, out)
                            .map(drop)
                            .map_err(|source| PublishError::Io { path: file.clone(), source })
                    })
                }
                Err(e) => Err(PublishError::Io { path: file.clone(), source: e.error }),
            }
        }
    }
}

/// The error of a write cut short by a signal. Not `ErrorKind::Interrupted`, which
/// `write_all` would retry.
fn stopped() -> io::Error {
    io::Error::other("the run was stopped (a signal) before the file was written")
}

/// A writer that fails once the run is stopping, so that a long write (a tarball of large
/// images) ends with the run instead of replacing the file after the signal.
struct StopAware<W>(W);

impl<W: Write> Write for StopAware<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if crate::interrupt::stopping().is_some() {
            return Err(stopped());
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes an existing file from its start, as ko does (used where it cannot be replaced).
fn write_in_place<F>(file: &Path, content: F) -> Result<(), PublishError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), PublishError>,
{
    let io_err = |source| PublishError::Io { path: file.to_path_buf(), source };
    let opened = std::fs::OpenOptions::new().write(true).truncate(true).open(file).map_err(io_err)?;
    let mut out = io::BufWriter::new(opened);
    content(&mut out)?;
    out.flush().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_text(path: &Path, text: &str) -> Result<(), PublishError> {
        write(path, false, true, |out| {
            out.write_all(text.as_bytes()).map_err(|source| PublishError::Io { path: path.into(), source })
        })
    }

    #[test]
    fn symlinks_are_written_through_and_stay_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("sub/real.txt");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("sub/real.txt", &link).unwrap();
        let link2 = dir.path().join("link2");
        std::os::unix::fs::symlink(&link, &link2).unwrap();
        write_text(&link2, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(std::fs::symlink_metadata(&link2).unwrap().file_type().is_symlink());
        // A dangling link creates its target.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("sub/made.txt", &dangling).unwrap();
        write_text(&dangling, "x").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("sub/made.txt")).unwrap(), "x");
    }

    #[test]
    fn new_files_are_0644_less_umask_and_existing_modes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        write_text(&fresh, "a").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        // Whatever the umask of the test process, only bits of 0644 can be set.
        assert_eq!(mode & !0o644, 0, "{mode:o}");
        assert_ne!(mode & 0o600, 0, "{mode:o}");
        let kept = dir.path().join("kept");
        std::fs::write(&kept, "old").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_text(&kept, "new").unwrap();
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "new");
    }

    #[test]
    fn special_files_and_missing_directories() {
        assert_eq!(target(Path::new("/dev/null"), false).unwrap(), Target::InPlace("/dev/null".into()));
        assert_eq!(target(Path::new("/dev/stdout"), false).unwrap(), Target::Stdout);
        assert_eq!(target(Path::new("-"), true).unwrap(), Target::Stdout);
        assert_eq!(target(Path::new("-"), false).unwrap(), Target::Replace("-".into()));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/refs.txt");
        let err = check("--image-refs", &missing, false).unwrap_err().to_string();
        assert!(err.starts_with("--image-refs ") && err.contains("does not exist"), "{err}");
        let err = check("--tarball", dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        assert!(check("--tarball", &dir.path().join("new.tar"), true).is_ok());
        write_text(Path::new("/dev/null"), "discarded").unwrap();
    }
}
