//! `cairn eval answers`: asks a collection of a running Cairn every question of a dataset
//! (`/v1/collections/{id}/answer`, so answers, traces and costs are the real ones, charged to
//! the key used) and scores each answer: citation precision and recall against the documents
//! the dataset expects, and, with `--judge MODEL`, faithfulness to the cited sources as an LLM
//! judge grades it (a chat call through the same server). Scores go onto each answer as
//! feedback, and the whole evaluation is stored (`POST /v1/evals`) for the dashboard.
//!
//! The dataset is JSON Lines, one question a line:
//! `{"question": "...", "expected_documents": ["doc-id", ...]}`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cli::EvalAnswersArgs;
use crate::client::{find_collection, Client};

/// Most questions in one evaluation (what `/v1/evals` stores).
const MAX_QUESTIONS: usize = 1_000;
/// Who the scores are from, on each answer's feedback.
const AUTHOR: &str = "cairn eval answers";

/// One line of the dataset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Question {
    question: String,
    #[serde(default)]
    expected_documents: Vec<String>,
}

/// Runs `cairn eval answers` (see the module docs) and prints a Markdown report.
pub async fn answers(args: EvalAnswersArgs) -> Result<()> {
    let questions = load(&args.dataset)?;
    let client = Client::new(&args.url, &args.key)?;
    let col = find_collection(&client, &args.collection)
        .await?
        .ok_or_else(|| anyhow!("no collection '{}' (see GET /v1/collections)", args.collection))?;
    let col_id = col["id"].as_str().unwrap_or_default().to_owned();
    let (client, args_ref, col_ref) = (&client, &args, col_id.as_str());
    let items: Vec<Value> = futures::stream::iter(questions.iter())
        .map(|q| async move { score(client, args_ref, col_ref, q).await })
        .buffered(args.concurrency.clamp(1, 16))
        .collect()
        .await;
    let dataset = args.dataset.file_name().map_or_else(|| "dataset".into(), |n| n.to_string_lossy().into_owned());
    let body = json!({
        "collection_id": col_id, "dataset": dataset, "model": args.model, "judge": args.judge, "items": items,
    });
    let stored = client.post("/v1/evals", &body).await.context("storing the evaluation")?;
    print_report(&stored);
    Ok(())
}

/// Reads the dataset, refusing bad lines by number.
fn load(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let q: Question = serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))?;
        if q.question.trim().is_empty() {
            bail!("{} line {}: the question is empty", path.display(), i + 1);
        }
        out.push(q);
    }
    if out.is_empty() || out.len() > MAX_QUESTIONS {
        bail!("{} must hold 1-{MAX_QUESTIONS} questions (it holds {})", path.display(), out.len());
    }
    Ok(out)
}

/// Asks one question and scores its answer; failures are recorded in the item, not fatal.
async fn score(client: &Client, args: &EvalAnswersArgs, col: &str, q: &Question) -> Value {
    let mut item = json!({
        "question": q.question, "answer_id": null, "expected": q.expected_documents, "cited": [],
        "citation_precision": null, "citation_recall": null, "faithfulness": null, "error": null,
    });
    let mut ask = json!({"question": q.question});
    if let Some(m) = &args.model {
        ask["model"] = json!(m);
    }
    let answer = match client.post(&format!("/v1/collections/{col}/answer"), &ask).await {
        Ok(a) => a,
        Err(e) => {
            item["error"] = json!(format!("answering: {e}"));
            return item;
        }
    };
    let answer_id = answer["id"].as_str().unwrap_or_default().to_owned();
    item["answer_id"] = json!(answer_id);
    let mut cited: Vec<String> = Vec::new();
    for c in answer["citations"].as_array().into_iter().flatten() {
        if let Some(d) = c["document_id"].as_str() {
            if !cited.iter().any(|x| x == d) {
                cited.push(d.to_owned());
            }
        }
    }
    let (precision, recall) = citation_scores(&cited, &q.expected_documents);
    item["cited"] = json!(cited);
    item["citation_precision"] = json!(precision);
    item["citation_recall"] = json!(recall);
    if let (Some(judge), true) = (&args.judge, answer["found"] == true) {
        match faithfulness(client, judge, &answer, &cited).await {
            Ok(f) => item["faithfulness"] = json!(f),
            Err(e) => item["error"] = json!(format!("judging: {e}")),
        }
    }
    if !answer_id.is_empty() {
        for (name, v) in [("citation_precision", precision), ("citation_recall", recall)]
            .into_iter()
            .chain([("faithfulness", item["faithfulness"].as_f64())])
        {
            let Some(v) = v else { continue };
            let fb = json!({"name": name, "score": v, "author": AUTHOR});
            // Feedback needs the answer's trace stored; with tracing off it is refused, and
            // the stored evaluation still holds the scores.
            let _ = client.post(&format!("/v1/answers/{answer_id}/feedback"), &fb).await;
        }
    }
    item
}

/// Citation precision (share of cited documents expected) and recall (share of expected
/// documents cited); each absent when its denominator is zero.
pub(crate) fn citation_scores(cited: &[String], expected: &[String]) -> (Option<f64>, Option<f64>) {
    let cited: BTreeSet<&str> = cited.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let hits = cited.intersection(&expected).count() as f64;
    let share = |n: usize| (n > 0).then(|| hits / n as f64);
    (share(cited.len()), share(expected.len()))
}

/// The judge's instructions: a strict grader that answers in JSON.
const JUDGE: &str = "You grade whether an answer is faithful to its sources: every claim it makes must be \
stated in or directly implied by the sources. Reply with only a JSON object: {\"score\": S, \"reason\": \"...\"}, \
where S is a number from 0 (nothing is supported) to 1 (everything is supported).";

/// Asks `judge` how faithful `answer` is to the sources it cites (all it was given, when it
/// cites none).
async fn faithfulness(client: &Client, judge: &str, answer: &Value, cited: &[String]) -> Result<f64> {
    let sources: Vec<&Value> = answer["sources"].as_array().into_iter().flatten().collect();
    let used: Vec<&&Value> = sources
        .iter()
        .filter(|s| cited.is_empty() || s["document_id"].as_str().is_some_and(|d| cited.iter().any(|c| c == d)))
        .collect();
    let mut prompt = String::from("Sources:\n");
    for s in used {
        prompt.push_str(&format!("[{}] {}\n", s["n"], s["text"].as_str().unwrap_or_default()));
    }
    prompt.push_str(&format!("\nAnswer:\n{}", answer["answer"].as_str().unwrap_or_default()));
    let body = json!({
        "model": judge, "temperature": 0,
        "messages": [{"role": "system", "content": JUDGE}, {"role": "user", "content": prompt}],
    });
    let reply = client.post("/v1/chat/completions", &body).await?;
    let text = reply["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    parse_score(text).ok_or_else(|| anyhow!("the judge gave no score from 0 to 1"))
}

/// The score in a judge's reply: the `score` of the first JSON object in it, else the first
/// number from 0 to 1 in the text.
pub(crate) fn parse_score(text: &str) -> Option<f64> {
    let in_range = |v: f64| (0.0..=1.0).contains(&v).then_some(v);
    if let (Some(start), Some(end)) = (text.find('{'), text.rfind('}')) {
        if start < end {
            if let Ok(v) = serde_json::from_str::<Value>(&text[start..=end]) {
                if let Some(s) = v["score"].as_f64().or_else(|| v["score"].as_str().and_then(|s| s.parse().ok())) {
                    return in_range(s);
                }
            }
        }
    }
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_end_matches('.').parse::<f64>().ok())
        .find_map(in_range)
}

fn print_report(e: &Value) {
    let pct = |v: &Value| v.as_f64().map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0));
    println!("## Answer evaluation {}\n", e["id"].as_str().unwrap_or_default());
    println!(
        "{} questions on collection {} (dataset {}, judge {})\n",
        e["questions"],
        e["collection_id"].as_str().unwrap_or_default(),
        e["dataset"].as_str().unwrap_or_default(),
        e["judge"].as_str().unwrap_or("none")
    );
    println!("| question | cited | precision | recall | faithfulness | error |\n|---|---|---|---|---|---|");
    for i in e["items"].as_array().into_iter().flatten() {
        let q: String = i["question"].as_str().unwrap_or_default().chars().take(60).collect();
        let cited: Vec<&str> = i["cited"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            q.replace('|', "/"),
            cited.join(", "),
            pct(&i["citation_precision"]),
            pct(&i["citation_recall"]),
            pct(&i["faithfulness"]),
            i["error"].as_str().unwrap_or("")
        );
    }
    println!(
        "| **mean** | | **{}** | **{}** | **{}** | |",
        pct(&e["citation_precision"]),
        pct(&e["citation_recall"]),
        pct(&e["faithfulness"])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_scored_as_sets() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(citation_scores(&s(&["a", "b"]), &s(&["a"])), (Some(0.5), Some(1.0)));
        assert_eq!(citation_scores(&s(&[]), &s(&["a"])), (None, Some(0.0)));
        assert_eq!(citation_scores(&s(&["a"]), &s(&[])), (Some(0.0), None));
    }

    #[test]
    fn judge_replies_are_read_leniently_but_never_out_of_range() {
        assert_eq!(parse_score("{\"score\": 0.8, \"reason\": \"ok\"}"), Some(0.8));
        assert_eq!(parse_score("Sure! ```json\n{\"score\": \"1\"}\n```"), Some(1.0));
        assert_eq!(parse_score("I'd say 0.25."), Some(0.25));
        assert_eq!(parse_score("{\"score\": 7}"), None);
        assert_eq!(parse_score("10 out of 10"), None);
        assert_eq!(parse_score("no idea"), None);
    }
}
