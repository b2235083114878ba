//! The kodata layer: the package's `kodata/` directory under `/var/run/ko`, symlinks followed
//! but only to places inside the allowed root (the module's git worktree, or
//! `KO_DATA_PATH_ALLOWED_ROOT`), every entry with mode 0555, owner root and a fixed time.
//! Only regular files and directories go in: a FIFO, socket or device is an error, and so is a
//! directory that leads back to one above it (a symlink cycle such as `kodata/self -> .`).
//! The walk is iterative, in name order, so the layer is the same for the same tree. A
//! Windows image gets the same tree under `Files/` (see [`super::target`]).

use std::fs::DirEntry;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use super::layer::{EntryMeta, LayerError, LayerRecord, LayerWriter};
use super::target::ImageOs;
use crate::cache::Cache;

pub const KO_DATA_PATH: &str = "/var/run/ko";

#[derive(Debug, thiserror::Error)]
pub enum KodataError {
    #[error(
        "kodata symlink {link} resolves to {target}, which is outside the allowed root {root} (the git checkout that holds kodata, else kodata itself, unless KO_DATA_PATH_ALLOWED_ROOT names one); copy what it points to into kodata/ or set KO_DATA_PATH_ALLOWED_ROOT to a directory that holds both"
    )]
    Escapes { link: PathBuf, target: PathBuf, root: PathBuf },
    #[error(
        "kodata {link} leads back to {target}, a directory that contains it (a cycle); remove the link or point it elsewhere"
    )]
    Cycle { link: PathBuf, target: PathBuf },
    #[error("kodata symlink {link} is part of a loop of symlinks; remove it or point it at a real file")]
    SymlinkLoop { link: PathBuf },
    #[error(
        "kodata {path} is {kind}: only regular files and directories (or symlinks to them) can go into the image; remove it from kodata"
    )]
    Special { path: PathBuf, kind: &'static str },
    #[error("reading kodata {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// The root that kodata symlinks may point into: `allowed` (`KO_DATA_PATH_ALLOWED_ROOT`) when
/// it holds the kodata directory, else the enclosing git checkout, else kodata itself.
fn allowed_root(kodata: &Path, allowed: Option<&Path>) -> PathBuf {
    if let Some(root) = allowed
        && let Ok(root) = std::fs::canonicalize(root)
        && kodata.starts_with(&root)
    {
        return root;
    }
    kodata.ancestors().find(|dir| dir.join(".git").exists()).unwrap_or(kodata).to_path_buf()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KodataError + use<> {
    let path = path.to_path_buf();
    move |source| KodataError::Io { path, source }
}

/// Builds the kodata layer for a package directory (an empty `/var/run/ko` when there is none).
/// A `kodata` that is not a directory adds nothing, with a warning (ko ignores it silently).
pub fn build_layer(
    cache: &Cache,
    package_dir: &Path,
    mtime: i64,
    allowed_root: Option<&Path>,
    os: ImageOs,
) -> Result<LayerRecord, KodataError> {
    let meta = EntryMeta::root(0o555, mtime);
    let mut layer = LayerWriter::new(cache)?;
    for dir in os.layer_roots() {
        layer.add_dir(*dir, meta)?;
    }
    for dir in ["var", "var/run", "var/run/ko"] {
        layer.add_dir(&os.entry(dir), meta)?;
    }
    let kodata = package_dir.join("kodata");
    match std::fs::metadata(&kodata) {
        Ok(metadata) if metadata.is_dir() => {
            // The root comes from where `kodata` is, not from where a link named kodata
            // leads: a `kodata` that is itself a link to a directory outside it is refused as
            // any other link leading out.
            let package = std::fs::canonicalize(package_dir).map_err(io_error(package_dir))?;
            let root = self::allowed_root(&package.join("kodata"), allowed_root);
            let resolved = std::fs::canonicalize(&kodata).map_err(io_error(&kodata))?;
            if !resolved.starts_with(&root) {
                return Err(KodataError::Escapes { link: kodata, target: resolved, root });
            }
            walk(&mut layer, &resolved, &root, meta, os)?;
        }
        Ok(metadata) => crate::output::warn(format!(
            "{} is {}, not a directory: nothing from it goes into the image under {KO_DATA_PATH}; make it a directory or remove it",
            kodata.display(),
            kind_of(&metadata.file_type()),
        )),
        Err(_) if kodata.symlink_metadata().is_ok() => crate::output::warn(format!(
            "{} is a symlink to nothing: nothing from it goes into the image under {KO_DATA_PATH}; fix the link or remove it",
            kodata.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&kodata)(e)),
    }
    let record = layer.finish()?;
    record_slot(cache, package_dir, os, &record)?;
    Ok(record)
}

/// Records `layer` as the kodata layer of the package in `package_dir` for `os`, and notes the
/// one recorded before it, when it differs, as replaced: after a change under `kodata/` the
/// old layer is named by nothing and leaves the cache as a relinked binary's does (see
/// [`crate::cache::gc`]). A layer another package's record names stays.
fn record_slot(cache: &Cache, package_dir: &Path, os: ImageOs, layer: &LayerRecord) -> Result<(), KodataError> {
    use sha2::Digest as _;
    let mut key = sha2::Sha256::new();
    for part in [b"kodata-slot-v1".as_slice(), package_dir.as_os_str().as_bytes(), os.key()] {
        key.update(part);
        key.update([0]);
    }
    let key = hex::encode(key.finalize());
    let last = cache.read_record::<LayerRecord>("layers", &key);
    if last.as_ref().is_some_and(|last| last.digest == layer.digest) {
        return Ok(());
    }
    cache.write_record("layers", &key, layer).map_err(LayerError::from)?;
    if let Some(last) = last {
        cache.supersede(&last.digest);
    }
    Ok(())
}

/// One directory being walked: its remaining entries in name order, where they go in the
/// layer, and its identity for telling a cycle.
struct Level {
    entries: std::vec::IntoIter<DirEntry>,
    prefix: Vec<u8>,
    id: (u64, u64),
}

impl Level {
    fn open(dir: &Path, prefix: Vec<u8>, id: (u64, u64)) -> Result<Level, KodataError> {
        let mut entries: Vec<DirEntry> =
            std::fs::read_dir(dir).map_err(io_error(dir))?.collect::<Result<_, _>>().map_err(io_error(dir))?;
        entries.sort_by_key(|e| e.file_name());
        Ok(Level { entries: entries.into_iter(), prefix, id })
    }
}

/// Adds the tree under `kodata` depth first, each directory's entries in name order. The
/// directories on the current path are kept by (device, inode), so a directory reached again
/// below itself is a cycle, whatever the route (a symlink, a bind mount).
fn walk(layer: &mut LayerWriter, kodata: &Path, root: &Path, meta: EntryMeta, os: ImageOs) -> Result<(), KodataError> {
    let top = std::fs::metadata(kodata).map_err(io_error(kodata))?;
    let records = os.file_records();
    let mut stack = vec![Level::open(kodata, os.entry("var/run/ko").into_bytes(), (top.dev(), top.ino()))?];
    while let Some(level) = stack.last_mut() {
        let Some(entry) = level.entries.next() else {
            stack.pop();
            continue;
        };
        let path = entry.path();
        // The name's bytes as they are: one that is not UTF-8 is kept, not rewritten.
        let name = [&level.prefix[..], b"/", entry.file_name().as_bytes()].concat();
        let mut target = path.clone();
        if entry.file_type().map_err(io_error(&path))?.is_symlink() {
            target = std::fs::canonicalize(&path).map_err(|source| {
                if rustix::io::Errno::from_io_error(&source) == Some(rustix::io::Errno::LOOP) {
                    KodataError::SymlinkLoop { link: path.clone() }
                } else {
                    KodataError::Io { path: path.clone(), source }
                }
            })?;
            if !target.starts_with(root) {
                return Err(KodataError::Escapes { link: path, target, root: root.to_path_buf() });
            }
        }
        let metadata = std::fs::metadata(&target).map_err(io_error(&target))?;
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            let id = (metadata.dev(), metadata.ino());
            if stack.iter().any(|l| l.id == id) {
                return Err(KodataError::Cycle { link: path, target });
            }
            layer.add_dir(&name, meta)?;
            stack.push(Level::open(&target, name, id)?);
        } else if file_type.is_file() {
            let file = std::fs::File::open(&target).map_err(io_error(&target))?;
            layer.add_file_with_records(&name, meta, metadata.len(), file, &records)?;
        } else {
            return Err(KodataError::Special { path, kind: kind_of(&file_type) });
        }
    }
    Ok(())
}

/// What a file is, with its article, for messages.
fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_inside_the_root_are_followed_and_outside_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("kodata/sub")).unwrap();
        std::fs::create_dir_all(tmp.path().join(".git")).unwrap();
        std::fs::write(pkg.join("kodata/sub/a.txt"), "a").unwrap();
        std::fs::write(tmp.path().join("shared.txt"), "s").unwrap();
        std::os::unix::fs::symlink("../../shared.txt", pkg.join("kodata/link.txt")).unwrap();
        let cache = Cache::at(tmp.path().join("cache")).unwrap();
        let record = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap();
        let file = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mode().unwrap(), 0o555);
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(
            names,
            ["var/", "var/run/", "var/run/ko/", "var/run/ko/link.txt", "var/run/ko/sub/", "var/run/ko/sub/a.txt"]
        );

        std::fs::remove_dir(tmp.path().join(".git")).unwrap();
        let err = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap_err();
        assert!(matches!(err, KodataError::Escapes { .. }), "{err}");
    }

    /// A change under kodata/ notes the package's previous kodata layer as replaced, once; an
    /// unchanged tree, or another package's, notes nothing.
    #[test]
    fn a_changed_kodata_notes_the_layer_it_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        for pkg in [&one, &two] {
            std::fs::create_dir_all(pkg.join("kodata")).unwrap();
            std::fs::write(pkg.join("kodata/page.html"), "v1").unwrap();
        }
        let cache = Cache::at(tmp.path().join("cache")).unwrap();
        let noted = || std::fs::read_to_string(cache.root().join("superseded")).unwrap_or_default();
        let first = build_layer(&cache, &one, 0, None, ImageOs::Linux).unwrap();
        assert_eq!(build_layer(&cache, &one, 0, None, ImageOs::Linux).unwrap().digest, first.digest);
        assert_eq!(build_layer(&cache, &two, 0, None, ImageOs::Linux).unwrap().digest, first.digest);
        assert_eq!(noted(), "");

        std::fs::write(one.join("kodata/page.html"), "v2").unwrap();
        let second = build_layer(&cache, &one, 0, None, ImageOs::Linux).unwrap();
        assert_ne!(second.digest, first.digest);
        build_layer(&cache, &one, 0, None, ImageOs::Linux).unwrap();
        let lines: Vec<String> = noted().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].ends_with(&format!(" {}", first.digest)), "{lines:?}");
        // Another slot: the Windows layer of the same package is recorded apart.
        build_layer(&cache, &one, 0, None, ImageOs::Windows).unwrap();
        assert_eq!(noted().lines().count(), 1);
    }

    fn names(cache: &Cache, record: &LayerRecord) -> Vec<String> {
        let file = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_byte_for_byte() {
        use std::ffi::OsStr;
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("kodata")).unwrap();
        let long = [&b"d"[..], &[0xe9; 120][..]].concat();
        std::fs::create_dir_all(pkg.join("kodata").join(OsStr::from_bytes(&long))).unwrap();
        for name in [&b"n\xff\xfe.txt"[..], b"n\xfe\xff.txt"] {
            std::fs::write(pkg.join("kodata").join(OsStr::from_bytes(name)), "x").unwrap();
        }
        let cache = Cache::at(tmp.path().join("cache")).unwrap();
        let record = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap();
        let file = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let paths: Vec<Vec<u8>> =
            archive.entries().unwrap().map(|e| e.unwrap().path_bytes().into_owned()).collect::<Vec<_>>();
        let under = |name: &[u8]| [&b"var/run/ko/"[..], name].concat();
        assert_eq!(&paths[3..], [under(&[&long[..], b"/"].concat()), under(b"n\xfe\xff.txt"), under(b"n\xff\xfe.txt")]);
    }

    #[test]
    fn a_directory_cycle_is_an_error_naming_the_link() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("kodata/sub")).unwrap();
        std::fs::create_dir_all(tmp.path().join(".git")).unwrap();
        std::os::unix::fs::symlink("..", pkg.join("kodata/sub/up")).unwrap();
        let cache = Cache::at(tmp.path().join("cache")).unwrap();
        let err = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap_err();
        match &err {
            KodataError::Cycle { link, target } => {
                assert!(link.ends_with("kodata/sub/up"), "{err}");
                assert!(target.ends_with("kodata"), "{err}");
            }
            other => panic!("expected a cycle, got {other}"),
        }

        // Two links to one directory are not a cycle: its files appear under both names.
        std::fs::remove_file(pkg.join("kodata/sub/up")).unwrap();
        std::fs::create_dir_all(tmp.path().join("assets")).unwrap();
        std::fs::write(tmp.path().join("assets/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("../../assets", pkg.join("kodata/one")).unwrap();
        std::os::unix::fs::symlink("../../assets", pkg.join("kodata/two")).unwrap();
        let record = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap();
        assert_eq!(
            names(&cache, &record),
            [
                "var/",
                "var/run/",
                "var/run/ko/",
                "var/run/ko/one/",
                "var/run/ko/one/a.txt",
                "var/run/ko/sub/",
                "var/run/ko/two/",
                "var/run/ko/two/a.txt"
            ]
        );

        // A loop of symlinks (a -> b -> a) is named too.
        std::os::unix::fs::symlink("b", pkg.join("kodata/a")).unwrap();
        std::os::unix::fs::symlink("a", pkg.join("kodata/b")).unwrap();
        let err = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap_err();
        assert!(matches!(&err, KodataError::SymlinkLoop { link } if link.ends_with("kodata/a")), "{err}");
    }

    #[test]
    fn special_files_are_refused_and_a_file_named_kodata_adds_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("kodata")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(pkg.join("kodata/pipe")).status().unwrap();
        assert!(status.success());
        let cache = Cache::at(tmp.path().join("cache")).unwrap();
        let err = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap_err();
        assert!(
            matches!(&err, KodataError::Special { path, kind: "a FIFO (named pipe)" } if path.ends_with("kodata/pipe")),
            "{err}"
        );

        std::fs::remove_dir_all(pkg.join("kodata")).unwrap();
        std::fs::write(pkg.join("kodata"), "not a directory").unwrap();
        let record = build_layer(&cache, &pkg, 0, None, ImageOs::Linux).unwrap();
        assert_eq!(names(&cache, &record), ["var/", "var/run/", "var/run/ko/"]);
    }

    #[test]
    fn windows_kodata_goes_under_files_with_a_security_descriptor() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("kodata/sub")).unwrap();
        std::fs::write(pkg.join("kodata/sub/a.txt"), "a").unwrap();
        let cache = Cache::at(tmp.path().join("cache")).unwrap();
        let record = build_layer(&cache, &pkg, 0, None, ImageOs::Windows).unwrap();
        let file = std::fs::File::open(cache.blob_path(&record.digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let rawsd = e.pax_extensions().unwrap().map(|exts| {
                exts.map(|x| x.unwrap())
                    .any(|x| x.key() == Ok("MSWINDOWS.rawsd") && x.value_bytes().starts_with(b"AQAAgBQ"))
            });
            seen.push((e.path().unwrap().to_string_lossy().into_owned(), rawsd.unwrap_or(false)));
        }
        let want = [
            ("Hives/", false),
            ("Files/", false),
            ("Files/var/", false),
            ("Files/var/run/", false),
            ("Files/var/run/ko/", false),
            ("Files/var/run/ko/sub/", false),
            ("Files/var/run/ko/sub/a.txt", true),
        ];
        assert_eq!(seen, want.map(|(n, r)| (n.to_string(), r)));
    }
}
