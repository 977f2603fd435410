//! Start-up of a `cairn serve` node over an existing corpus: the time from spawning the process
//! to `/readyz` answering 200, and its resident memory then.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{free_port, load, rss_mb, spawn_serve, wait_ready_within};

/// The longest a node may take to become ready (building a million-chunk index from scratch).
const READY_WITHIN: Duration = Duration::from_secs(3600);

/// Starts `cairn serve` on `storage_url` with `retrieval` (`memory` or `database`) and its data
/// in `data_dir` (config written in `dir`); returns seconds until ready and resident MB then.
pub async fn node(cairn: &Path, dir: &Path, data_dir: &Path, storage_url: &str, retrieval: &str) -> Result<(f64, f64)> {
    let port = free_port()?;
    let config = dir.join("startup.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
             [storage]\ndata_dir = \"{}\"\nurl = \"{storage_url}\"\n[knowledge]\nretrieval = \"{retrieval}\"\n",
            data_dir.display()
        ),
    )?;
    let start = Instant::now();
    let server = spawn_serve(cairn, &config)?;
    wait_ready_within(&load::client(), &format!("http://127.0.0.1:{port}/readyz"), READY_WITHIN).await?;
    let secs = start.elapsed().as_secs_f64();
    Ok((secs, rss_mb(server.0.id())))
}
