//! Image names: where in `KO_DOCKER_REPO` an import path's image goes, and the reference
//! strings printed for each kind of publisher, exactly as ko spells them.

use md5::{Digest as _, Md5};

use crate::digest::Digest;

/// How an import path becomes a repository name under `KO_DOCKER_REPO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    /// `<repo>/<last element>-<md5 of the import path>` (ko's default).
    #[default]
    Md5,
    /// `-P`: `<repo>/<import path>`.
    PreserveImportPaths,
    /// `-B`: `<repo>/<last element>`.
    BaseImportPaths,
    /// `--bare`: `<repo>`.
    Bare,
}

/// The image name for an import path (without `ko://`).
pub fn image_name(repo: &str, import_path: &str, naming: Naming) -> String {
    let repo = repo.trim_end_matches('/');
    let base = import_path.rsplit('/').next().filter(|b| !b.is_empty() && *b != ".").unwrap_or("ko-app");
    let join = |tail: &str| if repo.is_empty() { tail.to_string() } else { format!("{repo}/{tail}") };
    match naming {
        Naming::Md5 => join(&format!("{base}-{}", hex::encode(Md5::digest(import_path.as_bytes())))),
        Naming::PreserveImportPaths => join(import_path),
        Naming::BaseImportPaths => join(base),
        Naming::Bare => repo.to_string(),
    }
}

/// `KO_DOCKER_REPO` as ko names images under it: ko joins it with each image's name as Go's
/// `path.Join` does, which drops empty and `.` elements and resolves `..`, so
/// `registry//team/./x` names `registry/team/x/...`. `--bare` takes the value as it is.
pub fn clean_repo(repo: &str, naming: Naming) -> String {
    if naming == Naming::Bare {
        return repo.trim_end_matches('/').to_string();
    }
    let mut kept: Vec<&str> = Vec::new();
    for element in repo.split('/') {
        match element {
            "" | "." => {}
            ".." if kept.last().is_some_and(|last| *last != "..") => {
                kept.pop();
            }
            _ => kept.push(element),
        }
    }
    let cleaned = kept.join("/");
    if repo.starts_with('/') { format!("/{cleaned}") } else { cleaned }
}

/// What a registry (or tarball) publish prints: `name@digest`, `name:tag@digest` for one tag
/// other than `latest`, or `name:tag` with `--tag-only` (which a tarball ignores).
pub fn registry_reference(name: &str, tags: &[String], tag_only: bool, digest: &Digest) -> String {
    match tags {
        [tag] if tag_only => format!("{name}:{tag}"),
        [tag] if tag != "latest" => format!("{name}:{tag}@{digest}"),
        _ => format!("{name}@{digest}"),
    }
}

/// What `--push=false` prints: the first tag is always shown (`name:latest@digest`).
pub fn unpushed_reference(name: &str, tags: &[String], tag_only: bool, digest: &Digest) -> String {
    match tags.first() {
        Some(tag) if tag_only => format!("{name}:{tag}"),
        Some(tag) => format!("{name}:{tag}@{digest}"),
        None => format!("{name}@{digest}"),
    }
}

/// The tag an image gets in the local store (`KO_DOCKER_REPO` unset): the last element of
/// its name and the first 12 hex digits of its digest, `hello-<md5>-9c1e4f0a2b3d`. It is a
/// valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`), so `oci:<store>:<tag>` names the
/// image for skopeo, podman and buildah; the same image always gets the same tag, and
/// each build its own.
pub fn store_tag(name: &str, digest: &Digest) -> String {
    const SHORT: usize = 12;
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut tag: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .take(128 - SHORT - 1)
        .collect();
    if !tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        tag.insert(0, '_');
        tag.truncate(128 - SHORT - 1);
    }
    format!("{tag}-{}", &digest.hex()[..SHORT])
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &str = "example.org/sample/cmd/example";

    #[test]
    fn names_follow_ko() {
        let repo = "registry.example.org/foo/bar";
        assert_eq!(
            image_name(repo, IP, Naming::Md5),
            "registry.example.org/foo/bar/example-51d74b7127c5f7495a338df33ecdeb19"
        );
        assert_eq!(image_name(repo, IP, Naming::PreserveImportPaths), format!("{repo}/{IP}"));
        assert_eq!(image_name(repo, IP, Naming::BaseImportPaths), "registry.example.org/foo/bar/example");
        assert_eq!(image_name(repo, IP, Naming::Bare), repo);
        assert_eq!(
            image_name("r", "github.com/google/ko/test", Naming::Md5),
            "r/test-46c4b272b3716c422d5ff6dfc7547fa9"
        );
    }

    #[test]
    fn repositories_are_cleaned_as_go_joins_paths() {
        let clean = |r: &str| clean_repo(r, Naming::Md5);
        assert_eq!(clean("reg:5000//x"), "reg:5000/x");
        assert_eq!(clean("reg/a/./x/"), "reg/a/x");
        assert_eq!(clean("reg/a/../x"), "reg/x");
        assert_eq!(clean("ko.local//x"), "ko.local/x");
        assert_eq!(clean("reg/team"), "reg/team");
        // What is left is checked as a repository afterwards: these stay invalid.
        assert_eq!(clean("reg/../.."), "..");
        assert_eq!(clean("/reg/x"), "/reg/x");
        assert_eq!(clean_repo("reg//x/", Naming::Bare), "reg//x");
    }

    #[test]
    fn references_follow_ko() {
        let d = Digest::of(b"x");
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(registry_reference("n", &t(&["latest"]), false, &d), format!("n@{d}"));
        assert_eq!(registry_reference("n", &t(&["v1"]), false, &d), format!("n:v1@{d}"));
        assert_eq!(registry_reference("n", &t(&["v1", "v2"]), false, &d), format!("n@{d}"));
        assert_eq!(registry_reference("n", &t(&["v1"]), true, &d), "n:v1");
        assert_eq!(unpushed_reference("n", &t(&["latest"]), false, &d), format!("n:latest@{d}"));
        assert_eq!(unpushed_reference("n", &[], false, &d), format!("n@{d}"));
    }

    #[test]
    fn store_tags_are_valid_unique_and_stable() {
        let d = Digest::of(b"x");
        let hex12 = &d.hex()[..12];
        let tag = store_tag("ko.local/hello-124ec4359fcc3b362d8aa16b0f28dd36", &d);
        assert_eq!(tag, format!("hello-124ec4359fcc3b362d8aa16b0f28dd36-{hex12}"));
        assert_eq!(store_tag("ko.local/hello-124ec4359fcc3b362d8aa16b0f28dd36", &d), tag);
        assert_ne!(store_tag("ko.local/hello", &Digest::of(b"y")), store_tag("ko.local/hello", &d));
        assert_eq!(store_tag("ko.local", &d), format!("ko.local-{hex12}"));
        assert_eq!(store_tag(".x+y", &d), format!("_.x-y-{hex12}"));
        let long = store_tag(&"a".repeat(300), &d);
        assert_eq!(long.len(), 128);
        let valid = |t: &str| {
            t.len() <= 128
                && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        assert!(valid(&tag) && valid(&long) && valid(&store_tag(".x+y", &d)));
    }
}
