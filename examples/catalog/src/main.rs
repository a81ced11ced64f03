//! `catalog`: the catalog service and its operations commands. No subcommand means `serve`.
//! The command line is [`catalog::cli`].

use std::io::IsTerminal as _;

use clap::Parser;

use catalog::cli::{self, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr, in colour only on a terminal and without `NO_COLOR` (see `--help`).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(cli::log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .init();
    cli::run(Cli::parse(), &mut std::io::stdout()).await
}
