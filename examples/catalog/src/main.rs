//! `catalog`: the catalog service and its operations commands. No subcommand means `serve`.

use clap::{Args, Parser, Subcommand};

use catalog::loadtest::{self, LoadtestArgs};
use catalog::ops::{self, ClearScope};
use catalog::{Config, Server, build_app};

#[derive(Debug, Parser)]
#[command(
    name = "catalog",
    version,
    about = "Catalog service over SQLite with a two-tier cache (L1 moka + L2 Redis)"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP JSON API (the default).
    Serve {
        /// Warm the cache up in the background at start.
        #[arg(long, env = "CATALOG_WARMUP")]
        warmup: bool,
    },
    /// Fill the cache (useful with Redis: the L2 is shared with running servers).
    Warmup {
        /// Print every entry loaded.
        #[arg(long)]
        verbose: bool,
    },
    /// Invalidate part of the cache.
    Clear(ClearArgs),
    /// Print cache statistics and the health report (of a running server with `--server`).
    Stats {
        /// Address of a running server (`127.0.0.1:3000`): print its statistics.
        #[arg(long)]
        server: Option<String>,
    },
    /// Load-test the service in every cache mode (its own redis-server and generated catalog).
    Loadtest(LoadtestArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct ClearArgs {
    /// Everything in the namespace.
    #[arg(long)]
    all: bool,
    /// Every product entry (details, listings, search, rankings, filters, statistics).
    #[arg(long)]
    products: bool,
    /// Every category entry.
    #[arg(long)]
    categories: bool,
    /// One product's entries.
    #[arg(long, value_name = "N")]
    product_id: Option<i64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve { warmup: false }) {
        Command::Serve { warmup } => {
            let server = Server::start(&config, warmup).await?;
            println!("catalog service on {} (Ctrl-C to stop)", server.url());
            server.run_until_ctrl_c().await?;
        }
        Command::Warmup { verbose } => {
            let app = build_app(&config).await?;
            if !app.repo.cache.has_l2() {
                println!("note: no REDIS_URL, so this warms only this process's L1 (a dry run)");
            }
            let report = ops::warmup(&app.repo, verbose, !config.quiet).await?;
            println!("{report}");
        }
        Command::Clear(args) => {
            let scope = match (args.all, args.products, args.categories, args.product_id) {
                (true, ..) => ClearScope::All,
                (_, true, ..) => ClearScope::Products,
                (_, _, true, _) => ClearScope::Categories,
                (.., Some(id)) => ClearScope::Product(id),
                _ => anyhow::bail!("say what to clear"),
            };
            let app = build_app(&config).await?;
            println!("{}", ops::clear(&app.repo, scope).await?);
        }
        Command::Stats { server: Some(addr) } => {
            print!("{}", ops::server_stats_text(&addr).await?);
        }
        Command::Stats { server: None } => {
            let app = build_app(&config).await?;
            print!("{}", ops::stats_text(&app.repo).await);
        }
        Command::Loadtest(args) => {
            let report = loadtest::run(&config, &args).await?;
            let markdown = report.markdown();
            print!("{markdown}");
            if let Some(out) = &args.out {
                let text = if out.extension().is_some_and(|e| e == "json") {
                    serde_json::to_string_pretty(&report)?
                } else {
                    markdown
                };
                std::fs::write(out, text)?;
                eprintln!("loadtest: wrote {}", out.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_and_clear_needs_a_scope() {
        let cli = Cli::try_parse_from(["catalog", "--gen-products", "10"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.config.products, 10);
        let cli = Cli::try_parse_from(["catalog", "clear", "--products"]).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Clear(ClearArgs { products: true, .. }))
        ));
        assert!(Cli::try_parse_from(["catalog", "clear"]).is_err());
        assert!(Cli::try_parse_from(["catalog", "clear", "--all", "--products"]).is_err());
    }

    #[test]
    fn loadtest_bounds_its_concurrency() {
        let cli = Cli::try_parse_from(["catalog", "loadtest", "--duration", "2s"]).expect("parses");
        let Some(Command::Loadtest(args)) = cli.command else {
            panic!("not loadtest")
        };
        assert_eq!(args.duration, std::time::Duration::from_secs(2));
        assert_eq!(args.concurrency, 64);
        assert!(Cli::try_parse_from(["catalog", "loadtest", "--concurrency", "1000"]).is_ok());
        assert!(Cli::try_parse_from(["catalog", "loadtest", "--concurrency", "1001"]).is_err());
        assert!(Cli::try_parse_from(["catalog", "loadtest", "--concurrency", "0"]).is_err());
    }
}
