//! The kodata layer: the package's `kodata/` directory under `/var/run/ko`, symlinks followed
//! but only to places inside the allowed root (the module's git worktree, or
//! `KO_DATA_PATH_ALLOWED_ROOT`), every entry with mode 0555, owner root and a fixed time.

use std::path::{Path, PathBuf};

use super::layer::{EntryMeta, LayerError, LayerRecord, LayerWriter};
use crate::cache::Cache;

pub const KO_DATA_PATH: &str = "/var/run/ko";

#[derive(Debug, thiserror::Error)]
pub enum KodataError {
    #[error(
        "kodata symlink {link} resolves to {target}, which is outside the allowed root {root}; copy the file into kodata/ or set KO_DATA_PATH_ALLOWED_ROOT to a directory that holds both"
    )]
    Escapes { link: PathBuf, target: PathBuf, root: PathBuf },
    #[error("reading kodata {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// The root that kodata symlinks may point into.
fn allowed_root(kodata: &Path) -> PathBuf {
    if let Some(root) = std::env::var_os("KO_DATA_PATH_ALLOWED_ROOT").filter(|v| !v.is_empty())
        && let Ok(root) = std::fs::canonicalize(root)
        && kodata.starts_with(&root)
    {
        return root;
    }
    kodata.ancestors().find(|dir| dir.join(".git").exists()).unwrap_or(kodata).to_path_buf()
}

/// Builds the kodata layer for a package directory (an empty `/var/run/ko` when there is none).
pub fn build_layer(cache: &Cache, package_dir: &Path, mtime: u64) -> Result<LayerRecord, KodataError> {
    let meta = EntryMeta::root(0o555, mtime);
    let mut layer = LayerWriter::new(cache)?;
    for dir in ["var", "var/run", "var/run/ko"] {
        layer.add_dir(dir, meta)?;
    }
    let kodata = package_dir.join("kodata");
    if kodata.is_dir() {
        let kodata =
            std::fs::canonicalize(&kodata).map_err(|source| KodataError::Io { path: kodata.clone(), source })?;
        let root = allowed_root(&kodata);
        walk(&mut layer, &kodata, "var/run/ko", &root, meta)?;
    }
    Ok(layer.finish()?)
}

fn walk(layer: &mut LayerWriter, dir: &Path, prefix: &str, root: &Path, meta: EntryMeta) -> Result<(), KodataError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KodataError::Io { path, source }
    };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(io(dir))?.collect::<Result<Vec<_>, _>>().map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let mut target = path.clone();
        if entry.file_type().map_err(io(&path))?.is_symlink() {
            target = std::fs::canonicalize(&path).map_err(io(&path))?;
            if !target.starts_with(root) {
                return Err(KodataError::Escapes { link: path, target, root: root.to_path_buf() });
            }
        }
        let metadata = std::fs::metadata(&target).map_err(io(&target))?;
        if metadata.is_dir() {
            layer.add_dir(&name, meta)?;
            walk(layer, &target, &name, root, meta)?;
        } else if metadata.is_file() {
            let file = std::fs::File::open(&target).map_err(io(&target))?;
            layer.add_file(&name, meta, metadata.len(), file)?;
        }
    }
    Ok(())
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
        let record = build_layer(&cache, &pkg, 0).unwrap();
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
        let err = build_layer(&cache, &pkg, 0).unwrap_err();
        assert!(matches!(err, KodataError::Escapes { .. }), "{err}");
    }
}
