//! `kubectl ko build`: resolve every import path, build them all and publish them (tags move
//! only when every build succeeded and every image is pushed), and print one reference per
//! package, in argument order (on stderr when `--tarball -` has stdout).

use crate::cli::BuildCommand;
use crate::error::Error;
use crate::output;

use super::Session;

pub async fn run(command: BuildCommand) -> Result<(), Error> {
    let session = Session::for_build(&command.publish, &command.build).await?;
    let mut paths = command.import_paths.clone();
    if paths.is_empty() {
        paths.push(".".into());
    }
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut packages = session.packages.resolve_all(&args).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    // One image, and one line, per package however it was named (`./cmd/a` and its import
    // path), as ko keys its results by import path.
    let mut seen = std::collections::HashSet::new();
    packages.retain(|p| seen.insert(p.import_path.clone()));
    let import_paths: Vec<&str> = packages.iter().map(|p| p.import_path.as_str()).collect();
    session.publisher.check_names(&import_paths)?;
    let references = session.build_and_publish(&packages).await.map_err(|(_, e)| e)?;
    session.publisher.close().await?;
    // With `--tarball -` stdout carries the archive alone; the references go to stderr.
    let to_stderr = session.publisher.tarball_to_stdout();
    for reference in references {
        if to_stderr {
            output::step(reference);
        } else {
            output::result(reference);
        }
    }
    Ok(())
}
