//! `ravelin test-rules`: run a rule set over a log file and report what matched (our
//! fail2ban-regex). Being written.

use std::io::Write;
use std::path::PathBuf;

/// Arguments of `ravelin test-rules`.
#[derive(Debug, clap::Args)]
pub struct TestRulesArgs {
    /// The log file to read.
    pub file: PathBuf,
    /// Rule set(s) to apply.
    #[arg(long, default_value = "sshd")]
    pub rules: Vec<String>,
    /// One JSON object per matched line, then a summary object.
    #[arg(long)]
    pub json: bool,
}

/// Run the command, writing the report to `out`.
pub fn run(args: &TestRulesArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let _ = (args, out);
    anyhow::bail!("test-rules is not built yet")
}
