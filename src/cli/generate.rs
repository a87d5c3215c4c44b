//! `haagent generate --out DIR` (hidden): the man pages and shell completions, rendered
//! from the same clap definitions that parse the command line, so they cannot drift from
//! it. The package build runs it once (`packaging/build-deb`); nothing else needs it.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes `out/man/haagent.1` (and one page per subcommand, `haagent-status.1`, …) and
/// `out/completions/` for bash, zsh and fish.
pub(super) fn write_all(out: &Path) -> ExitCode {
    match write(out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("haagent: cannot write into {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(with_exit_status(Cli::command()), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "haagent", &completions)?;
    }
    Ok(())
}

/// Every page gets an exit status section: commands without one of their own (`doctor`
/// has) take the common [`super::EXIT_STATUS`].
fn with_exit_status(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let cmd = if cmd.get_after_long_help().is_none() {
        cmd.after_long_help(super::EXIT_STATUS)
    } else {
        cmd
    };
    names
        .iter()
        .fold(cmd, |cmd, name| cmd.mut_subcommand(name, with_exit_status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One page per visible command (the hidden `generate` has none), each naming its
    /// command, and the exit codes on the main page; completions for the three shells.
    #[test]
    fn writes_pages_and_completions() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write(dir.path()).is_ok());
        let page = |name: &str| {
            std::fs::read_to_string(dir.path().join("man").join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert!(page("haagent.1").contains("Exit status"));
        assert!(page("haagent-doctor.1").contains("doctor"));
        assert!(page("haagent-doctor.1").contains("every check passed"));
        assert!(page("haagent-status.1").contains("Exit status"));
        assert!(page("haagent-certs-issue.1").contains("\\-\\-name"));
        assert!(!dir.path().join("man/haagent-generate.1").exists());
        for file in ["haagent.bash", "_haagent", "haagent.fish"] {
            let text = std::fs::read_to_string(dir.path().join("completions").join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(text.contains("check-config"), "{file}");
        }
    }
}
