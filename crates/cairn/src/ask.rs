//! `cairn ask`: asks a collection of a running Cairn a question
//! (`/v1/collections/{id}/answer`, streamed) and prints the answer as it is written, then the
//! sources it cites.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::cli::AskArgs;
use crate::client::{find_collection, Client};

/// Runs `cairn ask` (see the module docs).
pub async fn ask(args: AskArgs) -> Result<()> {
    let client = Client::new(&args.url, &args.key)?;
    let col = find_collection(&client, &args.collection)
        .await?
        .ok_or_else(|| anyhow!("no collection '{}' (see GET /v1/collections)", args.collection))?;
    let id = col["id"].as_str().unwrap_or_default();
    let mut body = json!({ "question": args.question, "stream": true });
    if let Some(m) = &args.model {
        body["model"] = json!(m);
    }
    if let Some(k) = args.top_k {
        body["top_k"] = json!(k);
    }
    let resp = client.stream(&format!("/v1/collections/{id}/answer"), &body).await?;
    let mut bytes = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = std::io::stdout();
    while let Some(part) = bytes.next().await {
        buf.push_str(&String::from_utf8_lossy(&part?));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let (name, data) = parse_event(&event);
            let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            match name {
                "delta" => {
                    print!("{}", data["text"].as_str().unwrap_or_default());
                    out.flush()?;
                }
                "done" => {
                    println!();
                    print_sources(&data);
                    return Ok(());
                }
                "error" => bail!("the answer broke off: {}", data["error"]["message"].as_str().unwrap_or_default()),
                _ => {}
            }
        }
    }
    bail!("the answer ended before it was complete")
}

/// The name and data of one server-sent event.
pub(crate) fn parse_event(event: &str) -> (&str, &str) {
    let mut name = "message";
    let mut data = "";
    for line in event.lines() {
        if let Some(n) = line.strip_prefix("event: ") {
            name = n;
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = d;
        }
    }
    (name, data)
}

fn print_sources(answer: &Value) {
    let cited = answer["citations"].as_array().cloned().unwrap_or_default();
    if !cited.is_empty() {
        println!("\nCited:");
        for c in &cited {
            let how = if c["inferred"] == true { "  (matched by its words; the model wrote no number)" } else { "" };
            let title = c["title"].as_str().unwrap_or("untitled");
            println!("  [{}] {title} ({}){how}", c["n"], c["document_id"].as_str().unwrap_or_default());
        }
        return;
    }
    let sources = answer["sources"].as_array().cloned().unwrap_or_default();
    if !sources.is_empty() {
        println!("\nThe answer cites no source by number; it was given:");
        for s in &sources {
            println!(
                "  [{}] {} ({})",
                s["n"],
                s["title"].as_str().unwrap_or("untitled"),
                s["document_id"].as_str().unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_by_name_and_data() {
        assert_eq!(parse_event("event: delta\ndata: {\"text\":\"a\"}\n\n"), ("delta", "{\"text\":\"a\"}"));
        assert_eq!(parse_event("data: x\n\n"), ("message", "x"));
    }
}
