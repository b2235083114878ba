//! Command-line flags shared by the plugins, spelled as ko spells them, so that `ko` can be
//! aliased to `kubectl ko`. Boolean flags accept `--flag=false` like Go's pflag does. The flag
//! groups every command shares, `build`, `resolve` and `completion` are here; `deploy` holds the
//! commands that reach the cluster, `login` holds `login` and `logout`.

use std::path::PathBuf;

use clap::ArgAction;
use clap::builder::BoolishValueParser;

mod csv;
mod deploy;
mod gocache;
mod login;

pub use csv::{CsvList, csv_list, flatten};
pub use deploy::{ApplyCommand, CreateCommand, DeleteCommand, DeployArgs, KubeArgs, RunCommand, WatchArgs};
pub use gocache::GocacheCommand;
pub use login::{LoginCommand, LogoutCommand};

/// Parses `args` (the program's name first) as the command `C`, with every flag that takes a
/// value taking the next word even when it starts with a dash, as Go's pflag does (see
/// [`with_pflag_values`]).
pub fn parse<C, I, T>(args: I) -> Result<C, clap::Error>
where
    C: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = with_pflag_values(C::command());
    let mut matches = command.try_get_matches_from_mut(args)?;
    C::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
}

/// `command` with every flag that takes a value (`--ldflags "-s -w"`, `--image-user -1`,
/// `-t -rc1`) taking the next word as it is, dash or not: ko's flags are Go's pflag flags,
/// which do, where clap would read a word that starts with a dash as another flag. Boolean
/// flags take their value only after `=`, so the word after them is never theirs.
fn with_pflag_values(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let takes_value = !arg.is_positional()
                && !arg.is_require_equals_set()
                && matches!(arg.get_action(), ArgAction::Set | ArgAction::Append);
            if takes_value { arg.allow_hyphen_values(true) } else { arg }
        })
        .mut_subcommands(with_pflag_values)
}

/// Flags of every command.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// Enable debug logs
    #[arg(short = 'v', long, global = true, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub verbose: bool,
}

/// Where and how images are published (ko's publish flags).
#[derive(clap::Args, Clone, Debug)]
pub struct PublishArgs {
    /// Which tags to use for the produced image instead of the default 'latest' tag
    #[arg(short = 't', long = "tags", value_parser = csv_list, default_value = "latest")]
    pub tags: Vec<CsvList>,
    /// Include tags but not digests in resolved image references
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub tag_only: bool,
    /// Push images to KO_DOCKER_REPO
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub push: bool,
    /// Load into images to local docker daemon
    #[arg(short = 'L', long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub local: bool,
    /// Whether to skip TLS verification on the registry (and allow plain HTTP)
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub insecure_registry: bool,
    /// A PEM file of CA certificates to trust for registries, besides the system's (repeatable; SSL_CERT_FILE also works)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub registry_ca_file: Vec<PathBuf>,
    /// Path to save the OCI image layout of the built images
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, value_parser = path_or_empty)]
    pub oci_layout_path: Option<PathBuf>,
    /// File to save images tarballs
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath, value_parser = path_or_empty)]
    pub tarball: Option<PathBuf>,
    /// Path to file where a list of the published image references will be written
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath, value_parser = path_or_empty)]
    pub image_refs: Option<PathBuf>,
    /// Whether to preserve the full import path after KO_DOCKER_REPO
    #[arg(short = 'P', long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub preserve_import_paths: bool,
    /// Whether to use the base path without MD5 hash after KO_DOCKER_REPO
    #[arg(short = 'B', long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub base_import_paths: bool,
    /// Whether to just use KO_DOCKER_REPO without additional context
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub bare: bool,
    /// Sign every image and index with this key (cosign's format, password in COSIGN_PASSWORD, or a PKCS#8 P-256/Ed25519 PEM; also KO_SIGN_KEY, .ko.yaml signKey)
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub sign_key: Option<PathBuf>,
    /// Attest SLSA provenance for every image (default: true with --sign-key)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub provenance: Option<bool>,
    /// With --sign-key, also push the sha256-<hex>.sig and .att tags that cosign 2 and older read
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub sign_legacy_tags: bool,
}

impl PublishArgs {
    /// The tags of every `-t`, in order.
    pub fn tags(&self) -> Vec<String> {
        flatten(&self.tags)
    }
}

/// A path flag's value, empty allowed: `--tarball "$TARBALL"` with the variable empty is no
/// flag, as in ko (clap's path parser refuses an empty value). [`given_path`] drops it.
fn path_or_empty(value: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(value))
}

/// A path flag read with [`path_or_empty`], as given: an empty value is no flag.
pub fn given_path(value: &Option<PathBuf>) -> Option<PathBuf> {
    value.clone().filter(|p| !p.as_os_str().is_empty())
}

/// `-j N`: a count of builds, said plainly when it is not one (ko hangs on `-j -1`).
fn parse_jobs(value: &str) -> Result<usize, String> {
    value.trim().parse().map_err(|_| "give a whole number of builds at a time, such as 4 (0: one per CPU)".to_string())
}

/// How images are built (ko's build flags).
#[derive(clap::Args, Clone, Debug)]
pub struct BuildArgs {
    /// The maximum number of concurrent builds (default: number of CPUs)
    #[arg(short = 'j', long, default_value_t = 0, value_parser = parse_jobs)]
    pub jobs: usize,
    /// Disable optimizations when building Go code
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub disable_optimizations: bool,
    /// ldflags to pass to go build (may be repeated)
    #[arg(long, value_parser = csv_list)]
    pub ldflags: Option<Vec<CsvList>>,
    /// The SBOM media type to use (none will disable SBOM synthesis and upload)
    #[arg(long, default_value = "spdx")]
    pub sbom: String,
    /// Path to directory where the SBOM will be written
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, value_parser = path_or_empty)]
    pub sbom_dir: Option<PathBuf>,
    /// Which platform to use when pulling a multi-platform base. Format: all | <os>[/<arch>[/<variant>]][,platform]*
    #[arg(long, value_parser = csv_list)]
    pub platform: Vec<CsvList>,
    /// Which labels (key=value[,key=value]) to add to the image
    #[arg(long, value_parser = csv_list)]
    pub image_label: Vec<CsvList>,
    /// Which annotations (key=value[,key=value]) to add to the OCI manifest
    #[arg(long, value_parser = csv_list)]
    pub image_annotation: Vec<CsvList>,
    /// The default user the image should be run as
    #[arg(long)]
    pub image_user: Option<String>,
    /// Include Delve debugger into image and wrap around ko-app
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub debug: bool,
}

impl BuildArgs {
    /// The ldflags of every `--ldflags`, in order; `None` when the flag was not given.
    pub fn ldflags(&self) -> Option<Vec<String>> {
        self.ldflags.as_deref().map(flatten)
    }

    /// The platforms of every `--platform`, in order.
    pub fn platforms(&self) -> Vec<String> {
        flatten(&self.platform)
    }

    /// The `key=value` pairs of every `--image-label`, in order.
    pub fn labels(&self) -> Vec<String> {
        flatten(&self.image_label)
    }

    /// The `key=value` pairs of every `--image-annotation`, in order.
    pub fn annotations(&self) -> Vec<String> {
        flatten(&self.image_annotation)
    }
}

/// `kubectl ko build IMPORTPATH...`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-build",
    bin_name = "kubectl ko build",
    args_override_self = true,
    version,
    about = "Build and publish container images from the given importpaths.",
    long_about = "Builds the given Go import paths into binaries, puts each on a base image and publishes \
the image to KO_DOCKER_REPO, printing one image reference per import path.\n\n\
Import paths may be local (., ./cmd/app, ../app), fully qualified (example.com/app/cmd/app), \
or prefixed with ko://."
)]
pub struct BuildCommand {
    /// Import paths of `package main` packages (default: .)
    #[arg(value_name = "IMPORTPATH", value_hint = clap::ValueHint::DirPath)]
    pub import_paths: Vec<String>,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Which files to read and which objects in them to keep (ko's `-f`, `-R`, `-l`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct FileArgs {
    /// Filename, directory, or - for stdin, of the YAML or JSON to use (may be repeated)
    #[arg(short = 'f', long = "filename", value_parser = csv_list, value_name = "FILE", value_hint = clap::ValueHint::AnyPath)]
    pub filenames: Vec<CsvList>,
    /// Process the directories given with -f recursively
    #[arg(short = 'R', long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub recursive: bool,
    /// Selector (label query) to filter on, supports '=', '==', '!=', 'in', 'notin' and existence (e.g. -l key1=value1,key2=value2)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

impl FileArgs {
    /// The files and directories of every `-f`, in order.
    pub fn filenames(&self) -> Vec<String> {
        flatten(&self.filenames)
    }
}

/// `kubectl ko resolve -f FILE...`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-resolve",
    bin_name = "kubectl ko resolve",
    args_override_self = true,
    version,
    about = "Print the input files with image references resolved to built/pushed image digests.",
    long_about = "Builds and publishes every ko://<import path> string found in the given Kubernetes YAML \
or JSON, then prints the input with each of those strings replaced by the published image reference. \
Everything else is printed byte for byte as written: comments, quoting, key order and layout."
)]
pub struct ResolveCommand {
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `kubectl ko completion SHELL`
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "kubectl-ko-completion",
    bin_name = "kubectl ko completion",
    args_override_self = true,
    version,
    about = "Print a shell completion script for the kubectl-ko binaries.",
    long_about = "Prints a completion script for bash, zsh, fish or PowerShell that completes the suite's binaries \
when they are run directly (kubectl-ko, kubectl-ko-build, ...). Load it with, for example:\n\n  \
source <(kubectl ko completion bash)     # in ~/.bashrc\n  \
source <(kubectl ko completion zsh)      # in ~/.zshrc\n  \
kubectl ko completion fish | source      # in ~/.config/fish/config.fish\n  \
kubectl ko completion powershell | Out-String | Invoke-Expression   # in $PROFILE\n\n\
`kubectl ko <TAB>` is completed by kubectl's own completion (kubectl 1.26 and later), which \
asks the kubectl_complete-ko program on PATH. A krew install puts only kubectl-ko on PATH; \
kubectl-ko is kubectl_complete-ko when run under that name, so link it into a directory on \
your PATH under that name, for example:\n\n  \
ln -sf \"$(command -v kubectl-ko)\" ~/.local/bin/kubectl_complete-ko"
)]
pub struct CompletionCommand {
    /// The shell to print the script for (none: this help, as ko prints it)
    #[arg(value_enum)]
    pub shell: Option<CompletionShell>,
    /// Leave the descriptions of commands and flags out of the script
    #[arg(long)]
    pub no_descriptions: bool,
}

/// The shells `kubectl ko completion` writes scripts for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(args: &[&str]) -> Result<BuildCommand, clap::Error> {
        parse(["kubectl-ko-build"].iter().chain(args))
    }

    #[test]
    fn a_value_that_starts_with_a_dash_belongs_to_its_flag_as_in_pflag() {
        let c = build(&["--ldflags", "-X main.version=1", "--image-user", "-1", "-t", "-rc1", "./cmd/app"]).unwrap();
        assert_eq!(c.build.ldflags(), Some(vec!["-X main.version=1".to_string()]));
        assert_eq!(c.build.image_user.as_deref(), Some("-1"));
        assert_eq!(c.publish.tags(), ["-rc1"]);
        assert_eq!(c.import_paths, ["./cmd/app"]);
        let c = parse::<ResolveCommand, _, _>(["resolve", "-f", "-", "--ldflags", "-s -w"]).unwrap();
        assert_eq!((c.files.filenames(), c.build.ldflags()), (vec!["-".to_string()], Some(vec!["-s -w".to_string()])));
    }

    #[test]
    fn list_flags_split_each_occurrence_as_csv() {
        let c = build(&["--image-label", "\"desc=a, b\",x=1", "--image-label=y=2", "-t", "v1,v2", "--tags="]).unwrap();
        assert_eq!(c.build.labels(), ["desc=a, b", "x=1", "y=2"]);
        assert_eq!(c.publish.tags(), ["v1", "v2"]);
        assert_eq!(build(&[]).unwrap().publish.tags(), ["latest"]);
        assert_eq!(build(&[]).unwrap().build.ldflags(), None);
        let err = build(&["--image-annotation", "\"k=say hi"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("--image-annotation"), "{err}");
    }

    #[test]
    fn boolean_flags_and_unknown_flags_are_unchanged() {
        // A boolean flag takes its value only after `=`: the next word is not its value.
        let c = build(&["--push", "-t", "v1", "--bare"]).unwrap();
        assert!(c.publish.push && c.publish.bare);
        assert_eq!(c.publish.tags(), ["v1"]);
        let unknown = build(&["--nope", "."]).unwrap_err();
        assert_eq!(unknown.kind(), clap::error::ErrorKind::UnknownArgument);
        let missing = build(&["--ldflags"]).unwrap_err();
        assert_eq!(missing.kind(), clap::error::ErrorKind::InvalidValue, "{missing}");
    }
}
