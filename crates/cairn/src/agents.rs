//! `cairn agents` and `cairn run`: agents of a running Cairn from the terminal. `cairn run`
//! starts a run, follows its event stream (reconnecting with `Last-Event-ID` if the connection
//! drops), prints the model's text as it streams and each tool call and result, and asks on the
//! terminal whenever the run waits: approve, reject, edit or respond for approvals, the output
//! for client tools.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::ask::parse_event;
use crate::cli::{AgentsCommand, RunArgs};
use crate::client::Client;

/// Runs `cairn agents ...`.
pub async fn agents(cmd: AgentsCommand) -> Result<()> {
    match cmd {
        AgentsCommand::Create { file, server } => {
            let client = Client::new(&server.url, &server.key)?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the definition from stdin")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let spec: Value = serde_json::from_str(&text).context("the definition is not JSON")?;
            let name = spec["name"].as_str().ok_or_else(|| anyhow!("the definition has no name"))?;
            let saved = match find_agent(&client, name).await? {
                Some(existing) => {
                    client.post(&format!("/v1/agents/{}", existing["id"].as_str().unwrap_or_default()), &spec).await?
                }
                None => client.post("/v1/agents", &spec).await?,
            };
            println!(
                "{} {} version {}",
                saved["name"].as_str().unwrap_or_default(),
                saved["id"].as_str().unwrap_or_default(),
                saved["version"]
            );
            Ok(())
        }
        AgentsCommand::List { server } => {
            let client = Client::new(&server.url, &server.key)?;
            for a in all_agents(&client).await? {
                let tools: Vec<&str> =
                    a["tools"].as_object().map(|t| t.keys().map(String::as_str).collect()).unwrap_or_default();
                println!(
                    "{}  {}  model={}  version={}  tools=[{}]",
                    a["id"].as_str().unwrap_or_default(),
                    a["name"].as_str().unwrap_or_default(),
                    a["model"].as_str().unwrap_or_default(),
                    a["version"],
                    tools.join(", ")
                );
            }
            Ok(())
        }
        AgentsCommand::Show { agent, server } => {
            let client = Client::new(&server.url, &server.key)?;
            let found = find_agent(&client, &agent).await?.ok_or_else(|| anyhow!("no agent '{agent}'"))?;
            println!("{}", serde_json::to_string_pretty(&found)?);
            Ok(())
        }
    }
}

/// Every agent of the key's tenant, following pages.
async fn all_agents(client: &Client) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/agents?limit=100&after={a}"),
            None => "/v1/agents?limit=100".to_owned(),
        };
        let page = client.get(&path).await?;
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

/// The agent whose id or name is `wanted`.
async fn find_agent(client: &Client, wanted: &str) -> Result<Option<Value>> {
    Ok(all_agents(client).await?.into_iter().find(|a| a["id"] == wanted || a["name"] == wanted))
}

/// Runs `cairn run` (see the module docs).
pub async fn run(args: RunArgs) -> Result<()> {
    let client = Client::new(&args.server.url, &args.server.key)?;
    let agent = find_agent(&client, &args.agent).await?.ok_or_else(|| anyhow!("no agent '{}'", args.agent))?;
    let mut body = json!({"agent_id": agent["id"], "messages": [{"role": "user", "content": args.input}]});
    if let Some(t) = &args.thread {
        body["thread_id"] = json!(t);
    }
    if let Some(u) = &args.end_user {
        body["end_user"] = json!(u);
    }
    let run = client.post("/v1/runs", &body).await?;
    let id = run["id"].as_str().ok_or_else(|| anyhow!("the server returned no run id"))?.to_owned();
    eprintln!("run {id}");
    let mut last_id: Option<String> = None;
    let mut streamed = String::new();
    loop {
        let path = match &last_id {
            Some(l) => format!("/v1/runs/{id}/events?after={l}"),
            None => format!("/v1/runs/{id}/events"),
        };
        let mut bytes = client.open(&path).await?.bytes_stream();
        let mut buf = String::new();
        while let Some(part) = bytes.next().await {
            let Ok(part) = part else { break };
            buf.push_str(&String::from_utf8_lossy(&part));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if let Some(eid) = event.lines().find_map(|l| l.strip_prefix("id: ")) {
                    last_id = Some(eid.trim().to_owned());
                }
                let (name, data) = parse_event(&event);
                let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                if let Some(done) = show(&client, &id, name, &data, &mut streamed).await? {
                    return done;
                }
            }
        }
        // The connection dropped before the run ended: resume after the last event seen.
    }
}

/// Shows one event; answers pauses. `Some` once the run ended (how the command ends).
async fn show(
    client: &Client,
    id: &str,
    name: &str,
    event: &Value,
    streamed: &mut String,
) -> Result<Option<Result<()>>> {
    let data = &event["data"];
    let mut out = std::io::stdout();
    match name {
        "model.delta" => {
            let text = event["text"].as_str().unwrap_or_default();
            print!("{text}");
            out.flush()?;
            streamed.push_str(text);
        }
        "step.done" => {
            let message = &data["message"];
            // Whatever of the text did not stream here (a run stepped on another node).
            let text = message["content"].as_str().unwrap_or_default();
            print!("{}", text.strip_prefix(streamed.as_str()).unwrap_or(text));
            streamed.clear();
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                println!(
                    "\n-> {}({})",
                    call["function"]["name"].as_str().unwrap_or_default(),
                    call["function"]["arguments"].as_str().unwrap_or_default()
                );
            }
        }
        "tool.result" => {
            let content = data["content"].as_str().unwrap_or_default();
            let short: String = content.chars().take(200).collect();
            let mark = if data["is_error"] == true { "!!" } else { "<-" };
            println!("{mark} {short}{}", if short.len() < content.len() { "..." } else { "" });
        }
        "approval.requested" => answer_pause(client, id, data).await?,
        "run.ended" => {
            println!();
            let state = data["state"].as_str().or(event["state"].as_str()).unwrap_or("ended");
            let reason = data["reason"].as_str().or(event["reason"].as_str());
            if let Some(r) = reason {
                eprintln!("run {state}: {r}");
            }
            return Ok(Some(if state == "succeeded" { Ok(()) } else { Err(anyhow!("the run ended {state}")) }));
        }
        _ => {}
    }
    Ok(None)
}

/// Asks the terminal about each item the run waits on, then posts the answers.
async fn answer_pause(client: &Client, id: &str, pause: &Value) -> Result<()> {
    let mut approvals = Vec::new();
    let mut outputs = Vec::new();
    for item in pause["items"].as_array().into_iter().flatten() {
        let call = item["call_id"].clone();
        let tool = item["tool"].as_str().unwrap_or_default();
        let args = item["arguments"].as_str().unwrap_or_default();
        if item["kind"] == "client_output" {
            let output = prompt(&format!("\n{tool}({args}) is yours to run. Its output: "))?;
            outputs.push(json!({"call_id": call, "output": output}));
            continue;
        }
        println!("\n{tool}({args}) waits: {}", item["reason"].as_str().unwrap_or_default());
        let answer = loop {
            let choice = prompt("[a]pprove, [r]eject, [e]dit, re[s]pond? ")?;
            match choice.as_str() {
                "a" | "approve" => break json!({"call_id": call, "decision": "approve"}),
                "r" | "reject" => {
                    let why = prompt("Why (for the model)? ")?;
                    break json!({"call_id": call, "decision": "reject", "message": why});
                }
                "e" | "edit" => {
                    let text = prompt("New arguments (JSON): ")?;
                    match serde_json::from_str::<Value>(&text) {
                        Ok(a) => break json!({"call_id": call, "decision": "edit", "arguments": a}),
                        Err(e) => println!("not JSON: {e}"),
                    }
                }
                "s" | "respond" => {
                    let output = prompt("The result the model reads: ")?;
                    break json!({"call_id": call, "decision": "respond", "output": output});
                }
                _ => println!("answer a, r, e or s"),
            }
        };
        approvals.push(answer);
    }
    if !approvals.is_empty() {
        client.post(&format!("/v1/runs/{id}/approvals"), &json!({"answers": approvals})).await?;
    }
    if !outputs.is_empty() {
        client.post(&format!("/v1/runs/{id}/tool_outputs"), &json!({"outputs": outputs})).await?;
    }
    Ok(())
}

/// Prints `question` and reads one line from stdin (trimmed).
fn prompt(question: &str) -> Result<String> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line)? == 0 {
        bail!("stdin closed while the run waits for an answer");
    }
    // Answers piped in are shown, so a transcript reads as a terminal session would.
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        println!("{}", line.trim());
    }
    Ok(line.trim().to_owned())
}
