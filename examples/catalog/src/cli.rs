//! The `catalog` command line: the service and its operations commands, each taking only its
//! own flags (the groups of [`crate::flags`]). No subcommand means `serve`, with `serve`'s flags.
//! `main.rs` parses it and calls [`run`]; tests call [`run`] in-process.

use std::io::Write;
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::config::Limits;
use crate::flags::{CacheFlags, DatabaseFlags, GenerateFlags, QuietFlag, RedisFlags};
use crate::ops::{self, ClearScope};
use crate::{Config, Server, ShutdownSignals, build_cache, http, open_app};

/// What every command's `--help` ends with: the environment that is no flag.
const ENVIRONMENT_HELP: &str = "\
Environment:
  RUST_LOG   what is logged, to stderr (default `info`; e.g. `warn`, `catalog=debug,cache_core=debug`)
  NO_COLOR   set (to anything) for logs without colour codes; they have none anyway when stderr is
             not a terminal
Every flag with an [env: ...] can also be set by that variable.";

#[derive(Debug, Parser)]
#[command(
    name = "catalog",
    version,
    about = "Catalog service over SQLite or PostgreSQL with a two-tier cache (L1 moka + L2 Redis)",
    long_about = "Catalog service over SQLite or PostgreSQL with a two-tier cache (L1 moka + L2 \
                  Redis).\n\n\
                  Without a subcommand it serves the HTTP JSON API, and takes `serve`'s flags \
                  (`catalog --listen ...` is `catalog serve --listen ...`); `warmup`, `clear` \
                  and `stats` operate on the cache the servers share through Redis, and take \
                  their flags after their name (`catalog clear --all --redis-url ...`).",
    after_help = ENVIRONMENT_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `serve`'s flags, also accepted without a subcommand, so that the default command honours
    /// them and their environment variables (`CATALOG_WARMUP`, ...).
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `serve`: where it listens, what it serves from, how it starts, and its limits.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    pub listen: SocketAddr,
    /// Warm the cache up in the background at start.
    /// (`CATALOG_WARMUP` accepts `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.)
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_WARMUP",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub warmup: bool,
    /// Serve each distinct request's response from memory after computing it once, with no cache
    /// and no database behind: the load test's ceiling (see `http/ceiling.rs`).
    #[arg(long, conflicts_with = "warmup")]
    pub ceiling: bool,
    #[command(flatten)]
    pub quiet: QuietFlag,
    #[command(flatten)]
    pub database: DatabaseFlags,
    #[command(flatten)]
    pub generate: GenerateFlags,
    #[command(flatten)]
    pub redis: RedisFlags,
    #[command(flatten)]
    pub cache: CacheFlags,
    #[command(flatten)]
    pub limits: Limits,
}

impl ServeArgs {
    /// The configuration `serve` runs with.
    pub fn config(&self) -> Config {
        let mut config = self.database.config();
        self.redis.apply(&mut config);
        self.cache.apply(&mut config);
        self.generate.apply(&mut config);
        self.quiet.apply(&mut config);
        config.listen = self.listen;
        config.limits = self.limits;
        config
    }
}

/// `warmup`: the database it reads, the cache it fills.
#[derive(Debug, Clone, Args)]
pub struct WarmupArgs {
    /// Print every entry warmed.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub quiet: QuietFlag,
    #[command(flatten)]
    pub database: DatabaseFlags,
    #[command(flatten)]
    pub redis: RedisFlags,
    #[command(flatten)]
    pub cache: CacheFlags,
}

/// `clear`: what to invalidate, in which shared cache.
#[derive(Debug, Clone, Args)]
pub struct ClearCommand {
    #[command(flatten)]
    pub scope: ClearArgs,
    #[command(flatten)]
    pub redis: RedisFlags,
    // Read only for `--product-id` (the product's SKU).
    #[command(flatten)]
    pub database: DatabaseFlags,
}

/// `stats`: of a running server, or of the shared cache and the database.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Address of a running server (`127.0.0.1:3000`): print its statistics (from its
    /// `/metrics` and `/health`); the other flags are then unused.
    #[arg(long)]
    pub server: Option<String>,
    #[command(flatten)]
    pub database: DatabaseFlags,
    #[command(flatten)]
    pub redis: RedisFlags,
}

impl Cli {
    /// The command to run: no subcommand means `serve`, with the top-level serve flags.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// Whether logs carry colour codes: only on a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>).
pub fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP JSON API (the default): creates, migrates and fills the database with a
    /// generated catalog if it is missing.
    #[command(after_help = ENVIRONMENT_HELP)]
    Serve(ServeArgs),
    /// Fill the shared cache (Redis) from an existing database with what traffic reads most:
    /// popular products, first listing pages, popular searches and prefixes, categories.
    #[command(after_help = ENVIRONMENT_HELP)]
    Warmup(WarmupArgs),
    /// Invalidate part of the shared cache (Redis; every server's L1 follows within a second).
    #[command(after_help = ENVIRONMENT_HELP)]
    Clear(ClearCommand),
    /// Print cache statistics: of a running server with `--server`, else of the shared cache
    /// (Redis: keys, memory, hits and misses) and of the database.
    #[command(after_help = ENVIRONMENT_HELP)]
    Stats(StatsArgs),
}

/// What `clear` invalidates: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ClearArgs {
    /// Everything in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Every product entry (details, listings, search, rankings, filters, statistics).
    #[arg(long)]
    pub products: bool,
    /// Every category entry.
    #[arg(long)]
    pub categories: bool,
    /// The colours (`/colors`).
    #[arg(long)]
    pub colors: bool,
    /// One product's entries.
    #[arg(long, value_name = "N")]
    pub product_id: Option<i64>,
    /// Every entry whose key matches a Redis glob (`prod:*`, `search:*`; keys without the
    /// namespace), found by SCAN.
    #[arg(long, value_name = "GLOB")]
    pub pattern: Option<String>,
}

/// Runs a parsed command line, writing what it reports to `out` (progress and logs go to
/// stderr).
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    match cli.into_command() {
        Command::Serve(args) => {
            let (config, warmup, ceiling) = (args.config(), args.warmup, args.ceiling);
            // Before the server says it is up: a signal sent from then on stops it gracefully.
            let signals = ShutdownSignals::listen()?;
            let server = if ceiling {
                http::ceiling::start(&config).await?
            } else {
                Server::start(&config, warmup).await?
            };
            writeln!(
                out,
                "catalog service on {} (Ctrl-C or SIGTERM to stop)",
                server.url()
            )?;
            out.flush()?;
            server.run_until_signal(signals).await?;
        }
        Command::Warmup(args) => {
            let mut config = args.database.config();
            args.redis.apply(&mut config);
            args.cache.apply(&mut config);
            args.quiet.apply(&mut config);
            let app = open_app(&config).await?;
            if !app.repo.cache.has_l2() {
                writeln!(
                    out,
                    "note: no REDIS_URL, so this warms only this process's L1 (a dry run)"
                )?;
            }
            let report = ops::warmup(&app.repo, args.verbose, !config.quiet).await?;
            writeln!(out, "{report}")?;
        }
        Command::Clear(command) => clear(command, out).await?,
        Command::Stats(StatsArgs {
            server: Some(addr), ..
        }) => {
            write!(out, "{}", ops::server_stats_text(&addr).await?)?;
        }
        Command::Stats(StatsArgs {
            server: None,
            database,
            redis,
        }) => {
            let mut config = database.config();
            redis.apply(&mut config);
            let app = open_app(&config).await?;
            write!(
                out,
                "{}",
                ops::shared_stats_text(&app.repo, config.redis_url.as_deref()).await?
            )?;
        }
    }
    Ok(())
}

/// `clear`: invalidates its scope in the shared cache; after `--all`, frees the Redis memory.
async fn clear(command: ClearCommand, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let ClearCommand {
        scope: args,
        redis,
        database,
    } = command;
    let mut config = database.config();
    redis.apply(&mut config);
    let scope = if args.all {
        ClearScope::All
    } else if args.products {
        ClearScope::Products
    } else if args.categories {
        ClearScope::Categories
    } else if args.colors {
        ClearScope::Colours
    } else if let Some(id) = args.product_id {
        ClearScope::Product(id)
    } else if let Some(glob) = args.pattern {
        ClearScope::Pattern(glob)
    } else {
        anyhow::bail!("say what to clear")
    };
    // `clear` acts on the cache, shared through Redis: it needs no database, except for one
    // product (its SKU), and then only an existing one.
    let cache = build_cache(&config).await?;
    if let Some(why) = ops::clear_unavailable(&cache).await {
        anyhow::bail!(why);
    }
    let all = matches!(scope, ClearScope::All);
    let message = match scope {
        ClearScope::Product(_) => {
            let app = open_app(&config).await?;
            ops::clear(&app.repo, scope).await?
        }
        _ => ops::clear_cache(&cache, scope).await,
    };
    writeln!(out, "{message}")?;
    if all {
        // The clear has taken effect: freeing the memory is the slow part, after it.
        out.flush()?;
        writeln!(out, "{}", ops::reclaim_cleared(&cache).await)?;
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
        assert_eq!(cli.serve.config().products, 10);
        let cli = Cli::try_parse_from(["catalog", "clear", "--products"]).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Clear(ClearCommand {
                scope: ClearArgs { products: true, .. },
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["catalog", "clear"]).is_err());
        let cli = Cli::try_parse_from(["catalog", "clear", "--colors"]).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Clear(ClearCommand {
                scope: ClearArgs { colors: true, .. },
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["catalog", "clear", "--all", "--products"]).is_err());
    }

    #[test]
    fn the_ceiling_is_a_serve_option_exclusive_of_warmup() {
        let command = Cli::try_parse_from(["catalog", "--ceiling"])
            .expect("parses")
            .into_command();
        assert!(matches!(
            command,
            Command::Serve(ServeArgs { ceiling: true, .. })
        ));
        assert!(Cli::try_parse_from(["catalog", "serve", "--ceiling"]).is_ok());
        assert!(Cli::try_parse_from(["catalog", "--ceiling", "--warmup"]).is_err());
    }

    #[test]
    fn the_default_command_honours_warmup() {
        let command = Cli::try_parse_from(["catalog", "--warmup"])
            .expect("parses")
            .into_command();
        assert!(matches!(
            command,
            Command::Serve(ServeArgs { warmup: true, .. })
        ));
        let command = Cli::try_parse_from(["catalog"])
            .expect("parses")
            .into_command();
        assert!(matches!(
            command,
            Command::Serve(ServeArgs { warmup: false, .. })
        ));
        let command = Cli::try_parse_from(["catalog", "serve", "--warmup"])
            .expect("parses")
            .into_command();
        assert!(matches!(
            command,
            Command::Serve(ServeArgs { warmup: true, .. })
        ));
        // The top-level flag reads the same environment variable as `serve --warmup`.
        let cmd = Cli::command();
        let top = cmd
            .get_arguments()
            .find(|a| a.get_id() == "warmup")
            .expect("a top-level --warmup");
        assert_eq!(
            top.get_env().and_then(|e| e.to_str()),
            Some("CATALOG_WARMUP")
        );
    }

    /// clap prints an argument's environment value in `--help` unless told not to: every
    /// environment-backed argument, of every subcommand, hides it (`REDIS_URL` holds a password).
    #[test]
    fn no_help_shows_an_environment_value() {
        every_argument(|path, arg| {
            if arg.get_env().is_some() {
                assert!(
                    arg.is_hide_env_values_set(),
                    "{path} --{}: add hide_env_values = true",
                    arg.get_id()
                );
            }
        });
    }

    /// Calls `check` with every argument of the built CLI and of each of its subcommands, and the
    /// command's path (`catalog warmup`).
    fn every_argument(check: impl Fn(&str, &clap::Arg)) {
        fn walk(cmd: &clap::Command, path: &str, check: &dyn Fn(&str, &clap::Arg)) {
            for arg in cmd.get_arguments() {
                check(path, arg);
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), check);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "catalog", &check);
    }

    /// Each subcommand takes only its own flags; the top level takes `serve`'s, before no
    /// subcommand.
    #[test]
    fn subcommands_take_only_their_own_flags() {
        let parses = |argv: &[&str]| Cli::try_parse_from(argv).is_ok();
        assert!(parses(&[
            "catalog",
            "clear",
            "--all",
            "--redis-url",
            "redis://h",
            "--namespace",
            "n"
        ]));
        assert!(parses(&[
            "catalog",
            "warmup",
            "--quiet",
            "--database",
            "x.db",
            "--l1-mb",
            "8"
        ]));
        assert!(parses(&["catalog", "stats", "--server", "127.0.0.1:3000"]));
        assert!(parses(&[
            "catalog",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gen-products",
            "5"
        ]));
        assert!(!parses(&[
            "catalog",
            "clear",
            "--all",
            "--listen",
            "127.0.0.1:0"
        ]));
        assert!(!parses(&[
            "catalog",
            "clear",
            "--all",
            "--gen-products",
            "5"
        ]));
        assert!(!parses(&["catalog", "clear", "--all", "--l1-mb", "8"]));
        assert!(!parses(&["catalog", "stats", "--quiet"]));
        assert!(!parses(&["catalog", "warmup", "--max-connections", "5"]));
        // A serve flag before a subcommand is not silently ignored.
        assert!(!parses(&[
            "catalog",
            "--listen",
            "127.0.0.1:0",
            "clear",
            "--all"
        ]));

        let mut cmd = Cli::command();
        cmd.build();
        let flags = |name: &str| -> Vec<String> {
            let sub = cmd.find_subcommand(name).expect("subcommand");
            sub.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_owned))
                .collect()
        };
        let clear = flags("clear");
        for absent in [
            "listen",
            "gen-products",
            "l1-mb",
            "quiet",
            "max-connections",
            "warmup",
        ] {
            assert!(!clear.iter().any(|f| f == absent), "clear takes --{absent}");
        }
        assert!(clear.iter().any(|f| f == "redis-url") && clear.iter().any(|f| f == "pattern"));
        let warmup = flags("warmup");
        assert!(warmup.iter().any(|f| f == "l1-mb") && !warmup.iter().any(|f| f == "listen"));
        let serve = flags("serve");
        let top: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        assert_eq!(
            top.iter()
                .filter(|f| !["help", "version"].contains(&f.as_str()))
                .count(),
            serve.iter().filter(|f| f.as_str() != "help").count(),
            "the default command takes serve's flags: {top:?} / {serve:?}"
        );
    }

    /// Every flag of every command says what it does.
    #[test]
    fn every_flag_has_a_help_text() {
        every_argument(|path, arg| {
            if !["help", "version"].contains(&arg.get_id().as_str()) {
                assert!(
                    arg.get_help().is_some_and(|h| h.to_string().len() > 10),
                    "{path} --{}: no help text",
                    arg.get_id()
                );
            }
        });
    }
}
