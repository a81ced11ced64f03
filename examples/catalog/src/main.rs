//! `catalog`: the catalog service and its operations commands. No subcommand means `serve`.
//! The command line is [`catalog::cli`].

use clap::Parser;

use catalog::cli::{self, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    cli::run(Cli::parse(), &mut std::io::stdout()).await
}
