//! `catalog-loadtest`: drives the catalog service in every cache mode and prints the report
//! (markdown) on stdout; `--out FILE` also writes it (JSON if the name ends in `.json`). Kept to
//! this one call: the tool's code lives in the library, so that building the library also
//! rebuilds `catalog-server` beside it (see [`catalog_loadtest::server::default_server_bin`]).

fn main() -> anyhow::Result<()> {
    catalog_loadtest::main()
}
