//! `cairn-bench generate`: generation speed of the in-process chat model (llama.cpp on a GGUF
//! file): prompt tokens/s, time to first token and output tokens/s, with a fixed prompt at
//! temperature 0, median of several runs; and, side by side in the same run, the same figures
//! for a bare llama.cpp loop (`cairn_llama::bare`) on the same file, thread count and tokens.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};
use cairn_llama::{ChatEngine, EngineOptions, Event, GenerateRequest, Message};

/// One run's figures.
struct Run {
    prompt_tokens: u32,
    prompt_tps: f64,
    ttft_ms: f64,
    output_tokens: u32,
    output_tps: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn once(engine: &ChatEngine, prompt: &str, max_tokens: u32) -> Result<Run> {
    let request = GenerateRequest {
        messages: vec![Message { role: "user".into(), content: prompt.into() }],
        max_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        stop: vec![],
        grammar: None,
    };
    let start = Instant::now();
    let mut events = engine.generate(request)?;
    let (mut started, mut first, mut prompt_tokens) = (None, None, 0);
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Started { prompt_tokens: n } => {
                started = Some(start.elapsed());
                prompt_tokens = n;
            }
            Event::Text { .. } if first.is_none() => first = Some(start.elapsed()),
            Event::Text { .. } => {}
            Event::Failed(m) => return Err(anyhow!(m)),
            Event::Done { completion_tokens, .. } => {
                let total = start.elapsed();
                let (started, first) = (started.unwrap_or(total), first.unwrap_or(total));
                let gen_secs = (total - first).as_secs_f64();
                return Ok(Run {
                    prompt_tokens,
                    prompt_tps: prompt_tokens as f64 / started.as_secs_f64(),
                    ttft_ms: first.as_secs_f64() * 1000.0,
                    output_tokens: completion_tokens,
                    output_tps: completion_tokens.saturating_sub(1) as f64 / gen_secs.max(1e-9),
                });
            }
        }
    }
    Err(anyhow!("the engine stopped"))
}

/// Runs the benchmark and prints a Markdown table.
pub async fn run(model: &Path, threads: &[usize], runs: usize, max_tokens: u32) -> Result<()> {
    let prompt = "Explain, in a few paragraphs, how a lighthouse keeper in the nineteenth century \
                  kept the lamp burning through a winter storm, what tools were used, and why it mattered \
                  to the ships at sea. Mention the fuel, the lens and the daily routine.";
    println!("## Generation speed (cairn-bench generate, {runs} runs each, median; temperature 0)\n");
    println!("model: {}\n", model.display());
    println!(
        "| threads | prompt tokens | prompt tokens/s: Cairn / bare llama.cpp | time to first token: Cairn / bare | output tokens | output tokens/s: Cairn / bare llama.cpp | output speed ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &t in threads {
        let engine = ChatEngine::load(model, EngineOptions { threads: t, context: 2048, queue: 4 })?;
        once(&engine, prompt, 8).await?; // warm-up
        let mut all = Vec::new();
        for _ in 0..runs {
            all.push(once(&engine, prompt, max_tokens).await?);
        }
        drop(engine);
        let r = &all[0];
        let n_out = r.output_tokens.max(2);
        let (model, prompt) = (model.to_path_buf(), prompt.to_owned());
        let bare =
            tokio::task::spawn_blocking(move || cairn_llama::bare::generate(&model, t, 2048, &prompt, n_out, runs + 1))
                .await??;
        let bare = &bare[1..]; // the first run warms up
        let cairn_out = median(all.iter().map(|r| r.output_tps).collect());
        let bare_out = median(bare.iter().map(|b| (b.output_tokens - 1) as f64 / b.generation_secs).collect());
        println!(
            "| {t} | {} | {:.0} / {:.0} | {:.1} ms / {:.1} ms | {} | {:.1} / {:.1} | {:.2} |",
            r.prompt_tokens,
            median(all.iter().map(|r| r.prompt_tps).collect()),
            median(bare.iter().map(|b| b.prompt_tokens as f64 / b.prompt_secs).collect()),
            median(all.iter().map(|r| r.ttft_ms).collect()),
            median(bare.iter().map(|b| b.first_token_secs * 1000.0).collect()),
            r.output_tokens,
            cairn_out,
            bare_out,
            cairn_out / bare_out,
        );
    }
    Ok(())
}
