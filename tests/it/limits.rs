//! Resource limits: what `resolve` keeps open grows with `-j`, not with the number of apps,
//! so a CI runner with a low descriptor limit can resolve a large set of manifests.

use std::fs;
use std::path::Path;

use crate::util::*;

const APPS: usize = 30;

/// A module with `APPS` commands and one Deployment naming each of them.
fn fleet(dir: &Path) -> String {
    fs::write(dir.join("go.mod"), "module example.com/limits\n\ngo 1.22\n").unwrap();
    let mut yaml = String::new();
    for i in 0..APPS {
        let pkg = dir.join(format!("cmd/app{i}"));
        fs::create_dir_all(&pkg).unwrap();
        fs::write(
            pkg.join("main.go"),
            format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println(\"app {i}\") }}\n"),
        )
        .unwrap();
        yaml.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: ko://example.com/limits/cmd/app{i}\n"
        ));
    }
    let path = dir.join("fleet.yaml");
    fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

/// `ulimit -n 64` (the soft limit, so that Go, which raises its own soft limit to the hard
/// one, is not limited), then the tool.
fn under_fd_limit(limit: u32, binary: &str, args: &[&str]) -> KoCmd {
    KoCmd::program("sh").arg("-c").arg(format!("ulimit -Sn {limit} && exec \"$0\" \"$@\"")).arg(bin(binary)).args(args)
}

#[test]
fn resolving_thirty_apps_fits_in_64_descriptors() {
    let repo = unique_repo("limits");
    let dir = tempfile::tempdir().unwrap();
    let yaml = fleet(dir.path());
    // A fresh cache: every layer is new and every image is uploaded, the most that is ever open.
    let run = under_fd_limit(64, "kubectl-ko-resolve", &["-j", "4", "-f", &yaml])
        .cwd(dir.path())
        .env("KO_DOCKER_REPO", &repo)
        .run();
    run.assert_success();
    let images: Vec<&str> = run.stdout.lines().filter_map(|l| l.trim().strip_prefix("image: ")).collect();
    assert_eq!(images.len(), APPS, "{run}");
    for (i, image) in images.iter().enumerate() {
        assert!(image.starts_with(&format!("{repo}/app{i}-")) && image.contains("@sha256:"), "{image}\n{run}");
    }
    // The first and the last image run and say who they are.
    for i in [0, APPS - 1] {
        let out = run_image(images[i]);
        out.assert_success();
        assert_eq!(out.stdout.trim(), format!("app {i}"), "{out}");
    }
}
