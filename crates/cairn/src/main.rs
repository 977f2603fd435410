//! The `cairn` binary: serve the API, run job workers, manage jobs, keys and tenants, check the
//! config, ingest files and ask questions of a running server, evaluate retrieval.

mod ask;
mod cli;
mod client;
mod commands;
mod eval;
mod ingest;
mod jobs;

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
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
