//! `catalog-loadtest`: drives the catalog service in every cache mode and prints the report
//! (markdown) on stdout; `--out FILE` also writes it (JSON if the name ends in `.json`).

use clap::Parser as _;

use catalog_loadtest::{LoadtestArgs, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = LoadtestArgs::parse();
    let report = run::run(&args).await?;
    print!("{}", report.markdown());
    if let Some(path) = &args.out {
        run::write(&report, path)?;
        eprintln!("catalog-loadtest: wrote {}", path.display());
    }
    Ok(())
}
