//! Unit tests of `.ko.yaml` parsing (`mod.rs`, `diagnostics.rs`, `image.rs`).

use super::*;

#[test]
fn accepts_scalar_and_list_forms() {
    let c = KoConfig::parse_str(
        "defaultPlatforms: all\ndefaultEnv: FOO=bar\ndefaultFlags: [-tags, netgo]\ndefaultLdflags: [-s -w]\n",
    )
    .unwrap();
    assert_eq!(c.default_platforms, ["all"]);
    assert_eq!(c.default_env, ["FOO=bar"]);
    assert_eq!(c.default_flags, ["-tags", "netgo"]);
    assert_eq!(c.default_ldflags, ["-s -w"]);
    // A single string is split on white space, as ko's GetStringSlice does; ldflags stay
    // whole, since they are joined into one -ldflags= anyway.
    let c = KoConfig::parse_str(
        "defaultPlatforms: linux/amd64 linux/arm64\ndefaultEnv: FOO=bar BAZ=qux\ndefaultFlags: -tags netgo\ndefaultLdflags: -X main.v={{ .Env.V }} -s\n",
    )
    .unwrap();
    assert_eq!(c.default_platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(c.default_env, ["FOO=bar", "BAZ=qux"]);
    assert_eq!(c.default_flags, ["-tags", "netgo"]);
    assert_eq!(c.default_ldflags, ["-X main.v={{ .Env.V }} -s"]);
}

#[test]
fn only_the_first_document_is_read_as_ko_reads_it() {
    let c = KoConfig::parse_str("defaultPlatforms: [linux/arm64]\n---\ndefaultBaseImage: [5]\nbogusKey: 1\n").unwrap();
    assert_eq!(c.default_platforms, ["linux/arm64"]);
    assert_eq!(c.default_base_image, None);
    let c = KoConfig::parse_str("---\ndefaultPlatforms: [linux/arm64]\n---\n").unwrap();
    assert_eq!(c.default_platforms, ["linux/arm64"]);
    for empty in ["---\n", "# nothing\n---\n---\ndefaultPlatforms: [linux/arm64]\n", "--- null\n"] {
        let c = KoConfig::parse_str(empty).unwrap();
        assert!(c.default_platforms.is_empty(), "{empty:?}");
    }
}

#[test]
fn parses_builds_with_ko_rules_for_strings() {
    let c = KoConfig::parse_str(
        "builds:\n- id: foo\n  dir: ./foo\n  main: ./cmd\n  flags: -v -v\n  ldflags: -s -w\n  env: [A=1]\n  goos: [linux]\n- dir: bar\n",
    )
    .unwrap();
    assert_eq!(c.builds[0].flags.as_deref(), Some(&["-v".to_string(), "-v".to_string()][..]));
    assert_eq!(c.builds[0].ldflags.as_deref(), Some(&["-s -w".to_string()][..]));
    assert_eq!(c.builds[1].id, "#1");
    assert_eq!(c.builds[1].main, ".");
}

#[test]
fn override_keys_are_lowercased_without_scheme() {
    let c =
        KoConfig::parse_str("defaultBaseImage: a.io/b\nbaseImageOverrides:\n  ko://Example.com/App: c.io/d\n").unwrap();
    assert_eq!(c.base_for("example.com/app"), Some("c.io/d"));
    assert_eq!(c.base_for("example.com/other"), Some("a.io/b"));
}

#[test]
fn image_blocks_merge_per_build_over_top_level() {
    let c = KoConfig::parse_str(
        "image:\n  env: [A=1, B=2]\n  workingDir: /srv\n  labels: {team: x}\n  user: \"1000\"\nbuilds:\n- id: app\n  env: [GOFLAGS=-v]\n  image:\n    env: {B: three}\n    labels: {tier: web}\n    annotations: {a: b}\n",
    )
    .unwrap();
    assert_eq!(c.builds[0].env.as_deref(), Some(&["GOFLAGS=-v".to_string()][..]), "build env stays ko's");
    let merged = c.image.overlaid(&c.builds[0].image);
    assert_eq!(merged.env, [("A".into(), "1".into()), ("B".into(), "three".into())]);
    assert_eq!(merged.working_dir.as_deref(), Some("/srv"));
    assert_eq!(merged.user.as_deref(), Some("1000"));
    assert_eq!(merged.labels.len(), 2);
    assert_eq!(merged.annotations["a"], "b");
}

#[test]
fn bad_image_env_unknown_image_keys_and_capabilities_are_errors() {
    let err = KoConfig::parse_str("image:\n  env: [NOEQUALS]\n").unwrap_err();
    assert!(err.contains("image.env") && err.contains("NOEQUALS"), "{err}");
    let err = KoConfig::parse_str("image:\n  workdir: /x\n").unwrap_err();
    assert!(err.contains("workdir"), "{err}");
    let err = KoConfig::parse_str("builds:\n- id: a\n  linux_capabilities: net_bind_service bogus\n").unwrap_err();
    assert!(err.contains("builds[0] (id a)") && err.contains("\"bogus\""), "{err}");
    let c = KoConfig::parse_str("builds:\n- linux_capabilities: [net_bind_service, sys_admin]\n").unwrap();
    assert_eq!(c.builds[0].linux_capabilities.as_ref().unwrap().len(), 2);
}

#[test]
fn duplicate_ids_and_unknown_keys_are_warnings() {
    let c = KoConfig::parse_str("builds:\n- id: app\n  dir: a\n- id: app\n  dir: b\n").unwrap();
    assert_eq!(c.warnings, ["builds[1].id \"app\" is also the id of builds[0]"]);
    assert_eq!(c.builds.len(), 2);
    let c = KoConfig::parse_str("builds:\n- id: app\n  flgs: [-v]\n").unwrap();
    assert_eq!(c.warnings, ["builds[0].flgs is not a known key and is ignored; did you mean `flags`?"]);
    assert_eq!(c.builds[0].flags, None);
}

#[test]
fn keys_are_read_whatever_their_case_as_ko_reads_them() {
    let c = KoConfig::parse_str(
        "DefaultBaseImage: example.com/base\ndefaultLdFlags: [-s]\nBuilds:\n- ID: app\n  ldFlags: [-w]\n  Main: ./cmd/app\n",
    )
    .unwrap();
    assert_eq!(c.default_base_image.as_deref(), Some("example.com/base"));
    assert_eq!(c.default_ldflags, ["-s"]);
    assert_eq!((c.builds[0].id.as_str(), c.builds[0].main.as_str()), ("app", "./cmd/app"));
    assert_eq!(c.builds[0].ldflags.as_deref(), Some(&["-w".to_string()][..]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Values and unknown keys are left as they are.
    let c = KoConfig::parse_str("defaultEnv: [DefaultLdFlags=x]\nBogus: 1\n").unwrap();
    assert_eq!(c.default_env, ["DefaultLdFlags=x"]);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
}

/// JSON's keys are all quoted; Go's `json.Marshal` of ko's own config type writes `Builds`,
/// `ID`, `Ldflags`. Quoted YAML keys are read whatever their case too.
#[test]
fn quoted_keys_are_read_whatever_their_case() {
    let c = KoConfig::parse_str(
        r#"{"Builds":[{"ID":"app","Dir":".","Main":"./cmd/app","Ldflags":["-X main.version=json"]}],"DefaultPlatforms":["linux/arm64"]}"#,
    )
    .unwrap();
    assert_eq!((c.builds[0].id.as_str(), c.builds[0].main.as_str()), ("app", "./cmd/app"));
    assert_eq!(c.builds[0].ldflags.as_deref(), Some(&["-X main.version=json".to_string()][..]));
    assert_eq!(c.default_platforms, ["linux/arm64"]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = KoConfig::parse_str("'DefaultLdflags': [-s]\n\"builds\": [{'MAIN': ./cmd/app}]\n").unwrap();
    assert_eq!(c.default_ldflags, ["-s"]);
    assert_eq!(c.builds[0].main, "./cmd/app");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn keys_whose_entries_are_all_commented_out_are_empty() {
    let c =
        KoConfig::parse_str("builds:\n# - id: app\n#   main: ./cmd/app\nbaseImageOverrides:\n#  example.com/a: b\n")
            .unwrap();
    assert!(c.builds.is_empty() && c.base_image_overrides.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn sign_key_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".ko.yaml");
    std::fs::write(&path, "signKey: keys/cosign.key\n").unwrap();
    let c = KoConfig::parse_file(&path).unwrap();
    assert_eq!(c.sign_key, Some(dir.path().join("keys/cosign.key")));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn numbers_in_lists_and_env_maps_keep_their_text() {
    let c =
        KoConfig::parse_str("defaultFlags: [-p, 4]\ndefaultEnv: 3\nimage:\n  env: {PORT: 8080, V: 1.10}\n").unwrap();
    assert_eq!(c.default_flags, ["-p", "4"]);
    assert_eq!(c.default_env, ["3"]);
    assert_eq!(c.image.env, [("PORT".into(), "8080".into()), ("V".into(), "1.10".into())]);
    let c = KoConfig::parse_str("image:\n  env: [A=1, 2]\n").unwrap_err();
    assert!(c.contains("\"2\" is not KEY=VALUE"), "{c}");
}

#[test]
fn a_wrong_typed_setting_leaves_the_rest_as_written() {
    for text in [
        "defaultPlatforms: {linux: amd64}\nimage: {env: {V: 1.10}, labels: {ver: 1.20}}\n",
        "{\"defaultPlatforms\": {\"linux\": \"amd64\"}, \"image\": {\"env\": {\"V\": 1.10}}}\n",
    ] {
        let c = KoConfig::parse_str(text).unwrap();
        assert!(c.default_platforms.is_empty(), "{text}");
        assert_eq!(c.image.env, [("V".into(), "1.10".into())], "{text}");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }
}

#[test]
fn builds_as_one_map_is_a_list_of_one_as_ko_reads_it() {
    let c = KoConfig::parse_str("builds:\n  main: ./cmd/b\n  ldflags: -X main.V=1\n").unwrap();
    assert_eq!(c.builds.len(), 1);
    assert_eq!((c.builds[0].main.as_str(), c.builds[0].ldflags.clone()), ("./cmd/b", Some(vec!["-X main.V=1".into()])));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Its keys are read whatever their case, as in a list.
    let c = KoConfig::parse_str("builds:\n  main: .\n  ldFlags: -X main.V=case\n").unwrap();
    assert_eq!(c.builds[0].ldflags, Some(vec!["-X main.V=case".into()]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let err = KoConfig::parse_str("builds:\n  main: ./cmd/b\n  flags: {x: y}\n").unwrap_err();
    assert_eq!(err, "builds.flags: expected a list of strings or a string, got a map");
}

#[test]
fn wrong_types_name_the_key() {
    let err = KoConfig::parse_str("builds:\n- id: a\n  flags: {x: y}\n").unwrap_err();
    assert_eq!(err, "builds[0].flags: expected a list of strings or a string, got a map");
    // ko reads a top-level setting of the wrong type as unset: so does this, with a warning.
    let c = KoConfig::parse_str("defaultPlatforms: {linux: amd64}\ndefaultEnv: [A=1]\n").unwrap();
    assert!(c.default_platforms.is_empty() && c.default_env == ["A=1"]);
    let warned = &c.warnings[0];
    assert!(warned.starts_with("defaultPlatforms: expected a list of strings or a string, got a map"), "{warned}");
    assert!(warned.ends_with("; it is ignored, as ko ignores it"), "{warned}");
    let c = KoConfig::parse_str("baseImageOverrides: [a, b]\ndefaultBaseImage: [x]\ndefaultFlags: [-p, 4]\n").unwrap();
    assert!(c.base_image_overrides.is_empty() && c.default_base_image.is_none());
    assert_eq!(c.default_flags, ["-p", "4"], "the rest is read as written");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    let err = KoConfig::parse_str("defaultFlags: 1.5\n").unwrap_err();
    assert!(err.starts_with("defaultFlags: expected a list of strings or a string, got a decimal"), "{err}");
    assert!(!KoConfig::parse_str("image:\n  env: {A: [1]}\n").unwrap_err().contains("untagged"));
}

#[test]
fn image_users_and_metadata_keys_are_checked() {
    for good in ["1000", "nonroot", "1000:1000", "app:staff", "NT Authority\\System"] {
        assert!(check_image_user(good).is_ok(), "{good}");
    }
    for bad in ["a\nb", "1000:", ":1000", "a:b:c", "x\t"] {
        assert!(check_image_user(bad).is_err(), "{bad:?}");
    }
    let err = KoConfig::parse_str("image:\n  user: \"1000\\n\"\n").unwrap_err();
    assert!(err.starts_with("image.user: \"1000\\n\": holds a control character"), "{err}");
    let err = KoConfig::parse_str("image:\n  labels: {\"a\\tb\": x}\n").unwrap_err();
    assert!(err.starts_with("image.labels: \"a\\tb\""), "{err}");
}

#[test]
fn syntax_errors_are_one_line_with_a_position() {
    let err = KoConfig::parse_str("builds:\n  - id: [unclosed\n").unwrap_err();
    assert!(!err.contains('\n'));
    assert!(err.contains('2') || err.contains("line"), "{err}");
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

#[test]
fn ko_variables_beat_the_file_and_blank_ones_are_unset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".ko.yaml"), "defaultBaseImage: from/file\ndefaultPlatforms: [linux/s390x]\n")
        .unwrap();
    let c = KoConfig::load(dir.path(), &env(&[("KO_DEFAULTPLATFORMS", "linux/arm64,\nlinux/amd64")])).unwrap();
    assert_eq!(c.default_platforms, ["linux/arm64", "linux/amd64"]);
    assert_eq!(c.default_base_image.as_deref(), Some("from/file"));
    assert_eq!(c.base_references()[0].0, format!("defaultBaseImage in {}", dir.path().join(".ko.yaml").display()));

    let c = KoConfig::load(dir.path(), &env(&[("KO_DEFAULTBASEIMAGE", " from/env "), ("KO_DEFAULTPLATFORMS", "  ")]))
        .unwrap();
    assert_eq!(c.default_base_image.as_deref(), Some("from/env"));
    assert_eq!(c.base_references()[0].0, "KO_DEFAULTBASEIMAGE");
    assert_eq!(c.default_platforms, ["linux/s390x"]);
}

#[test]
fn ko_baseimageoverrides_is_a_json_object_replacing_the_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".ko.yaml"), "baseImageOverrides: {example.com/a: from/file}\n").unwrap();
    let json = r#"{"ko://Example.com/B": "from/env", "example.com/c": ""}"#;
    let c = KoConfig::load(dir.path(), &env(&[("KO_BASEIMAGEOVERRIDES", json)])).unwrap();
    assert_eq!(c.base_image_overrides, BTreeMap::from([("example.com/b".into(), "from/env".into())]));
    assert_eq!(c.base_references()[0].0, "KO_BASEIMAGEOVERRIDES[example.com/b]");

    let err = KoConfig::load(dir.path(), &env(&[("KO_BASEIMAGEOVERRIDES", "example.com/b=x")])).unwrap_err();
    let err = err.to_string();
    assert!(err.starts_with("KO_BASEIMAGEOVERRIDES=\"example.com/b=x\": not a JSON object"), "{err}");
}
