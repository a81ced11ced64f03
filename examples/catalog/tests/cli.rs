//! The `catalog` binary as a user runs it: the default command, and the operations commands.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `catalog` binary with a clean environment (no `REDIS_URL`, no `CATALOG_*` of the caller).
fn catalog(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catalog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CATALOG_") || k == "REDIS_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("CATALOG_QUIET", "1")
        .env("CATALOG_PRODUCTS", "300")
        .env("CATALOG_CATEGORIES", "12");
    cmd
}

/// The README's `cargo run -p catalog` (no subcommand) with `CATALOG_WARMUP=1` warms the cache.
#[test]
fn the_default_command_honours_catalog_warmup() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = catalog(dir.path())
        .env("CATALOG_WARMUP", "1")
        .env("CATALOG_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("catalog starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    let mut warmed = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                warmed = line.contains("background warmup: warmed");
                log.push(line);
                if warmed {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warmed, "no background warmup:\n{}", log.join("\n"));
}
