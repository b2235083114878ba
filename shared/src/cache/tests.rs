//! Unit tests of the cache (`mod.rs`).

use super::*;

#[test]
fn a_blob_damaged_on_disk_at_its_size_is_found_out_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path().join("cache")).unwrap();
    let config = br#"{"config":{"Env":["A=1"]}}"#;
    let digest = cache.put_blob_bytes(config).unwrap();
    let path = cache.blob_path(&digest);
    let damage = || std::fs::write(&path, vec![0; config.len()]).unwrap();

    damage();
    assert_eq!(cache.put_blob_bytes(config).unwrap(), digest);
    assert_eq!(std::fs::read(&path).unwrap(), config, "put again over the damage");
    damage();
    assert_eq!(cache.read_blob(&digest), None);
    assert!(!path.exists(), "removed, to be fetched again");

    // A blob another run left: hashed before it is copied out.
    std::fs::write(&path, config).unwrap();
    let other = Cache::at(dir.path().join("cache")).unwrap();
    let size = config.len() as u64;
    assert_eq!(other.check_blob(&digest, size).unwrap(), BlobState::Whole(path.clone()));
    whole_blobs().remove(&path);
    damage();
    assert_eq!(other.check_blob(&digest, size).unwrap(), BlobState::Damaged(path.clone()));
    assert!(!path.exists());
    assert_eq!(other.check_blob(&digest, size).unwrap(), BlobState::Missing);
}

#[test]
fn kocache_then_xdg_cache_home_then_home_then_tmpdir() {
    let env = |pairs: &[(&str, &str)]| Environment::from_pairs(pairs.iter().copied());
    let all = [("KOCACHE", "/k"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h"), ("TMPDIR", "/t")];
    assert_eq!(root_in(&env(&all)), PathBuf::from("/k"));
    assert_eq!(root_in(&env(&[("KOCACHE", ""), ("TMPDIR", "/t")])), PathBuf::from("/t/kubectl-ko"));
    assert_eq!(root_in(&env(&all[1..])), PathBuf::from("/x/kubectl-ko"));
    assert_eq!(root_in(&env(&[("XDG_CACHE_HOME", ""), ("HOME", "/h")])), PathBuf::from("/h/.cache/kubectl-ko"));
    assert_eq!(root_in(&env(&all[2..])), PathBuf::from("/h/.cache/kubectl-ko"));
    assert_eq!(root_in(&env(&[("HOME", ""), ("TMPDIR", "/t")])), PathBuf::from("/t/kubectl-ko"));
    if cfg!(target_os = "linux") {
        assert_eq!(root_in(&env(&[])), PathBuf::from("/tmp/kubectl-ko"));
    }
    assert_eq!(user_cache_dir(&env(&all)), PathBuf::from("/x"));
    // Relative settings are taken from this process's directory.
    let here = std::env::current_dir().unwrap();
    assert_eq!(root_in(&env(&[("KOCACHE", "kc")])), here.join("kc"));
    assert_eq!(root_in(&env(&[("XDG_CACHE_HOME", "x")])), here.join("x/kubectl-ko"));
}

#[test]
fn a_small_blob_cut_short_is_a_miss_and_is_written_again() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::at(root.path().to_path_buf()).unwrap();
    let bytes = br#"{"architecture":"amd64","os":"linux"}"#;
    let digest = cache.put_blob_bytes(bytes).unwrap();
    assert!(cache.has_blob(&digest, bytes.len() as u64));
    std::fs::write(cache.blob_path(&digest), &bytes[..7]).unwrap();
    assert!(cache.blob_path(&digest).is_file(), "the file is there");
    assert!(!cache.has_blob(&digest, bytes.len() as u64), "but cut short");
    assert_eq!(cache.put_blob_bytes(bytes).unwrap(), digest);
    assert_eq!(std::fs::read(cache.blob_path(&digest)).unwrap(), bytes);
}

#[test]
fn a_dead_runs_directory_is_swept_and_a_live_ones_is_not() {
    let root = tempfile::tempdir().unwrap();
    let tmp = root.path().join("tmp");
    fs_err::create_dir_all(tmp.join("run-1-dead")).unwrap();
    std::fs::write(tmp.join("run-1-dead/partial-layer"), vec![0u8; 4096]).unwrap();
    fs_err::create_dir_all(tmp.join("run-2-live")).unwrap();
    std::fs::write(tmp.join("run-2-live/in-use"), "x").unwrap();
    let live = File::open(tmp.join("run-2-live")).unwrap();
    live.try_lock().unwrap();
    // A loose entry from an older version: removed only once it is old.
    std::fs::write(tmp.join(".tmpOLD"), "x").unwrap();
    let old = SystemTime::now() - 2 * LOOSE_ENTRY_AGE;
    File::options().write(true).open(tmp.join(".tmpOLD")).unwrap().set_modified(old).unwrap();
    std::fs::write(tmp.join(".tmpNEW"), "x").unwrap();

    let cache = Cache::at(root.path().to_path_buf()).unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, [".tmpNEW", "run-2-live"]);
    assert!(tmp.join("run-2-live/in-use").exists());

    // This run's own directory is locked too, and holds its temporary files.
    let temp = cache.temp_file().unwrap();
    let own = temp.path().parent().unwrap().to_path_buf();
    assert!(own.file_name().unwrap().to_string_lossy().starts_with("run-"), "{}", own.display());
    assert!(File::open(&own).unwrap().try_lock().is_err(), "the run's directory is locked");
    drop(live);
}

#[test]
fn errors_of_a_damaged_or_full_cache_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the cache's directories belong: not a permission problem.
    std::fs::write(dir.path().join("cache"), "").unwrap();
    let text = Cache::at(dir.path().join("cache")).unwrap_err().to_string();
    assert!(text.contains("remove it (or all of KOCACHE") && !text.contains("this user can write"), "{text}");
    // A directory where a file belongs.
    let read = std::fs::read(dir.path()).unwrap_err();
    let text = CacheError { path: dir.path().into(), source: read }.to_string();
    assert!(text.contains("Is a directory") && text.contains("remove it"), "{text}");
    let full = io::Error::from(io::ErrorKind::StorageFull);
    let text = CacheError { path: dir.path().into(), source: full }.to_string();
    assert!(text.contains("free space"), "{text}");
    let denied = with_kocache_hint(io::Error::from(io::ErrorKind::PermissionDenied));
    assert!(denied.to_string().contains("this user can write"));
}
