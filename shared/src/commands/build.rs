//! `kubectl ko build`: resolve every import path, build them all, and only when every build
//! succeeded publish them and print one reference per argument, in argument order.

use crate::cli::BuildCommand;
use crate::error::Error;
use crate::output;

use super::Session;

pub async fn run(command: BuildCommand) -> Result<(), Error> {
    let session = Session::new(&command.publish, &command.build).await?;
    let mut paths = command.import_paths.clone();
    if paths.is_empty() {
        paths.push(".".into());
    }
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let packages = session.packages.resolve_all(&args).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let artifacts = session.builder.build_all(&packages).await.map_err(|(_, e)| e)?;
    let items: Vec<(&str, &_)> = packages.iter().map(|p| p.import_path.as_str()).zip(&artifacts).collect();
    let references = session.publisher.publish_all(&items).await?;
    session.publisher.close().await?;
    for reference in references {
        output::result(reference);
    }
    Ok(())
}
