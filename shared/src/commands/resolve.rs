//! `kubectl ko resolve`: read the `-f` inputs, build and publish every distinct `ko://` string
//! once (all in parallel, bounded by `-j`), and print the inputs with those strings replaced.
//! `apply` shares all of this.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use crate::cli::{BuildArgs, FileArgs, PublishArgs, ResolveCommand};
use crate::error::Error;
use crate::gobuild::Package;
use crate::output;
use crate::settings::Environment;
use crate::yaml::{ManifestFile, Rendered, Selector, read_inputs};

use super::Session;

/// Reads and parses every input, dropping what the selector does not match. Runs before any
/// build so that a YAML mistake is reported at once.
pub fn load(files: &FileArgs) -> Result<Vec<ManifestFile>, Error> {
    let filenames = files.filenames();
    if filenames.is_empty() {
        return Err(Error::usage("-f", "no input given; pass -f FILE, -f DIRECTORY or -f - for stdin"));
    }
    // As ko: an empty selector (`-l "$SELECTOR"` with the variable unset) selects nothing out
    // and asks nothing of the documents.
    let wanted = files.selector.as_deref().filter(|s| !s.trim().is_empty());
    let selector = match wanted {
        Some(s) => Selector::parse(s).map_err(|e| Error::usage("--selector", e.to_string()))?,
        None => Selector::default(),
    };
    let mut manifests = Vec::new();
    for input in read_inputs(&filenames, files.recursive)? {
        let mut manifest = ManifestFile::parse(input.name, input.text)?;
        if wanted.is_some() {
            manifest.select(&selector)?;
        }
        manifests.push(manifest);
    }
    Ok(manifests)
}

/// `resolve`, `apply`, `create` and `run` put references into Kubernetes, which must be able to
/// pull them: unlike `build`, they do not fall back to the local store when `KO_DOCKER_REPO`
/// is unset, and fail as ko does (unless nothing is pushed, or `--local` names the daemon).
/// ko fails even when there is nothing to build; here YAML without `ko://` passes through.
pub fn require_registry(publish: &PublishArgs, env: &Environment) -> Result<(), Error> {
    let repo = env.text("KO_DOCKER_REPO").unwrap_or_default();
    if !repo.trim().is_empty() || publish.local || !publish.push {
        return Ok(());
    }
    Err(Error::usage(
        "KO_DOCKER_REPO",
        "it is unset, so the images would have no place a cluster can pull them from; set it to a registry (KO_DOCKER_REPO=ghcr.io/you), to ko.local for the Docker daemon, or to kind.local for a kind cluster",
    ))
}

/// Builds and publishes every `ko://` reference in the manifests, and returns each file's text
/// with the references replaced. Nothing is returned unless every image was published.
pub async fn resolve(
    manifests: &[ManifestFile],
    publish: &PublishArgs,
    build: &BuildArgs,
) -> Result<Vec<String>, Error> {
    let replacements = publish_references(manifests, publish, build).await?;
    manifests.iter().map(|m| m.render(&replacements).map_err(Error::from)).collect()
}

/// Builds and publishes every distinct `ko://` value of the manifests once; returns what
/// each value is replaced with. Nothing is returned unless every image was published.
pub async fn publish_references(
    manifests: &[ManifestFile],
    publish: &PublishArgs,
    build: &BuildArgs,
) -> Result<HashMap<String, String>, Error> {
    publish_references_seen(manifests, publish, build, &HashMap::new(), &mut Vec::new()).await
}

/// [`publish_references`] for a watch: the values in `reuse` keep the reference given there and
/// are not built; `seen` is told where each built value's package is as soon as `go list` has
/// answered (so a build that fails still says what to watch).
pub async fn publish_references_seen(
    manifests: &[ManifestFile],
    publish: &PublishArgs,
    build: &BuildArgs,
    reuse: &HashMap<String, String>,
    seen: &mut Vec<(String, PathBuf)>,
) -> Result<HashMap<String, String>, Error> {
    // Each distinct value once, remembered with where it first appeared.
    let mut wanted: Vec<(String, String, usize)> = Vec::new();
    let mut known = HashSet::new();
    for manifest in manifests {
        for reference in manifest.references() {
            if !reuse.contains_key(reference.value) && known.insert(reference.value) {
                wanted.push((reference.value.to_string(), manifest.name.clone(), reference.line));
            }
        }
    }
    let mut replacements: HashMap<String, String> = manifests
        .iter()
        .flat_map(|m| m.references())
        .filter_map(|r| reuse.get_key_value(r.value))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if wanted.is_empty() {
        return Ok(replacements);
    }
    require_registry(publish, Environment::process())?;
    let session = Session::new(publish, build).await?;
    let at = |index: usize, error: Error| {
        let (value, file, line) = &wanted[index];
        Error::Reference { file: file.clone(), line: *line, value: value.clone(), source: Box::new(error) }
    };
    let values: Vec<&str> = wanted.iter().map(|(value, _, _)| value.as_str()).collect();
    let packages = session
        .packages
        .resolve_all(&values)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.map_err(|e| at(i, e.into())))
        .collect::<Result<Vec<_>, _>>()?;
    seen.extend(wanted.iter().zip(&packages).map(|((value, _, _), p)| (value.clone(), p.dir.clone())));
    // One build for each package, however its values spell it (`ko://./cmd/app`,
    // `ko://./cmd/app/`, `ko://example.com/m/cmd/app`).
    let (distinct, of_value) = distinct_packages(packages);
    // Every image name is checked before anything is built: early layer uploads would
    // otherwise reach the registry before a bad name is found.
    let import_paths: Vec<&str> = distinct.iter().map(|p| p.import_path.as_str()).collect();
    session.publisher.check_names(&import_paths)?;
    let references = session.build_and_publish(&distinct).await.map_err(|(i, e)| match e {
        Error::Publish(_) => e,
        e => at(of_value.iter().position(|&d| d == i).unwrap_or(0), e),
    })?;
    for ((value, _, _), d) in wanted.iter().zip(of_value) {
        replacements.insert(value.clone(), references[d].clone());
    }
    session.publisher.close().await?;
    Ok(replacements)
}

/// The packages with each one built in the same place listed once, and for each of the
/// given packages its index among those.
fn distinct_packages(packages: Vec<Package>) -> (Vec<Package>, Vec<usize>) {
    let mut distinct: Vec<Package> = Vec::new();
    let mut of_value = Vec::with_capacity(packages.len());
    for package in packages {
        let same = |p: &Package| p.import_path == package.import_path && p.build_dir == package.build_dir;
        match distinct.iter().position(same) {
            Some(d) => of_value.push(d),
            None => {
                of_value.push(distinct.len());
                distinct.push(package);
            }
        }
    }
    (distinct, of_value)
}

/// Writes the resolved files as one stream, without putting it together in memory: files are
/// separated by `---` unless one already starts a document with it, or by `...` before one
/// that opens with a directive (`%YAML 1.2`); files a selector emptied contribute nothing.
/// The stream ends with a `---` line, as ko's does, so outputs appended to one file
/// (`resolve -f a >> all.yaml; resolve -f b >> all.yaml`) stay separate documents; only a
/// stream of one JSON file ends as the file does, so that it stays JSON.
pub fn write_joined(files: &[Rendered], out: &mut impl Write) -> std::io::Result<()> {
    let mut first = true;
    let mut ended_with_newline = true;
    let printed: Vec<&Rendered> = files.iter().filter(|f| !f.is_blank()).collect();
    let one_json = matches!(printed.as_slice(), [only] if only.opens_with_flow_collection());
    for file in printed {
        if !first {
            if !ended_with_newline {
                out.write_all(b"\n")?;
            }
            if file.starts_with_directive() {
                out.write_all(b"...\n")?;
            } else if !file.starts_with_document_marker() {
                out.write_all(b"---\n")?;
            }
        }
        file.write_to(out)?;
        first = false;
        ended_with_newline = file.ends_with_newline();
    }
    if !first && !one_json {
        out.write_all(if ended_with_newline { b"---\n" } else { b"\n---\n" })?;
    }
    Ok(())
}

/// Hands stdout large writes as they are and small ones gathered, through the one output module.
struct ResultWriter {
    buffer: Vec<u8>,
}

impl ResultWriter {
    const CAPACITY: usize = 256 * 1024;

    fn new() -> ResultWriter {
        ResultWriter { buffer: Vec::with_capacity(Self::CAPACITY) }
    }
}

impl Write for ResultWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.buffer.len() + bytes.len() > Self::CAPACITY {
            self.flush()?;
        }
        if bytes.len() >= Self::CAPACITY {
            output::result_bytes(bytes);
        } else {
            self.buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            output::result_bytes(&self.buffer);
            self.buffer.clear();
        }
        Ok(())
    }
}

pub async fn run(command: ResolveCommand) -> Result<(), Error> {
    if command.watch.watch {
        let inputs = super::watch::Inputs { files: &command.files, publish: &command.publish, build: &command.build };
        return super::watch::run(inputs, super::watch::Target::Print).await;
    }
    let manifests = load(&command.files)?;
    let replacements = publish_references(&manifests, &command.publish, &command.build).await?;
    // Every file is checked before the first byte goes out.
    let rendered = manifests.iter().map(|m| m.rendered(&replacements)).collect::<Result<Vec<_>, _>>()?;
    print_joined(&rendered);
    Ok(())
}

/// Prints the resolved files as one stream on stdout (see [`write_joined`]).
pub fn print_joined(rendered: &[Rendered]) {
    let mut out = ResultWriter::new();
    // `output` handles a failed write: a closed pipe ends the run quietly, any other failure
    // makes it fail at the end.
    let _ = write_joined(rendered, &mut out).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser as _;

    use super::{distinct_packages, require_registry, write_joined};
    use crate::cli::ResolveCommand;
    use crate::gobuild::Package;
    use crate::settings::Environment;
    use crate::yaml::ManifestFile;

    #[test]
    fn a_package_spelled_several_ways_is_built_once() {
        let package = |import_path: &str, build_dir: &str| Package {
            import_path: import_path.into(),
            dir: "/m/cmd".into(),
            build_dir: build_dir.into(),
            config: None,
        };
        let (distinct, of_value) = distinct_packages(vec![
            package("example.com/m/cmd/a", "/m"),
            package("example.com/m/cmd/b", "/m"),
            package("example.com/m/cmd/a", "/m"),
            package("example.com/m/cmd/a", "/other"),
        ]);
        assert_eq!(of_value, [0, 1, 0, 2]);
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn a_registry_is_required_unless_nothing_is_pushed_or_it_goes_to_the_daemon() {
        let publish = |flags: &[&str]| {
            let args = ["resolve", "-f", "x.yaml"].iter().chain(flags);
            ResolveCommand::try_parse_from(args).unwrap().publish
        };
        let env = |repo: &str| Environment::from_pairs([("KO_DOCKER_REPO", repo)]);
        assert!(require_registry(&publish(&[]), &env("r.example/team")).is_ok());
        for unset in [Environment::default(), env(" ")] {
            let err = require_registry(&publish(&[]), &unset).unwrap_err().to_string();
            assert!(err.contains("KO_DOCKER_REPO") && err.contains("it is unset"), "{err}");
            assert!(require_registry(&publish(&["--push=false"]), &unset).is_ok());
            assert!(require_registry(&publish(&["--local"]), &unset).is_ok());
        }
    }

    #[test]
    fn files_are_joined_with_one_separator() {
        let texts = ["a: 1".to_string(), "b: 2\n".into(), "".into(), "  \n".into(), "---\nc: 3\n".into()];
        let files: Vec<_> = texts.iter().map(|t| ManifestFile::parse("t", t.clone()).unwrap()).collect();
        let none = HashMap::new();
        let rendered: Vec<_> = files.iter().map(|f| f.rendered(&none).unwrap()).collect();
        let mut out = Vec::new();
        write_joined(&rendered, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a: 1\n---\nb: 2\n---\nc: 3\n---\n");
    }

    #[test]
    fn the_stream_ends_with_a_separator_unless_it_is_one_json_file() {
        let joined = |texts: &[&str]| {
            let files: Vec<_> = texts.iter().map(|t| ManifestFile::parse("t", t.to_string()).unwrap()).collect();
            let none = HashMap::new();
            let rendered: Vec<_> = files.iter().map(|f| f.rendered(&none).unwrap()).collect();
            let mut out = Vec::new();
            write_joined(&rendered, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(joined(&["a: 1"]), "a: 1\n---\n");
        assert_eq!(joined(&["\n {\"a\": 1}\n"]), "\n {\"a\": 1}\n");
        assert_eq!(joined(&["[1]", ""]), "[1]");
        assert_eq!(joined(&["{\"a\": 1}\n", "b: 2\n"]), "{\"a\": 1}\n---\nb: 2\n---\n");
        assert_eq!(joined(&["", " \n"]), "");
    }

    #[test]
    fn a_file_opening_with_a_dashed_key_still_gets_a_separator() {
        let texts = ["a: 1\n".to_string(), "----: 2\nb: 3\n".into(), "---\t# c\nd: 4\n".into()];
        let files: Vec<_> = texts.iter().map(|t| ManifestFile::parse("t", t.clone()).unwrap()).collect();
        let none = HashMap::new();
        let rendered: Vec<_> = files.iter().map(|f| f.rendered(&none).unwrap()).collect();
        let mut out = Vec::new();
        write_joined(&rendered, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a: 1\n---\n----: 2\nb: 3\n---\t# c\nd: 4\n---\n");
    }

    #[test]
    fn a_file_opening_with_a_directive_follows_a_document_end_marker() {
        let texts = ["a: 1\n".to_string(), "# c\n%YAML 1.2\n---\nb: 2\n".into()];
        let files: Vec<_> = texts.iter().map(|t| ManifestFile::parse("t", t.clone()).unwrap()).collect();
        let none = HashMap::new();
        let rendered: Vec<_> = files.iter().map(|f| f.rendered(&none).unwrap()).collect();
        let mut out = Vec::new();
        write_joined(&rendered, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "a: 1\n...\n# c\n%YAML 1.2\n---\nb: 2\n---\n");
        ManifestFile::parse("joined", out).expect("the joined stream is valid YAML");
    }
}
