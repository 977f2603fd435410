//! `cairn ingest PATH...`: uploads files and folders to a collection of a running Cairn over
//! its HTTP API (`/v1/collections/{id}/files`), then follows the ingestion jobs with a progress
//! bar until every document is searchable or has failed. It is a client like any other: the
//! server parses, checks and ingests; a refused batch stores nothing and stops the command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cairn_knowledge::parse::Format;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::cli::IngestArgs;
use crate::client::{find_collection, Client};

/// Most files in one upload request.
const FILES_PER_REQUEST: usize = 64;
/// Most bytes in one upload request (under the server's default `knowledge.max_upload_bytes`).
const BYTES_PER_REQUEST: u64 = 16 * 1024 * 1024;
/// Job states polled at once.
const POLL_CONCURRENCY: usize = 8;

/// A file to send: where it is, and the name the server will know it by.
struct Upload {
    path: PathBuf,
    name: String,
    size: u64,
}

/// Runs `cairn ingest` (see the module docs).
pub async fn ingest(args: IngestArgs) -> Result<()> {
    let (files, skipped) = collect(&args.paths)?;
    if files.is_empty() {
        bail!("no files to ingest ({skipped} skipped: hidden, or not .txt .md .html .pdf .json .jsonl)");
    }
    if let Some(m) = &args.metadata {
        let v: Value = serde_json::from_str(m).context("--metadata is not JSON")?;
        if !v.is_object() {
            bail!("--metadata must be a JSON object");
        }
    }
    let client = Client::new(&args.url, &args.key)?;
    let col = match find_collection(&client, &args.collection).await? {
        Some(c) => c,
        None => {
            eprintln!("Creating collection '{}' (embedding model {})", args.collection, args.embedding_model);
            let body = json!({ "name": args.collection, "embedding_model": args.embedding_model });
            client.post("/v1/collections", &body).await?
        }
    };
    let col_id = col["id"].as_str().ok_or_else(|| anyhow!("the server sent a collection without an id"))?.to_owned();
    eprintln!(
        "Ingesting {} files into '{}' ({col_id}){}",
        files.len(),
        col["name"].as_str().unwrap_or_default(),
        if skipped > 0 { format!(", {skipped} skipped") } else { String::new() }
    );

    let bar = ProgressBar::new(files.iter().map(|f| f.size).sum());
    bar.set_style(style("uploading {bar:30} {bytes}/{total_bytes} {msg}"));
    let mut jobs: Vec<(String, String)> = Vec::new();
    for batch in batches(&files) {
        let mut form = Form::new();
        for f in batch {
            let bytes = tokio::fs::read(&f.path).await.with_context(|| format!("reading {}", f.path.display()))?;
            form = form.part("file", Part::bytes(bytes).file_name(f.name.clone()));
        }
        if let Some(m) = &args.metadata {
            form = form.text("metadata", m.clone());
        }
        let accepted = client.upload(&format!("/v1/collections/{col_id}/files"), form).await.map_err(|e| {
            bar.abandon();
            let done = if jobs.is_empty() {
                String::new()
            } else {
                format!(" ({} documents before it were accepted)", jobs.len())
            };
            anyhow!("the server refused a batch of files, and stored none of it{done}: {e}")
        })?;
        for a in accepted["data"].as_array().into_iter().flatten() {
            let doc = a["document"]["id"].as_str().unwrap_or_default().to_owned();
            jobs.push((doc, a["job_id"].as_str().unwrap_or_default().to_owned()));
        }
        bar.inc(batch.iter().map(|f| f.size).sum());
    }
    bar.finish_and_clear();
    if args.no_wait {
        eprintln!("Uploaded: {} documents queued for ingestion.", jobs.len());
        return Ok(());
    }
    follow(&client, &jobs).await
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Polls the jobs until each ended, with a progress bar; fails if any document failed.
async fn follow(client: &Client, jobs: &[(String, String)]) -> Result<()> {
    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(style("ingesting {bar:30} {pos}/{len} documents {msg} ({elapsed})"));
    let mut pending: Vec<&(String, String)> = jobs.iter().collect();
    let (mut unchanged, mut failed) = (0usize, Vec::new());
    while !pending.is_empty() {
        let states: Vec<Result<Value>> = futures::stream::iter(pending.iter().take(64))
            .map(|(_, job)| async move { client.get(&format!("/v1/jobs/{job}")).await })
            .buffered(POLL_CONCURRENCY)
            .collect()
            .await;
        let mut still = Vec::new();
        for (entry, state) in pending.iter().zip(states) {
            let j = state?;
            match j["state"].as_str().unwrap_or_default() {
                "succeeded" => {
                    unchanged += usize::from(j["result"]["unchanged"] == json!(true));
                    bar.inc(1);
                }
                "dead" | "cancelled" => {
                    let why = j["attempts_history"].as_array().and_then(|a| a.last()).map_or_else(
                        || j["state"].as_str().unwrap_or_default().to_owned(),
                        |a| a["error"].as_str().unwrap_or_default().to_owned(),
                    );
                    failed.push((entry.0.clone(), why));
                    bar.inc(1);
                }
                _ => still.push(*entry),
            }
        }
        still.extend(pending.iter().skip(64).copied());
        pending = still;
        if !failed.is_empty() {
            bar.set_message(format!("{} failed", failed.len()));
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    bar.finish_and_clear();
    let ready = jobs.len() - failed.len();
    eprintln!("Done: {ready} documents searchable ({unchanged} unchanged), {} failed.", failed.len());
    for (doc, why) in &failed {
        eprintln!("  {doc}: {why}");
    }
    if !failed.is_empty() {
        bail!("{} documents failed to ingest", failed.len());
    }
    Ok(())
}

/// The files under `paths` that Cairn reads, sorted, and how many were skipped.
fn collect(paths: &[PathBuf]) -> Result<(Vec<Upload>, usize)> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for root in paths {
        let meta = std::fs::metadata(root).with_context(|| format!("reading {}", root.display()))?;
        if meta.is_file() {
            let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.push(Upload { path: root.clone(), name, size: meta.len() });
            continue;
        }
        walk(root, root, &mut files, &mut skipped)?;
    }
    Ok((files, skipped))
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<Upload>, skipped: &mut usize) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            *skipped += 1;
            continue;
        }
        let meta = e.metadata().with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            walk(root, &path, files, skipped)?;
        } else if Format::from_extension(&name).is_some() {
            // The name relative to the folder given, with '/' on every platform: a stable id.
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            files.push(Upload { path, name: rel, size: meta.len() });
        } else {
            *skipped += 1;
        }
    }
    Ok(())
}

/// Groups files into requests of at most `FILES_PER_REQUEST` files and `BYTES_PER_REQUEST`.
fn batches(files: &[Upload]) -> Vec<&[Upload]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        if i > start && (i - start == FILES_PER_REQUEST || bytes + f.size > BYTES_PER_REQUEST) {
            out.push(&files[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += f.size;
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_limits() {
        let f = |size| Upload { path: PathBuf::new(), name: String::new(), size };
        let files: Vec<Upload> = (0..130).map(|_| f(1)).collect();
        assert_eq!(batches(&files).iter().map(|b| b.len()).collect::<Vec<_>>(), [64, 64, 2]);
        let big = vec![f(BYTES_PER_REQUEST - 1), f(2), f(BYTES_PER_REQUEST * 2)];
        assert_eq!(batches(&big).iter().map(|b| b.len()).collect::<Vec<_>>(), [1, 1, 1]);
    }
}
