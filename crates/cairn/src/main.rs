//! The `cairn` binary: serve the API, run job workers, manage jobs, keys and tenants, check the
//! config, ingest files and ask questions of a running server, evaluate retrieval.

/// mimalloc instead of glibc's allocator: a request allocates and frees many small buffers on
/// several threads at once, and glibc's arenas showed as a fifth of a busy server's profile
/// (malloc, free, consolidation); see `docs/BENCHMARKS.md`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agents;
mod ask;
mod audit;
mod cli;
mod client;
mod commands;
mod eval;
mod eval_answers;
mod eval_semantic;
mod guard;
mod ingest;
mod jobs;
mod route;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Work still running when the command ends (a long search on a blocking thread, a request
    // past the grace period) must not keep the process alive: give it a moment, then exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
