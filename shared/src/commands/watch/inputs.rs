//! What a watch watches, and which changed paths count. An image reads its package, its
//! embeds and `kodata` (all under the package directory), the other packages of its Go module
//! and the module's `go.mod`/`go.sum`: so the module of every image is watched as a whole
//! (a change to a package an image imports changes the binary as surely as one to the image's
//! own package; which images a change concerns is `reads`' business). Besides: `.ko.yaml`
//! (wherever `KO_CONFIG_PATH` puts it), and the `-f` inputs (a file through its directory, so
//! that an editor's save-by-rename is seen; a directory with its subdirectories under `-R`).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::cli::{BuildArgs, FileArgs, PublishArgs};

/// One directory to watch and the changes in it that count.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Root {
    pub dir: PathBuf,
    /// The subdirectories too.
    pub recursive: bool,
    /// Only this entry of `dir` counts (a single `-f` file, `.ko.yaml`).
    pub only: Option<PathBuf>,
}

impl Root {
    fn tree(dir: PathBuf) -> Root {
        Root { dir, recursive: true, only: None }
    }

    fn file(path: &Path) -> Root {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        Root { dir, recursive: false, only: Some(path.to_path_buf()) }
    }

    /// Whether a change at `path` (absolute) concerns this root: one under it, or to its
    /// directory or one above (removed, or made again).
    pub fn covers(&self, path: &Path) -> bool {
        if self.dir.starts_with(path) {
            return true;
        }
        if let Some(only) = &self.only {
            return path == only;
        }
        match path.strip_prefix(&self.dir) {
            Ok(rest) => self.recursive || rest.components().count() <= 1,
            Err(_) => false,
        }
    }
}

/// Paths no build reads, however often they change: version control, editors' scratch files,
/// and the hidden temporary files that files are written through before a rename (ours too).
pub fn is_noise(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.components().any(|c| c == Component::Normal(".git".as_ref()))
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.starts_with(".#")
        || (name.starts_with('.') && name.ends_with(".tmp"))
        || name == "4913"
}

/// What a cycle writes itself, as absolute paths: its output files and directories.
pub fn outputs(publish: &PublishArgs, build: &BuildArgs, cwd: &Path) -> Vec<PathBuf> {
    let named = [&publish.oci_layout_path, &publish.tarball, &publish.image_refs, &build.sbom_dir];
    named
        .into_iter()
        .filter_map(crate::cli::given_path)
        .filter(|p| p.as_os_str() != "-")
        .map(|p| absolute(cwd, &p))
        .collect()
}

/// The directory holding the `go.mod` that `dir` belongs to; `dir` itself when there is none.
pub fn module_root(dir: &Path) -> PathBuf {
    dir.ancestors().find(|d| d.join("go.mod").is_file()).unwrap_or(dir).to_path_buf()
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    crate::gobuild::normalize(&cwd.join(path))
}

/// Everything to watch: the modules of the packages (and the working directory's, whose
/// `go.mod` decides the versions of images from the module cache; before `go list` has ever
/// answered, the working directory's module or the directory itself), single files (where
/// `.ko.yaml` can be read from, a `go.work`), whole `trees` (what `kodata` links lead to),
/// and the `-f` inputs.
pub fn roots(
    files: &FileArgs,
    package_dirs: &[PathBuf],
    singles: &[PathBuf],
    trees: &[PathBuf],
    cwd: &Path,
) -> Vec<Root> {
    let mut roots = BTreeSet::new();
    let own = module_root(cwd);
    let mut modules: BTreeSet<PathBuf> = package_dirs.iter().map(|d| module_root(&absolute(cwd, d))).collect();
    if modules.is_empty() || own.join("go.mod").is_file() {
        modules.insert(own);
    }
    roots.extend(modules.into_iter().map(Root::tree));
    roots.extend(singles.iter().map(|c| Root::file(&absolute(cwd, c))));
    roots.extend(trees.iter().map(|t| Root::tree(absolute(cwd, t))));
    for name in files.filenames().iter().filter(|n| n.as_str() != "-") {
        let path = absolute(cwd, Path::new(name));
        if path.is_dir() {
            roots.insert(Root { dir: path, recursive: files.recursive, only: None });
        } else {
            // A link's target changes without an event in the link's directory.
            if path.is_symlink()
                && let Ok(target) = path.canonicalize()
            {
                roots.insert(Root::file(&target));
            }
            roots.insert(Root::file(&path));
        }
    }
    // A root inside a recursive one adds nothing.
    let all: Vec<Root> = roots.into_iter().collect();
    all.iter().filter(|r| !all.iter().any(|o| o != *r && o.recursive && r.dir.starts_with(&o.dir))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str], recursive: bool) -> FileArgs {
        FileArgs { filenames: vec![names.iter().map(|s| s.to_string()).collect()], recursive, selector: None }
    }

    #[test]
    fn the_modules_the_inputs_and_ko_yaml_are_watched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("mod/cmd/app/kodata")).unwrap();
        std::fs::write(root.join("mod/go.mod"), "module example.com/m\n").unwrap();
        std::fs::create_dir_all(root.join("config/sub")).unwrap();
        std::fs::write(root.join("one.yaml"), "").unwrap();
        let configs = [root.join(".ko.yaml"), root.join("conf/ko.yaml")];
        let found = roots(&files(&["config", "one.yaml"], true), &[root.join("mod/cmd/app")], &configs, &[], root);
        let module = found.iter().find(|r| r.dir == root.join("mod")).unwrap();
        assert!(module.recursive);
        assert!(module.covers(&root.join("mod/cmd/app/kodata/index.html")));
        assert!(module.covers(&root.join("mod/go.sum")));
        assert!(module.covers(&root.join("mod/cmd/app/new.go")));
        let config = found.iter().find(|r| r.dir == root.join("config")).unwrap();
        assert!(config.covers(&root.join("config/sub/new.yaml")));
        let one = found.iter().find(|r| r.only == Some(root.join("one.yaml"))).unwrap();
        assert!(one.covers(&root.join("one.yaml")) && !one.covers(&root.join("two.yaml")));
        assert!(found.iter().any(|r| r.only == Some(root.join(".ko.yaml"))));
        assert!(found.iter().any(|r| r.only == Some(root.join("conf/ko.yaml")) && r.dir == root.join("conf")));
    }

    #[test]
    fn the_working_directorys_module_is_watched_beside_images_from_the_module_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let (app, tool) = (tmp.path().join("app"), tmp.path().join("mod/example.com/tool@v1.0.0"));
        std::fs::create_dir_all(tool.join("cmd/tool")).unwrap();
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(tool.join("go.mod"), "module example.com/tool\n").unwrap();
        std::fs::write(app.join("go.mod"), "module example.com/app\n").unwrap();
        let found = roots(&files(&[], false), &[tool.join("cmd/tool")], &[], &[], &app);
        let dirs: Vec<(&Path, bool)> = found.iter().map(|r| (r.dir.as_path(), r.recursive)).collect();
        assert_eq!(dirs, [(app.as_path(), true), (tool.as_path(), true)]);
        // Without a go.mod, the working directory is watched only until the packages are known.
        std::fs::remove_file(app.join("go.mod")).unwrap();
        let found = roots(&files(&[], false), &[tool.join("cmd/tool")], &[], &[], &app);
        assert_eq!(found.iter().map(|r| r.dir.as_path()).collect::<Vec<_>>(), [tool.as_path()]);
    }

    #[test]
    fn without_r_only_a_directorys_own_files_count() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("config")).unwrap();
        std::fs::create_dir_all(tmp.path().join("mod/app")).unwrap();
        std::fs::write(tmp.path().join("mod/go.mod"), "module example.com/m\n").unwrap();
        let found = roots(&files(&["config"], false), &[tmp.path().join("mod/app")], &[], &[], tmp.path());
        let config = found.iter().find(|r| r.dir == tmp.path().join("config")).unwrap();
        assert!(config.covers(&tmp.path().join("config/a.yaml")));
        assert!(!config.covers(&tmp.path().join("config/sub/b.yaml")));
    }

    #[test]
    fn a_linked_file_is_watched_at_its_target_too() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::create_dir_all(root.join("linked")).unwrap();
        std::fs::write(root.join("shared/a.yaml"), "").unwrap();
        std::os::unix::fs::symlink("../shared/a.yaml", root.join("linked/a.yaml")).unwrap();
        let found = roots(&files(&["linked/a.yaml"], false), &[], &[], &[], &root);
        assert!(found.iter().any(|r| r.covers(&root.join("shared/a.yaml"))), "{found:?}");
        assert!(found.iter().any(|r| r.covers(&root.join("linked/a.yaml"))), "{found:?}");
    }

    #[test]
    fn version_control_and_editor_files_are_noise() {
        assert!(is_noise(Path::new("/m/.git/index")));
        assert!(is_noise(Path::new("/m/main.go~")));
        assert!(is_noise(Path::new("/m/.main.go.swp")));
        assert!(is_noise(Path::new("/m/.refs.txt.a5pEot.tmp")));
        assert!(!is_noise(Path::new("/m/main.go")));
    }
}
