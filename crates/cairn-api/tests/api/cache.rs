//! The exact response cache through the HTTP API: hits and misses under every control, streamed
//! hits and stored streams, tenants never sharing entries, hits accounted at no cost and
//! counted against the request rate, and purging.

use std::time::Duration;

use cairn_testkit::{Fault, StandIn, TestServer};
use serde_json::{json, Value};

use crate::config;

/// The shared test config plus cached aliases: `cached` (deterministic requests only),
/// `sampled` (caches sampled requests too), `tiny` (entries up to 10 bytes: nothing fits),
/// `narrow_cached` (a provider allowing one request at a time) and `cached_embed` (embeddings).
async fn setup() -> (TestServer, StandIn) {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let prices = "input_usd_per_mtok = 10000.0, output_usd_per_mtok = 20000.0";
    let extra = format!(
        r#"
[models.cached]
targets = [{{ provider = "up", model = "up-model", {prices} }}]
cache = {{ ttl_s = 600, max_ttl_s = 3600 }}

[models.sampled]
targets = [{{ provider = "up", model = "up-model", {prices} }}]
cache = {{ ttl_s = 600, sampled = true }}

[models.tiny]
targets = [{{ provider = "up", model = "up-model", {prices} }}]
cache = {{ max_entry_bytes = 10 }}

[models.narrow_cached]
targets = [{{ provider = "narrow", model = "up-model", timeouts = {{ first_token_ms = 300 }} }}]
cache = {{}}

[models.cached_embed]
kind = "embedding"
targets = [{{ provider = "up", model = "embed-model" }}]
cache = {{ ttl_s = 600 }}
"#
    );
    let server = TestServer::start(&format!("{}{extra}", config(&up, &backup))).await;
    (server, up)
}

fn ask(model: &str) -> Value {
    json!({"model": model, "temperature": 0, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// Sends a chat request with extra headers; returns status, `x-cairn-cache` and the body.
async fn send(s: &TestServer, key: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let resp = s.send_chat_with(key, body, headers).await;
    let status = resp.status().as_u16();
    let cache = resp.headers().get("x-cairn-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, cache, resp.json().await.unwrap_or(Value::Null))
}

fn text(c: &Value) -> &str {
    c["choices"][0]["message"]["content"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache_at_no_cost() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let (status, cache, first) = send(&s, &key, &ask("cached"), &[]).await;
    assert_eq!((status, cache.as_str()), (200, "miss"), "{first}");
    // The upstream would now answer differently: a hit replays the stored answer.
    up.reply_with(&["Something ", "else."]);
    let mut reordered = json!({"messages": [{"content": "Say hello", "role": "user"}], "temperature": 0.0});
    reordered["model"] = json!("cached");
    reordered["user"] = json!("someone-else");
    let (status, cache, hit) = send(&s, &key, &reordered, &[]).await;
    assert_eq!((status, cache.as_str()), (200, "hit"), "{hit}");
    assert_eq!(text(&hit), text(&first));
    assert_eq!(hit["usage"], first["usage"], "the answer's own usage is replayed");
    assert_ne!(hit["id"], first["id"], "a hit is a new completion");
    assert_eq!(up.request_count(), 1, "a hit never reaches the provider");

    // Accounted: two requests, no errors, the cost of one call; read at once (no flush by the
    // test), the hit's record is there though its answer did not wait for it.
    let (_, u) = s.get("/v1/usage", &key).await;
    assert_eq!(u["totals"]["requests"], 2, "{u}");
    assert_eq!(u["totals"]["errors"], 0, "{u}");
    assert!((u["totals"]["cost_usd"].as_f64().unwrap() - 0.19).abs() < 1e-9, "{u}");
    assert_eq!(u["totals"]["output_tokens"], 4, "a hit consumes no tokens");
    let metrics = s.metrics().await;
    assert!(metrics.contains(r#"status="cached""#), "hits are counted with their own status");
    assert!(
        metrics.contains(r#"cairn_cache_lookups_total{model="cached",endpoint="chat",result="hit"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("cairn_cache_saved_usd_total{model=\"cached\"} 0.19"), "{metrics}");

    // The hit's trace: the call span says so and has no upstream attempt under it.
    let (status, _, trace_id) =
        crate::traces_flows::post_traced(&s, "/v1/chat/completions", &key, &ask("cached")).await;
    assert_eq!(status, 200);
    let spans = crate::traces::flatten(&s.trace(&trace_id, &key, 2).await["spans"]);
    let call = spans.iter().find(|s| s["name"] == "chat cached").expect("the call's span");
    assert_eq!(call["attributes"]["cairn.cache.status"], "hit", "{call}");
    assert_eq!(call["status"], "ok");
    assert_eq!(call["children"], json!([]), "no attempt went upstream");

    // A model without a cache says so, and a different request misses.
    let (_, cache, _) = send(&s, &key, &ask("fast"), &[]).await;
    assert_eq!(cache, "bypass");
    let mut other = ask("cached");
    other["max_tokens"] = json!(5);
    let (_, cache, c) = send(&s, &key, &other, &[]).await;
    assert_eq!((cache.as_str(), text(&c)), ("miss", "Something else."));
}

#[tokio::test]
async fn every_control_does_what_it_says() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let calls = || up.request_count();
    assert_eq!(send(&s, &key, &ask("cached"), &[]).await.1, "miss");
    assert_eq!(send(&s, &key, &ask("cached"), &[]).await.1, "hit");
    assert_eq!(calls(), 1);

    // no-store: neither read nor written; no-cache: not read, but the fresh answer is kept.
    up.reply_with(&["Fresh."]);
    let (_, cache, c) = send(&s, &key, &ask("cached"), &[("cache-control", "no-store")]).await;
    assert_eq!((cache.as_str(), text(&c), calls()), ("bypass", "Fresh.", 2));
    assert_eq!(text(&send(&s, &key, &ask("cached"), &[]).await.2), "Hello from the stand-in.", "no-store kept nothing");
    let mut body = ask("cached");
    body["cairn"] = json!({"cache": {"no_cache": true}});
    let (_, cache, c) = send(&s, &key, &body, &[]).await;
    assert_eq!((cache.as_str(), text(&c), calls()), ("bypass", "Fresh.", 3));
    let (_, cache, c) = send(&s, &key, &ask("cached"), &[]).await;
    assert_eq!((cache.as_str(), text(&c)), ("hit", "Fresh."), "no-cache refreshed the entry");
    // max-age: an entry older than asked for is not served (0: none is fresh enough).
    let (_, cache, _) = send(&s, &key, &ask("cached"), &[("cache-control", "max-age=0")]).await;
    assert_eq!(cache, "bypass");
    let (_, cache, _) = send(&s, &key, &ask("cached"), &[("cache-control", "max-age=3600")]).await;
    assert_eq!(cache, "hit");

    // Namespaces keep entries apart, by header or by field (LiteLLM's spelling works too).
    let (_, cache, _) = send(&s, &key, &ask("cached"), &[("cache-control", "namespace=v2, ttl=60")]).await;
    assert_eq!(cache, "miss");
    let mut body = ask("cached");
    body["cairn"] = json!({"cache": {"namespace": "v2", "no-cache": false}});
    assert_eq!(send(&s, &key, &body, &[]).await.1, "hit");

    // Bad controls are refused in the documented shape, before any call.
    let before = calls();
    let bad_headers = ["max-age=soon", "ttl=0", "namespace=no spaces", "ttl=999999"];
    for h in bad_headers {
        let (status, _, e) = send(&s, &key, &ask("cached"), &[("cache-control", h)]).await;
        assert_eq!(status, 400, "{h}: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    }
    for field in [json!({"ttl": 0}), json!({"namespace": ""}), json!({"bogus": 1}), json!({"ttl": 7200})] {
        let mut body = ask("cached");
        body["cairn"] = json!({ "cache": field });
        let (status, _, e) = send(&s, &key, &body, &[]).await;
        assert_eq!(status, 400, "{field}: {e}");
    }
    assert_eq!(calls(), before, "refused requests never reach the provider");
}

#[tokio::test]
async fn sampled_requests_are_cached_only_where_the_model_says_so() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    for body in [json!({"model": "cached", "messages": [{"role": "user", "content": "hi"}]}), {
        let mut b = ask("cached");
        b["temperature"] = json!(0.7);
        b
    }] {
        assert_eq!(send(&s, &key, &body, &[]).await.1, "bypass", "{body}");
        assert_eq!(send(&s, &key, &body, &[]).await.1, "bypass", "{body}");
    }
    assert_eq!(up.request_count(), 4);
    let body = json!({"model": "sampled", "temperature": 1.2, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(send(&s, &key, &body, &[]).await.1, "miss");
    assert_eq!(send(&s, &key, &body, &[]).await.1, "hit");
    // Too big to keep: served, never stored.
    assert_eq!(send(&s, &key, &ask("tiny"), &[]).await.1, "miss");
    assert_eq!(send(&s, &key, &ask("tiny"), &[]).await.1, "miss");
}

#[tokio::test]
async fn streams_are_stored_whole_and_hits_stream_back() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let mut streamed = ask("cached");
    streamed["stream"] = json!(true);
    let (status, events) = s.stream(&key, &streamed).await;
    assert_eq!((status, events.last().map(String::as_str)), (200, Some("[DONE]")));
    // The stored stream answers a plain request, and a streamed one with usage.
    up.reply_with(&["Not ", "this."]);
    let (_, cache, c) = send(&s, &key, &ask("cached"), &[]).await;
    assert_eq!((cache.as_str(), text(&c)), ("hit", "Hello from the stand-in."));
    streamed["stream_options"] = json!({"include_usage": true});
    let resp = s.send_chat(&key, &streamed).await;
    assert_eq!(resp.headers()["x-cairn-cache"], "hit");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let events: Vec<&str> = body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let said: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(said, "Hello from the stand-in.");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let last = chunks.last().unwrap();
    assert_eq!((last["choices"].clone(), last["usage"]["completion_tokens"].clone()), (json!([]), json!(4)));
    assert_eq!(up.request_count(), 1);

    // A stream cut by the upstream is never stored.
    let mut other = streamed.clone();
    other["messages"] = json!([{"role": "user", "content": "Cut me off"}]);
    up.push([Fault::CutAfter(1)]);
    let (_, events) = s.stream(&key, &other).await;
    assert_ne!(events.last().map(String::as_str), Some("[DONE]"));
    let mut plain = other.clone();
    plain["stream"] = json!(false);
    plain.as_object_mut().unwrap().remove("stream_options");
    assert_eq!(send(&s, &key, &plain, &[]).await.1, "miss", "the cut stream left no entry");
}

#[tokio::test]
async fn tenants_never_share_entries_and_hits_count_against_the_request_rate() {
    let (s, up) = setup().await;
    let acme = s.key("acme", "member", json!({"requests_per_minute": 3})).await;
    let umbrella = s.key("umbrella", "member", json!({})).await;
    assert_eq!(send(&s, &acme, &ask("cached"), &[]).await.1, "miss");
    assert_eq!(send(&s, &umbrella, &ask("cached"), &[]).await.1, "miss", "another tenant's entry is not visible");
    assert_eq!(up.request_count(), 2);
    assert_eq!(send(&s, &acme, &ask("cached"), &[]).await.1, "hit");
    assert_eq!(send(&s, &acme, &ask("cached"), &[]).await.1, "hit");
    let (status, _, e) = send(&s, &acme, &ask("cached"), &[]).await;
    assert_eq!(status, 429, "a hit is still a request: {e}");
    // Readers may not call models, cached or not.
    let reader = s.key("acme", "reader", json!({})).await;
    assert_eq!(send(&s, &reader, &ask("cached"), &[]).await.0, 403);
}

#[tokio::test]
async fn embeddings_are_cached_and_encoded_as_asked() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    let post = |body: Value| {
        let s = &s;
        let key = key.clone();
        async move {
            let resp =
                s.client.post(format!("{}/v1/embeddings", s.base)).bearer_auth(key).json(&body).send().await.unwrap();
            let cache = resp.headers().get("x-cairn-cache").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), cache.unwrap_or_default(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, cache, first) = post(json!({"model": "cached_embed", "input": ["a", "b"]})).await;
    assert_eq!((status, cache.as_str()), (200, "miss"), "{first}");
    let (_, cache, hit) = post(json!({"model": "cached_embed", "input": ["a", "b"]})).await;
    assert_eq!((cache.as_str(), &hit["data"]), ("hit", &first["data"]));
    let (_, cache, b64) =
        post(json!({"model": "cached_embed", "input": ["a", "b"], "encoding_format": "base64"})).await;
    assert_eq!(cache, "hit");
    assert!(b64["data"][0]["embedding"].is_string(), "{b64}");
    let (_, cache, _) =
        post(json!({"model": "cached_embed", "input": ["a", "b"], "cairn": {"cache": {"no_store": true}}})).await;
    assert_eq!(cache, "bypass");
    let (status, _, _) = post(json!({"model": "cached_embed", "input": "a", "cairn": {"nope": 1}})).await;
    assert_eq!(status, 400);
    assert_eq!(up.request_count(), 2);
    assert_eq!(post(json!({"model": "embed", "input": "a"})).await.1, "bypass");
}

#[tokio::test]
async fn admins_purge_their_own_tenant_only() {
    let (s, up) = setup().await;
    let member = s.key("acme", "member", json!({})).await;
    let admin = s.key("acme", "admin", json!({})).await;
    let other_admin = s.key("umbrella", "admin", json!({})).await;
    send(&s, &member, &ask("cached"), &[]).await;
    send(&s, &member, &ask("cached"), &[("cache-control", "namespace=v2")]).await;
    let purge = |key: String, query: &'static str| {
        let s = &s;
        async move {
            let resp = s.client.delete(format!("{}/v1/cache{query}", s.base)).bearer_auth(key).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(purge(member.clone(), "").await.0, 403, "members cannot purge");
    assert_eq!(purge(other_admin.clone(), "?tenant=acme").await.0, 403, "nor another tenant's admin");
    assert_eq!(purge(other_admin, "").await.1["deleted"], 0, "their own tenant has nothing");
    assert_eq!(purge(admin.clone(), "?namespace=bad%20name").await.0, 400);
    let (status, body) = purge(admin.clone(), "?namespace=v2").await;
    assert_eq!((status, body["deleted"].clone(), body["tenant"].clone()), (200, json!(1), json!("acme")));
    assert_eq!(send(&s, &member, &ask("cached"), &[]).await.1, "hit", "the default namespace is untouched");
    assert_eq!(purge(admin, "?model=cached").await.1["deleted"], 1);
    assert_eq!(send(&s, &member, &ask("cached"), &[]).await.1, "miss");
    assert_eq!(up.request_count(), 3);
}

#[tokio::test]
async fn two_nodes_sharing_postgres_share_the_cache() {
    let (up, backup) = (StandIn::start().await, StandIn::start().await);
    let cfg = format!(
        "{}\n[models.cached]\ntargets = [{{ provider = \"up\", model = \"up-model\" }}]\ncache = {{}}\n",
        config(&up, &backup)
    );
    let url = cairn_store::conformance::fresh_pg_database().await;
    let a = TestServer::start_with(&cfg, Some(url.clone())).await;
    let b = TestServer::start_with(&cfg, Some(url)).await;
    let key = a.key("acme", "member", json!({})).await;
    let other = a.key("globex", "member", json!({})).await;
    assert_eq!(send(&a, &key, &ask("cached"), &[]).await.1, "miss");
    assert_eq!(send(&b, &key, &ask("cached"), &[]).await.1, "hit", "an entry written by one node answers on the other");
    assert_eq!(send(&b, &other, &ask("cached"), &[]).await.1, "miss");
    assert_eq!(up.request_count(), 2);
}

#[tokio::test]
async fn a_hit_takes_no_provider_slot() {
    let (s, up) = setup().await;
    let key = s.key("acme", "member", json!({})).await;
    assert_eq!(send(&s, &key, &ask("narrow_cached"), &[]).await.1, "miss");
    // A slow stream holds the provider's only slot...
    up.push([Fault::ChunkDelay(Duration::from_millis(200))]);
    let mut body = json!({"model": "narrow", "stream": true, "messages": [{"role": "user", "content": "Go slowly"}]});
    let mut slow = s.send_chat(&key, &body).await;
    assert!(slow.chunk().await.unwrap().is_some());
    // ...so an uncached call cannot get one, while the cached answer needs none.
    let (status, cache, c) = send(&s, &key, &ask("narrow_cached"), &[]).await;
    assert_eq!((status, cache.as_str(), text(&c)), (200, "hit", "Hello from the stand-in."));
    body["messages"] = json!([{"role": "user", "content": "Me too"}]);
    let (status, _) = s.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(status, 504, "the slot was held all along");
    while slow.chunk().await.unwrap().is_some() {}
    assert_eq!(up.request_count(), 2);
}
