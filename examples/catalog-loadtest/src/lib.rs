//! `catalog-loadtest`: the catalog service's load generator. It runs the service as a separate
//! process per cache mode (no cache, L2 only, L1 only, two-tier, two-tier with Redis killed at
//! half time), each against its own redis-server from the test harness (`tiercache-tests`), drives
//! it over loopback in a closed or an open loop, and reports what the server did and what the
//! generator itself cost (LOADTEST.md).
//!
//! - [`args`]: the command line.
//! - [`workload`]: the Zipf-popular requests, from the generated catalog.
//! - [`server`]: the server process (start, `/metrics`, CPU, stop). Never serves in this process.
//! - [`l2`]: the run's redis-server (harness) and its `INFO`.
//! - [`drive`]: the client tasks, closed or open loop, latency histograms, the Redis outage.
//! - [`http_phase`]: what revalidation (`ETag`, `304`) and the batch endpoint save.
//! - [`usage`]: CPU time and resident size of this process and of the server.
//! - [`warm_start`]: `catalog warmup`, then the hit ratio of a new server's first reads.
//! - [`faults`]: `--faults`, the two-tier server while Redis stalls, pauses, flushes, fills up
//!   or holds garbage.
//! - [`run`](mod@run): the scenarios, the warm start and the memory phase, in order.
//! - [`report`]: the results and their markdown.

pub mod args;
pub mod drive;
pub mod faults;
pub mod http_phase;
pub mod l2;
pub mod report;
pub mod run;
pub mod server;
pub mod usage;
pub mod warm_start;
pub mod workload;

pub use args::LoadtestArgs;
pub use report::Report;
pub use run::run;

/// How many request paths `--paths-out` writes.
const PATHS_OUT: usize = 100_000;

/// The `catalog-loadtest` command: parses the command line, runs, prints the markdown report on
/// stdout and writes `--out`.
pub fn main() -> anyhow::Result<()> {
    use clap::Parser as _;

    let args = LoadtestArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(path) = &args.paths_out {
        runtime.block_on(run::write_paths(&args, path, PATHS_OUT))?;
        eprintln!(
            "catalog-loadtest: wrote {PATHS_OUT} request paths to {}",
            path.display()
        );
        return Ok(());
    }
    if args.faults {
        let results = runtime.block_on(faults::run(&args))?;
        print!("{}", faults::markdown(&results));
        if let Some(path) = &args.out {
            std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
            eprintln!("catalog-loadtest: wrote {}", path.display());
        }
        return Ok(());
    }
    let report = runtime.block_on(run::run(&args))?;
    print!("{}", report.markdown());
    if let Some(path) = &args.out {
        run::write(&report, path)?;
        eprintln!("catalog-loadtest: wrote {}", path.display());
    }
    Ok(())
}
