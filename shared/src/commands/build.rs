//! `kubectl ko build`: resolve every import path, build them all, and only when every build
//! succeeded publish them and print one reference per argument, in argument order.

use futures_util::future::try_join_all;

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
    let packages = try_join_all(paths.iter().map(|p| session.packages.resolve(p))).await?;
    let artifacts = try_join_all(packages.iter().map(|p| session.builder.build(p))).await?;
    let items: Vec<(&str, &_)> = packages.iter().map(|p| p.import_path.as_str()).zip(&artifacts).collect();
    let references = session.publisher.publish_all(&items).await?;
    session.publisher.close().await?;
    for reference in references {
        output::result(reference);
    }
    Ok(())
}
