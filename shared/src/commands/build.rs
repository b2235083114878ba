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
    // One image, and one line, per package however it was named.
    let packages = session.distinct_packages(&args).await?;
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
