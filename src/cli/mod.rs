//! Subcommands. The only module that prints to stdout.

pub mod test_rules;

use clap::{Parser, Subcommand};

/// ravelin: a layered defense for internet-facing Linux servers.
#[derive(Debug, Parser)]
#[command(name = "ravelin", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// All subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the rules over a log file and report matches (like fail2ban-regex).
    TestRules(test_rules::TestRulesArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let res = match &cli.command {
        Command::TestRules(a) => test_rules::run(a, &mut out),
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ravelin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
