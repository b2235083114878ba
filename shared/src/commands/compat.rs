//! Keeps `docs/ko-compatibility.md` true: its flag table is compared with the commands' real
//! clap definitions, both ways (test only).

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    use crate::cli;

    const DOC: &str = include_str!("../../../docs/ko-compatibility.md");

    /// Our commands by the names the document uses.
    fn command(name: &str) -> clap::Command {
        match name {
            "build" => cli::BuildCommand::command(),
            "resolve" => cli::ResolveCommand::command(),
            "apply" => cli::ApplyCommand::command(),
            "create" => cli::CreateCommand::command(),
            "run" => cli::RunCommand::command(),
            "delete" => cli::DeleteCommand::command(),
            "login" => cli::LoginCommand::command(),
            "logout" => cli::LogoutCommand::command(),
            other => panic!("docs/ko-compatibility.md names an unknown command {other:?}"),
        }
    }

    struct Row {
        long: String,
        short: Option<char>,
        commands: Vec<String>,
        status: String,
    }

    fn flag_rows() -> Vec<Row> {
        let table = DOC.split("## Flags").nth(1).expect("a Flags section").split("\n## ").next().unwrap();
        table
            .lines()
            .filter(|l| l.starts_with("| `-"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let names: Vec<&str> = cells[1].split(',').map(|n| n.trim().trim_matches('`')).collect();
                Row {
                    long: names[0].trim_start_matches("--").to_string(),
                    short: names.get(1).and_then(|s| s.trim_start_matches('-').chars().next()),
                    commands: cells[2].split_whitespace().map(str::to_string).collect(),
                    status: cells[3].to_string(),
                }
            })
            .collect()
    }

    #[test]
    fn every_documented_flag_exists_where_the_table_says() {
        let rows = flag_rows();
        assert!(rows.len() > 30, "the flag table was not found");
        for row in rows.iter().filter(|r| r.status != "not supported") {
            assert!(["same", "different", "ours"].contains(&row.status.as_str()), "--{}: {}", row.long, row.status);
            for name in &row.commands {
                let command = command(name);
                let arg = command.get_arguments().find(|a| a.get_long() == Some(row.long.as_str()));
                let arg = arg
                    .unwrap_or_else(|| panic!("`kubectl ko {name}` has no --{} (docs/ko-compatibility.md)", row.long));
                assert_eq!(arg.get_short(), row.short, "the short form of --{} in `kubectl ko {name}`", row.long);
            }
        }
    }

    #[test]
    fn every_flag_of_every_command_is_documented() {
        let rows = flag_rows();
        let mut missing = BTreeSet::new();
        for name in ["build", "resolve", "apply", "create", "run", "delete", "login", "logout"] {
            for arg in command(name).get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "version"].contains(&long) {
                    continue;
                }
                if !rows.iter().any(|r| r.long == long && r.commands.iter().any(|c| c == name)) {
                    missing.insert(format!("{name} --{long}"));
                }
            }
        }
        assert!(missing.is_empty(), "add these to the flag table of docs/ko-compatibility.md: {missing:?}");
    }
}
