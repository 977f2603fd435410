//! The semantic cache through the HTTP API: a question asked in other words is answered from
//! the cache (streamed too), at no cost; near-misses, other system prompts, tools, parameters,
//! earlier turns, tenants, and similarities under the threshold are not; answers built from a
//! knowledge collection are dropped when it changes. Questions are embedded by the in-process
//! MiniLM; answers come from a stand-in provider.

use cairn_testkit::{StandIn, TestServer};
use reqwest::multipart::Form;
use serde_json::{json, Value};

use crate::rag::{collection, file, settle, upload};

async fn setup() -> (TestServer, StandIn) {
    let up = StandIn::start().await;
    let config = format!(
        "[local]\nthreads = 1\n[jobs]\npoll_ms = 20\n\
         [providers.local]\nkind = \"local\"\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.\"local/minilm\"]\nkind = \"embedding\"\ntargets = [{{ provider = \"local\", model = \"minilm\" }}]\n\
         [models.faq]\ntargets = [{{ provider = \"up\", model = \"up-model\", input_usd_per_mtok = 1000.0 }}]\n\
         cache = {{ ttl_s = 600, semantic = {{ context_messages = 2 }} }}\n\
         [models.strict]\ntargets = [{{ provider = \"up\", model = \"up-model\" }}]\n\
         cache = {{ semantic = {{ threshold = 0.999 }} }}\n",
        up.openai_url()
    );
    (TestServer::start(&config).await, up)
}

fn question(model: &str, text: &str) -> Value {
    json!({"model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

/// Sends a chat request; returns status, `x-cairn-cache`, `x-cairn-cache-similarity` and body.
async fn send(s: &TestServer, key: &str, body: &Value) -> (u16, String, Option<f64>, Value) {
    let resp = s.send_chat(key, body).await;
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (cache, similarity) = (header("x-cairn-cache").unwrap_or_default(), header("x-cairn-cache-similarity"));
    let status = resp.status().as_u16();
    (status, cache, similarity.and_then(|v| v.parse().ok()), resp.json().await.unwrap_or(Value::Null))
}

fn text(c: &Value) -> &str {
    c["choices"][0]["message"]["content"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_question_in_other_words_is_answered_from_the_cache() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    up.reply_with(&["Run git branch -d NAME."]);
    let (status, cache, _, first) = send(&s, &key, &question("faq", "How do I delete a local git branch?")).await;
    assert_eq!((status, cache.as_str()), (200, "miss"), "{first}");
    up.reply_with(&["Something else."]);

    let (status, cache, similarity, hit) =
        send(&s, &key, &question("faq", "How can I remove a local branch in git?")).await;
    assert_eq!((status, cache.as_str(), text(&hit)), (200, "hit", "Run git branch -d NAME."), "{hit}");
    let similarity = similarity.expect("a semantic hit says how similar");
    assert!((0.85..=1.0).contains(&similarity), "{similarity}");
    assert_eq!(up.request_count(), 1, "the hit never reached the provider");

    // Streamed: the hit comes back as SSE.
    let mut streamed = question("faq", "how do I remove a local git branch");
    streamed["stream"] = json!(true);
    let resp = s.send_chat(&key, &streamed).await;
    assert_eq!(resp.headers()["x-cairn-cache"], "hit");
    let body = resp.text().await.unwrap();
    assert!(body.contains("git branch -d") && body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(up.request_count(), 1);

    // Accounted as cached at no cost: one paid call, and each hit a request of its own.
    let (_, u) = crate::usage(&s, &key, "?model=faq").await;
    assert_eq!(u["totals"]["requests"], 3, "{u}");
    let metrics = s.metrics().await;
    assert!(metrics.contains("cairn_cache_semantic_hits_total{model=\"faq\"} 2"), "{metrics}");

    // A near-miss, close as it reads, is a different question: it goes upstream.
    for near in [
        "How do I delete a remote git branch?",
        "How do I rename a local git branch?",
        "How do I not delete a local git branch?",
    ] {
        let (_, cache, similarity, c) = send(&s, &key, &question("faq", near)).await;
        assert_eq!((cache.as_str(), similarity, text(&c)), ("miss", None, "Something else."), "{near}");
    }
}

#[tokio::test]
async fn hits_need_the_same_prompt_tools_parameters_turns_tenant_and_enough_similarity() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let ask = |extra: Value| {
        let mut body = json!({"model": "faq", "temperature": 0, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the capital of France?"}
        ]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    assert_eq!(send(&s, &key, &ask(json!({}))).await.1, "miss");
    let reworded = |extra: Value| {
        let mut b = ask(extra);
        b["messages"][1]["content"] = json!("what's the capital of france");
        b
    };
    assert_eq!(send(&s, &key, &reworded(json!({}))).await.1, "hit");
    let calls = up.request_count();

    let other_system = json!({"messages": [
        {"role": "system", "content": "You are verbose."},
        {"role": "user", "content": "what's the capital of france"}
    ]});
    let tools =
        json!({"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]});
    for (what, extra) in [
        ("another system prompt", other_system),
        ("tools", tools),
        ("other parameters", json!({"max_tokens": 7})),
        ("another temperature", json!({"temperature": 0.0, "seed": 3})),
    ] {
        let (_, cache, _, _) = send(&s, &key, &reworded(extra)).await;
        assert_eq!(cache, "miss", "{what}");
    }
    assert_eq!(up.request_count(), calls + 4);

    // Earlier turns must match too; a conversation longer than the window is never matched.
    let turns = |first: &str, last: &str| {
        json!({"model": "faq", "temperature": 0, "messages": [
            {"role": "user", "content": first}, {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": last}
        ]})
    };
    assert_eq!(send(&s, &key, &turns("Capital of France?", "What is its population?")).await.1, "miss");
    assert_eq!(send(&s, &key, &turns("Capital of France?", "what's its population")).await.1, "hit");
    assert_eq!(send(&s, &key, &turns("Capital of Spain?", "what's its population")).await.1, "miss");
    let mut long = turns("Capital of France?", "What is its population?");
    let earlier = long["messages"].as_array().unwrap()[..2].to_vec();
    long["messages"].as_array_mut().unwrap().splice(0..0, earlier);
    assert_eq!(send(&s, &key, &long).await.1, "miss");
    long["messages"][4]["content"] = json!("what's its population");
    assert_eq!(send(&s, &key, &long).await.1, "miss", "past context_messages: exact matches only");

    // Another tenant never sees the entry; nor does a threshold the pair does not reach.
    let theirs = s.key("globex", "member", json!({})).await;
    assert_eq!(send(&s, &theirs, &reworded(json!({}))).await.1, "miss");
    assert_eq!(send(&s, &key, &question("strict", "What is the capital of France?")).await.1, "miss");
    let (_, cache, _, _) = send(&s, &key, &question("strict", "what's the capital of france")).await;
    assert_eq!(cache, "miss", "similar, but under the alias's 0.999");
    assert_eq!(send(&s, &key, &question("strict", "What is the capital of France?")).await.1, "hit");

    // A question with personal data is matched exactly or not at all (and its words are not
    // stored): reworded, it goes upstream even though it would agree.
    let pii = "Where is the order for jane.doe@example.com?";
    assert_eq!(send(&s, &key, &question("faq", pii)).await.1, "miss");
    assert_eq!(send(&s, &key, &question("faq", pii)).await.1, "hit");
    let (_, cache, _, _) = send(&s, &key, &question("faq", "where's the order for jane.doe@example.com")).await;
    assert_eq!(cache, "miss");
}

#[tokio::test]
async fn answers_from_knowledge_are_dropped_when_the_collection_changes() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let col = collection(&s, &key, "kettle").await;
    let form = Form::new().part("file", file("colours.txt", b"The kettle comes in copper, slate and white."));
    let (status, accepted) = upload(&s, &key, &col, form).await;
    assert_eq!(status, 202, "{accepted}");
    settle(&s, &key, &col, &accepted).await;
    let mut grounded = question("faq", "Which colours does the kettle come in?");
    grounded["cairn"] = json!({"knowledge": {"collections": [col.clone()]}});
    up.reply_with(&["Copper, slate and white [1]."]);
    assert_eq!(send(&s, &key, &grounded).await.1, "miss");
    let (_, cache, _, hit) = send(&s, &key, &grounded).await;
    assert_eq!((cache.as_str(), text(&hit)), ("hit", "Copper, slate and white [1]."));
    assert_eq!(hit["cairn"]["citations"].as_array().map(Vec::len), Some(1), "{hit}");

    // A new document, unrelated to the question: the prompt sent upstream stays the same, but
    // the collection changed, so the answer built on it is asked afresh.
    let form = Form::new().part("file", file("lids.txt", b"Spare lids are sold separately."));
    let (_, accepted) = upload(&s, &key, &col, form).await;
    settle(&s, &key, &col, &accepted).await;
    up.reply_with(&["Copper, slate and white [1]. Lids are extra."]);
    let (_, cache, _, fresh) = send(&s, &key, &grounded).await;
    assert_eq!((cache.as_str(), text(&fresh)), ("miss", "Copper, slate and white [1]. Lids are extra."));
    assert_eq!(up.request_count(), 2);
    let bodies = up.bodies();
    assert_eq!(bodies[0]["messages"], bodies[1]["messages"], "the same sources were sent");
}

#[tokio::test]
async fn readers_huge_questions_and_concurrent_callers_are_handled() {
    let (s, up) = setup().await;
    // A reader may not call models: refused before any embedding or upstream call.
    let reader = s.key("acme", "reader", json!({})).await;
    let (status, _, _, body) = send(&s, &reader, &question("faq", "How do I delete a local git branch?")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(up.request_count(), 0);
    let (_, u) = crate::usage(&s, &reader, "").await;
    assert_eq!(u["totals"]["requests"].as_u64().unwrap_or(0), 0, "nothing charged: {u}");

    // A question past the semantic tier's size is served and cached exactly, never by meaning.
    let key = s.key("acme", "member", json!({})).await;
    let huge = format!("How do I delete a local git branch? {}", "Please explain it in detail. ".repeat(4_000));
    let (status, cache, _, _) = send(&s, &key, &question("faq", &huge)).await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    let reworded = huge.replace("How do I delete", "How can I remove");
    let (status, cache, similarity, _) = send(&s, &key, &question("faq", &reworded)).await;
    assert_eq!((status, cache.as_str(), similarity), (200, "miss", None));

    // Concurrent askers of one question in other words: all answered from the one entry.
    assert_eq!(send(&s, &key, &question("faq", "What is the capital of France?")).await.1, "miss");
    let asks = (0..16).map(|i| {
        let (s, key) = (&s, &key);
        async move {
            let text = if i % 2 == 0 { "what's the capital of france" } else { "What is France's capital?" };
            send(s, key, &question("faq", text)).await
        }
    });
    for (status, cache, _, body) in futures::future::join_all(asks).await {
        assert_eq!((status, cache.as_str()), (200, "hit"), "{body}");
    }
    assert_eq!(up.request_count(), 3, "the two misses above and the first question only");
}
