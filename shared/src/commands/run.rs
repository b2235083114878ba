//! `kubectl ko run`: build and publish each import path as `build` does, then run the image in
//! a pod through the user's kubectl: `kubectl run NAME --image REF --attach --rm
//! --restart=Never`, followed by the flags the user gave after `--` (and, after a second `--`,
//! the container's arguments), as ko does.

use std::ffi::OsString;

use crate::cli::RunCommand;
use crate::error::Error;
use crate::output;

use super::{Session, kubectl, resolve};

/// The pod's name: the last element of the image's repository (ko's choice), made a valid
/// DNS label (lowercase letters, digits and `-`, at most 63 characters).
pub fn pod_name(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repository = last.split(':').next().unwrap_or(last);
    let mut name: String = repository
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(63)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    let name = name.trim_start_matches('-').to_string();
    if name.is_empty() { "ko-app".into() } else { name }
}

/// `kubectl run` for one image, ko's defaults first so that the user's flags win.
pub fn run_args(reference: &str, user_args: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["run", &pod_name(reference), "--image", reference]
        .into_iter()
        .chain(["--attach", "--rm", "--restart=Never", "--log-flush-frequency=1s"])
        .map(OsString::from)
        .collect();
    args.extend(user_args.iter().map(OsString::from));
    args
}

pub async fn run(command: RunCommand) -> Result<(), Error> {
    resolve::require_registry(&command.publish, crate::settings::Environment::process())?;
    kubectl::program("`kubectl ko run`")?;
    let session = Session::new(&command.publish, &command.build).await?;
    let args: Vec<&str> = command.import_paths.iter().map(String::as_str).collect();
    // One pod per package however it was named.
    let packages = session.distinct_packages(&args).await?;
    let references = session.build_and_publish(&packages).await.map_err(|(_, e)| e)?;
    session.publisher.close().await?;
    for (package, reference) in packages.iter().zip(references) {
        output::step(format!("Running \"ko://{}\"", package.import_path));
        kubectl::run(run_args(&reference, &command.kubectl_args), None).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{pod_name, run_args};

    #[test]
    fn pods_are_named_after_the_repository() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(pod_name(&format!("127.0.0.1:5000/team/hello-1a2b@{digest}")), "hello-1a2b");
        assert_eq!(pod_name("ko.local/hello-1a2b:0123abcd"), "hello-1a2b");
        assert_eq!(pod_name(&format!("r.example/My_App:v1@{digest}")), "my-app");
        assert_eq!(pod_name(&format!("r.example/{}@{digest}", "a".repeat(80))).len(), 63);
    }

    #[test]
    fn the_users_flags_come_after_kos_defaults() {
        let args = run_args("r/app@sha256:00", &["--rm=false".into(), "--".into(), "--port=1".into()]);
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "run",
                "app",
                "--image",
                "r/app@sha256:00",
                "--attach",
                "--rm",
                "--restart=Never",
                "--log-flush-frequency=1s",
                "--rm=false",
                "--",
                "--port=1"
            ]
        );
    }
}
