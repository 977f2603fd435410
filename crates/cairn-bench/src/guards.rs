//! `cairn-bench guards`: what the guards cost. In process, the injection classifier on a chat
//! turn and on a tool result, and PII redaction of an answer (microseconds, no HTTP noise);
//! then through `cairn serve`, open-loop at a fixed rate, the same alias without guards beside
//! one with injection screening and output redaction on, interleaved in one run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use cairn_gateway::guard::StaticVectors;
use cairn_guard::{InjectionModel, InjectionScreen, PiiPolicy, Redactor, Source, TextVectors};

use crate::load::{self, percentile, Target};
use crate::{row, start_cairn, upstream, BENCH_KEY};

/// A chat turn of about 60 words.
const TURN: &str = "Hi! I'm planning a three-day trip to Lisbon in early May with my partner. We like food \
markets, old neighbourhoods and live music, but we don't enjoy long queues. Could you suggest a day-by-day \
plan, with one restaurant per evening, and tell me which attractions need tickets booked in advance?";

/// An answer of about 120 words with personal data in it.
const ANSWER: &str = "Here is a plan. Day one: walk Alfama in the morning, lunch at the Time Out Market, \
and an evening of fado. Day two: Belém, the monastery and the tower, then LX Factory. Day three: Sintra by \
train; book Pena Palace tickets ahead. For the restaurant bookings, the concierge jane.doe@hotel-lisboa.example \
or +351 21 000 0000 can help; they will ask for a card such as 4111 1111 1111 1111 to hold the table. Markets \
open at ten; arrive early to avoid queues. Trams 28 and 15 are busy at noon, so go early or late. Enjoy the \
pastries in Belém and the view from the Senhora do Monte lookout at sunset.";

fn micros(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Times `f` `n` times; p50 and p99 in microseconds.
fn time(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros(samples)
}

/// The in-process measurements.
fn in_process(model_dir: &Path) -> Result<()> {
    let vectors = StaticVectors::load(model_dir.parent().unwrap_or(model_dir), &model_dir.display().to_string())
        .map_err(anyhow::Error::msg)?;
    let v = Some(&vectors as &dyn TextVectors);
    let model = InjectionModel::builtin().map_err(anyhow::Error::msg)?;
    let screen = InjectionScreen::new();
    let tool_output = format!("{ANSWER} ").repeat(4);
    let redactor = Redactor::new(PiiPolicy::Mask);
    println!("## Guards in process (cairn-bench guards, 2,000 runs each)\n");
    println!("| work | input | p50 | p99 |");
    println!("|---|---|---|---|");
    let line = |work: &str, input: String, (p50, p99): (f64, f64)| {
        println!("| {work} | {input} | {p50:.1} µs | {p99:.1} µs |");
    };
    line(
        "injection score, direct",
        format!("chat turn, {} words", TURN.split_whitespace().count()),
        time(2000, || {
            std::hint::black_box(model.score(&screen, v, TURN, Source::Direct));
        }),
    );
    line(
        "injection score, indirect",
        format!("tool result, {} bytes", tool_output.len()),
        time(2000, || {
            std::hint::black_box(model.score(&screen, v, &tool_output, Source::Indirect));
        }),
    );
    line(
        "PII redaction",
        format!("answer, {} words", ANSWER.split_whitespace().count()),
        time(2000, || {
            std::hint::black_box(redactor.redact(ANSWER));
        }),
    );
    println!();
    Ok(())
}

/// Runs the benchmark: in process with `model_dir`'s word vectors, then `cairn` at `rate`.
pub async fn run(cairn: PathBuf, seconds: u64, rate: u32, model_dir: PathBuf) -> Result<()> {
    in_process(&model_dir)?;
    let upstream = upstream::start().await?;
    let dir = tempfile::tempdir()?;
    let guarded = format!(
        "[guards]\ninjection_model = \"{}\"\n[models.guarded]\ntargets = [{{ provider = \"up\", model = \"bench\" }}]\n\
         guards = {{ injection = \"block\", pii_output = \"redact\" }}\n",
        model_dir.display()
    );
    let (_server, port, _) = start_cairn(&cairn, dir.path(), upstream, &guarded).await?;
    let turn = serde_json::to_string(TURN)?;
    let via = |model: &str| Target {
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        key: Some(BENCH_KEY.into()),
        body: Bytes::from(format!(
            r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a travel agent."}},{{"role":"user","content":{turn}}}]}}"#
        )),
    };
    let (plain, guarded) = (via("bench"), via("guarded"));
    let client = load::client();
    for t in [&plain, &guarded] {
        if load::one(&client, t).await.is_none() {
            bail!("a first call failed");
        }
    }
    let _ = load::paired_rate(&plain, &guarded, 200, Duration::from_secs(1), false).await;
    println!(
        "## Guards through the gateway (cairn-bench guards, {seconds}s at {rate} req/s each path, non-streaming)\n"
    );
    println!(
        "| run (a vs b) | rate | a p50 | a p99 | b p50 | b p99 | b-a p50 | b-a p99 | generator lag p99 | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (a, b, lag) = load::paired_rate(&plain, &guarded, rate, Duration::from_secs(seconds), false).await?;
    row("no guards vs injection + output redaction", rate, &a, &b, lag);
    let metrics = load::metrics(port).await.unwrap_or_default();
    let screened: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("cairn_guard_decisions_total{guard=\"injection\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!("\nInjection screenings counted by the server: {screened}.\n");
    Ok(())
}
