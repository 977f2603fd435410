//! The storage conformance suite: one set of behavioural checks that every backend must pass,
//! plus helpers that give each PostgreSQL test a fresh database of its own.

use std::sync::Arc;

#[path = "conformance_agents.rs"]
mod agents;
#[path = "conformance_audit.rs"]
mod audit;
#[path = "conformance_cache.rs"]
mod cache;
#[path = "conformance_rates.rs"]
mod rates;
#[path = "conformance_runs.rs"]
mod runs;
#[path = "conformance_traces.rs"]
mod traces;

pub use rates::rate_buckets;

use cairn_core::knowledge::{ChangeKind, ChunkRecord, Collection, Document, DocumentKey, DocumentState, PiiMode};
use cairn_core::store::{Store, StoreError, StoreResult};
use cairn_core::tenancy::{ApiKey, KeyLimits, Role, Tenant};
use cairn_core::usage::{CallStatus, NanoUsd, Reservation, ReserveOutcome, Settlement, UsageQuery, UsageRecord};

/// Environment variable naming the PostgreSQL server tests use (a superuser URL).
pub const PG_URL_ENV: &str = "CAIRN_TEST_POSTGRES_URL";

/// Creates an empty database on the test PostgreSQL server and returns its URL.
///
/// Panics with instructions when `CAIRN_TEST_POSTGRES_URL` is unset: the PostgreSQL suite is
/// part of the test suite, and `scripts/test.sh` starts the server and sets the variable.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let base = std::env::var(PG_URL_ENV).unwrap_or_else(|_| {
        panic!("{PG_URL_ENV} is not set: run the suite with scripts/test.sh, which starts PostgreSQL")
    });
    let name = format!("cairn_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database path");
    format!("{prefix}/{name}")
}

fn tenant(id: &str) -> Tenant {
    Tenant { id: id.into(), name: format!("Tenant {id}"), created_at_ms: 1_000 }
}

fn key(id: &str, tenant: &str, role: Role) -> ApiKey {
    ApiKey {
        id: id.into(),
        tenant_id: tenant.into(),
        name: format!("key {id}"),
        role,
        prefix: "sk-cairn-abcd".into(),
        hash: format!("hash-{id}"),
        limits: KeyLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: None,
            monthly_budget_usd: Some(12.5),
            guards: cairn_core::guard::GuardSettings {
                injection: cairn_core::guard::ScreenMode::Block,
                ..Default::default()
            },
        },
        created_at_ms: 2_000,
        revoked_at_ms: None,
    }
}

/// A usage record for tests.
pub fn usage(id: &str, ts_ms: i64, tenant: &str, key: &str, model: &str, cost: f64) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        request_id: format!("req-{id}"),
        ts_ms,
        tenant_id: tenant.into(),
        key_id: key.into(),
        endpoint: "chat".into(),
        model_alias: model.into(),
        provider: "up".into(),
        upstream_model: "m".into(),
        input_tokens: 10,
        output_tokens: 5,
        tokens_estimated: false,
        cost_usd: cost,
        latency_ms: 42,
        ttft_ms: Some(7),
        output_tokens_per_s: Some(100.0),
        retries: 1,
        fallbacks: 0,
        streamed: true,
        status: CallStatus::Ok,
        error: None,
    }
}

/// Runs every check against `store`, which must be empty.
pub async fn run_all(store: Arc<dyn Store>) {
    tenants(&*store).await;
    keys(&*store).await;
    usage_records(&*store).await;
    usage_batches(&*store).await;
    budgets(store.clone()).await;
    knowledge(&*store).await;
    agents::agents(store.clone()).await;
    agents::mcp_servers(store.clone()).await;
    runs::runs(store.clone()).await;
    traces::traces(store.clone()).await;
    traces::racing_writers(store.clone()).await;
    traces::feedback(store.clone()).await;
    cache::response_cache(store.clone()).await;
    cache::semantic_cache(store.clone()).await;
    audit::audit_log(store.clone()).await;
    rates::rate_buckets(store.clone() as Arc<dyn cairn_core::store::RateStore>).await;
    store.ping().await.expect("ping");
}

async fn tenants(s: &dyn Store) {
    s.create_tenant(&tenant("acme")).await.unwrap();
    s.create_tenant(&tenant("globex")).await.unwrap();
    assert!(matches!(s.create_tenant(&tenant("acme")).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_tenant("acme").await.unwrap(), Some(tenant("acme")));
    assert_eq!(s.get_tenant("nope").await.unwrap(), None);
    let ids: Vec<_> = s.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["acme", "globex"]);
    // The first candidate stored wins; rotation replaces it; tenants do not share.
    assert_eq!(s.tenant_secret("acme", "webhook", "one").await.unwrap(), "one");
    assert_eq!(s.tenant_secret("acme", "webhook", "two").await.unwrap(), "one");
    assert_eq!(s.tenant_secret("globex", "webhook", "three").await.unwrap(), "three");
    s.set_tenant_secret("acme", "webhook", "four").await.unwrap();
    assert_eq!(s.tenant_secret("acme", "webhook", "five").await.unwrap(), "four");
}

async fn keys(s: &dyn Store) {
    let k1 = key("k1", "acme", Role::Owner);
    s.insert_key(&k1).await.unwrap();
    s.insert_key(&key("k2", "globex", Role::Member)).await.unwrap();
    assert!(matches!(s.insert_key(&key("k3", "ghost", Role::Member)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.insert_key(&k1).await, Err(StoreError::Conflict(_))));

    assert_eq!(s.find_key_by_hash("hash-k1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.find_key_by_hash("hash-none").await.unwrap(), None);
    assert_eq!(s.list_keys(Some("globex")).await.unwrap().len(), 1);
    assert_eq!(s.list_keys(None).await.unwrap().len(), 2);
    assert_eq!(s.count_active_owner_keys().await.unwrap(), 1);

    let revoked = s.revoke_key("k1", 5_000).await.unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(5_000));
    // Revoking twice keeps the first time.
    assert_eq!(s.revoke_key("k1", 9_000).await.unwrap().revoked_at_ms, Some(5_000));
    assert_eq!(s.count_active_owner_keys().await.unwrap(), 0);
    assert!(matches!(s.revoke_key("ghost", 1).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get_key("k2").await.unwrap().unwrap().limits.monthly_budget_usd, Some(12.5));
}

async fn usage_records(s: &dyn Store) {
    let day = cairn_core::time::DAY_MS;
    let recs = [
        usage("r1", 10 * day + 5, "acme", "k1", "fast", 0.25),
        usage("r2", 10 * day + 9, "acme", "k1", "fast", 0.5),
        usage("r3", 11 * day, "acme", "k1", "fast", 1.0),
        usage("r4", 10 * day, "globex", "k2", "fast", 2.0),
        UsageRecord { status: CallStatus::Cut, ttft_ms: None, ..usage("r5", 10 * day + 1, "acme", "k1", "big", 0.0) },
    ];
    let plain: Vec<Settlement> = recs.iter().map(|r| unsettled(r.clone())).collect();
    s.insert_usage(&plain).await.unwrap();
    // Re-inserting the same ids is a no-op, so a retried flush never double-counts.
    s.insert_usage(&plain[..2]).await.unwrap();
    assert_eq!(s.get_usage("r5").await.unwrap(), Some(recs[4].clone()));

    let all = UsageQuery { from_ms: 0, to_ms: 100 * day, ..Default::default() };
    let buckets = s.usage_buckets(&all).await.unwrap();
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    let acme_fast_day10 = &buckets[1];
    assert_eq!(
        (acme_fast_day10.day.as_str(), acme_fast_day10.model.as_str(), acme_fast_day10.requests),
        ("1970-01-11", "fast", 2)
    );
    assert!((acme_fast_day10.cost_usd - 0.75).abs() < 1e-9);
    assert_eq!(acme_fast_day10.input_tokens, 20);
    let big = buckets.iter().find(|b| b.model == "big").unwrap();
    assert_eq!(big.errors, 1);

    let acme = UsageQuery { tenant_id: Some("acme".into()), ..all.clone() };
    assert!(s.usage_buckets(&acme).await.unwrap().iter().all(|b| b.tenant_id == "acme"));
    let window = UsageQuery { from_ms: 11 * day, to_ms: 12 * day, ..all };
    assert_eq!(s.usage_buckets(&window).await.unwrap().len(), 1);
}

/// Batches of every size store the same rows: SQLite writes small ones through another
/// connection than large ones, and splits the largest into several statements.
async fn usage_batches(s: &dyn Store) {
    let day = cairn_core::time::DAY_MS;
    let many: Vec<UsageRecord> = (0..450)
        .map(|i| UsageRecord {
            error: (i % 2 == 0).then(|| format!("failure {i}")),
            ttft_ms: (i % 3 != 0).then_some(i as u64),
            output_tokens_per_s: (i % 5 != 0).then_some(i as f64 / 4.0),
            tokens_estimated: i % 2 == 1,
            status: if i % 2 == 0 { CallStatus::Error } else { CallStatus::Ok },
            ..usage(&format!("batch-{i}"), 500 * day + i as i64, "acme", "k-batch", "fast", 0.001 * i as f64)
        })
        .collect();
    for batch in [&many[..1], &many[1..17], &many[17..]] {
        s.insert_usage(&batch.iter().cloned().map(unsettled).collect::<Vec<_>>()).await.unwrap();
    }
    for i in [0, 1, 16, 17, 18, 416, 449] {
        assert_eq!(s.get_usage(&format!("batch-{i}")).await.unwrap().as_ref(), Some(&many[i]), "record {i}");
    }
    let key = UsageQuery { key_id: Some("k-batch".into()), from_ms: 0, to_ms: 1_000 * day, ..Default::default() };
    let stored: u64 = s.usage_buckets(&key).await.unwrap().iter().map(|b| b.requests).sum();
    assert_eq!(stored, 450);
}

/// A record for a key without a budget.
fn unsettled(record: UsageRecord) -> Settlement {
    Settlement { record, reservation_id: None }
}

/// A record settled against reservation `reservation`.
fn settles(record: UsageRecord, reservation: &str) -> Settlement {
    Settlement { record, reservation_id: Some(reservation.into()) }
}

fn reservation(id: &str, key: &str, usd: f64, budget: f64, now_ms: i64) -> Reservation {
    Reservation {
        id: id.into(),
        key_id: key.into(),
        amount: NanoUsd::ceil_usd(usd),
        extra: NanoUsd(0),
        budget: NanoUsd::from_usd(budget),
        month_start_ms: cairn_core::time::month_start_ms(now_ms),
        now_ms,
        expires_at_ms: now_ms + 60_000,
    }
}

async fn reserve_one(s: &dyn Store, r: &Reservation) -> StoreResult<ReserveOutcome> {
    Ok(s.reserve_budgets(std::slice::from_ref(r)).await?.remove(0))
}

fn reserved(usd: f64) -> ReserveOutcome {
    ReserveOutcome::Reserved { granted: NanoUsd::ceil_usd(usd) }
}

async fn budgets(s: Arc<dyn Store>) {
    let now = cairn_core::time::now_ms();
    let month = cairn_core::time::month_start_ms(now);
    // Spend recorded before the key's first reservation counts.
    s.insert_usage(&[unsettled(usage("b0", now - 1, "acme", "kb", "fast", 1.0))]).await.unwrap();
    let r = |id: &str, usd: f64| reservation(id, "kb", usd, 5.0, now);
    assert_eq!(reserve_one(&*s, &r("b1", 2.0)).await.unwrap(), reserved(2.0));
    assert_eq!(reserve_one(&*s, &r("b2", 2.0)).await.unwrap(), reserved(2.0));
    let refused = reserve_one(&*s, &r("b3", 0.5)).await.unwrap();
    let held = NanoUsd::from_usd(4.0);
    assert_eq!(refused, ReserveOutcome::Refused { settled: NanoUsd::from_usd(1.0), held });
    // Settling a call against b1 moves its real cost from the reservation to the spend, in
    // the same transaction; releasing b1 then frees the rest.
    s.insert_usage(&[settles(usage("c-b1", now, "acme", "kb", "fast", 0.25), "b1")]).await.unwrap();
    assert_eq!(s.budget_state("kb", month, now).await.unwrap(), (NanoUsd::from_usd(1.25), NanoUsd::from_usd(3.75)));
    // A retried batch settles nothing twice.
    s.insert_usage(&[settles(usage("c-b1", now, "acme", "kb", "fast", 0.25), "b1")]).await.unwrap();
    s.release_reservations(&["b1".into()]).await.unwrap();
    assert_eq!(s.budget_state("kb", month, now).await.unwrap(), (NanoUsd::from_usd(1.25), NanoUsd::from_usd(2.0)));
    // A call settling against a released reservation still counts as spend.
    s.insert_usage(&[settles(usage("c2-b1", now, "acme", "kb", "fast", 0.25), "b1")]).await.unwrap();
    assert_eq!(s.budget_state("kb", month, now).await.unwrap(), (NanoUsd::from_usd(1.5), NanoUsd::from_usd(2.0)));
    // Decimal amounts add up exactly: 1.5 + 2 + 1.5 is the whole budget.
    assert_eq!(reserve_one(&*s, &r("b4", 1.5)).await.unwrap(), reserved(1.5));
    assert!(matches!(reserve_one(&*s, &r("b5", 0.01)).await.unwrap(), ReserveOutcome::Refused { .. }));
    // Growing by nothing (renewing the expiry) fits even when the budget is fully held.
    assert_eq!(reserve_one(&*s, &r("b4", 0.0)).await.unwrap(), reserved(0.0));
    // Reservations that are never settled or renewed lapse.
    let later = now + 61_000;
    let late = Reservation { now_ms: later, expires_at_ms: later + 60_000, ..r("b6", 3.0) };
    assert_eq!(reserve_one(&*s, &late).await.unwrap(), reserved(3.0));
    assert_eq!(s.budget_state("kb", month, later).await.unwrap().1, NanoUsd::from_usd(3.0));
    // A lapsed reservation grown again starts from nothing.
    let again = Reservation { now_ms: later, expires_at_ms: later + 60_000, ..r("b2", 0.5) };
    assert_eq!(reserve_one(&*s, &again).await.unwrap(), reserved(0.5));
    assert_eq!(s.budget_state("kb", month, later).await.unwrap().1, NanoUsd::from_usd(3.5));

    // Headroom is granted up to half of what is left after the amount: $5 budget, $1 needed,
    // $4 left, so at most $2 of the $10 asked for.
    let greedy = Reservation { extra: NanoUsd::from_usd(10.0), ..reservation("g1", "kg", 1.0, 5.0, now) };
    assert_eq!(reserve_one(&*s, &greedy).await.unwrap(), reserved(3.0));
    let modest = Reservation { extra: NanoUsd::from_usd(0.5), ..reservation("g1", "kg", 0.0, 5.0, now) };
    assert_eq!(reserve_one(&*s, &modest).await.unwrap(), reserved(0.5));
    assert_eq!(s.budget_state("kg", month, now).await.unwrap().1, NanoUsd::from_usd(3.5));

    // Forty concurrent reservations of $0.01 against $0.05: exactly five fit.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { reserve_one(&*s, &reservation(&format!("c{i}"), "kc", 0.01, 0.05, now)).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap(), ReserveOutcome::Reserved { .. }) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);

    // One batch is decided in order, each reservation against those before it; keys apart.
    let batch: Vec<Reservation> =
        (0..7).map(|i| reservation(&format!("d{i}"), if i % 2 == 0 { "kd" } else { "ke" }, 0.01, 0.02, now)).collect();
    let outcomes = s.reserve_budgets(&batch).await.unwrap();
    let admitted: Vec<bool> = outcomes.iter().map(|o| matches!(o, ReserveOutcome::Reserved { .. })).collect();
    assert_eq!(admitted, [true, true, true, true, false, false, false]);
}

fn collection(id: &str, tenant: &str, name: &str) -> Collection {
    Collection {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        embedding_model: "local/minilm".into(),
        dimensions: 3,
        chunk_max_tokens: 200,
        chunk_overlap_tokens: 30,
        pii: PiiMode::Mask,
        pii_exempt: vec!["year".into()],
        created_at_ms: 1,
    }
}

fn document(id: &str, collection: &str, title: &str) -> Document {
    Document {
        id: id.into(),
        collection_id: collection.into(),
        tenant_id: "acme".into(),
        title: title.into(),
        source: Some("docs/a.md".into()),
        metadata: serde_json::json!({"year": 2024, "tags": ["x"]}),
        fingerprint: None,
        state: DocumentState::Pending,
        error: None,
        chunk_count: 0,
        version: 1,
        created_at_ms: 10,
        updated_at_ms: 10,
    }
}

fn doc_key<'a>(collection_id: &'a str, id: &'a str, version: i64) -> DocumentKey<'a> {
    DocumentKey { collection_id, id, version }
}

fn chunk(seq: u32, text: &str) -> ChunkRecord {
    ChunkRecord {
        id: 0,
        document_id: String::new(),
        collection_id: String::new(),
        seq,
        text: text.into(),
        start: seq * 10,
        end: seq * 10 + 9,
        headings: vec!["Guide".into(), format!("Part {seq}")],
        embedding: vec![seq as f32, 0.5, -1.0],
        terms: Vec::new(),
    }
}

async fn knowledge(s: &dyn Store) {
    assert_eq!(s.latest_change().await.unwrap(), 0);
    s.create_collection(&collection("col_1", "acme", "docs")).await.unwrap();
    assert!(matches!(s.create_collection(&collection("col_2", "acme", "docs")).await, Err(StoreError::Conflict(_))));
    s.create_collection(&collection("col_3", "globex", "docs")).await.unwrap();
    assert_eq!(s.get_collection("col_1").await.unwrap(), Some(collection("col_1", "acme", "docs")));
    assert_eq!(s.list_collections(Some("globex")).await.unwrap().len(), 1);
    assert_eq!(s.list_collections(None).await.unwrap().len(), 2);

    assert!(matches!(s.put_document(&document("d0", "col_missing", "x")).await, Err(StoreError::NotFound(_))));
    s.put_document(&document("d1", "col_1", "First")).await.unwrap();
    s.put_document(&document("d2", "col_1", "Second")).await.unwrap();
    assert_eq!(s.get_document("col_1", "d1").await.unwrap(), Some(document("d1", "col_1", "First")));
    let page = s.list_documents("col_1", None, Some("d1"), 10).await.unwrap();
    assert_eq!(page.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d2"]);
    // Ids are per collection: another collection (here another tenant's) has its own "d1".
    let theirs = Document { tenant_id: "globex".into(), ..document("d1", "col_3", "Theirs") };
    s.put_document(&theirs).await.unwrap();
    assert_eq!(s.get_document("col_3", "d1").await.unwrap().unwrap().title, "Theirs");
    assert_eq!(s.get_document("col_1", "d1").await.unwrap().unwrap().title, "First");
    // A second upload of version 1 (a race) is refused: the first moved the document on.
    assert!(matches!(s.put_document(&document("d1", "col_1", "Racer")).await, Err(StoreError::Conflict(_))));

    // Replacing chunks is atomic and leaves no stale chunk behind.
    let v1 = doc_key("col_1", "d1", 1);
    let ids = s.replace_chunks(&v1, "fp1", &[chunk(0, "a"), chunk(1, "b"), chunk(2, "c")], 20).await.unwrap();
    assert_eq!(ids.len(), 3);
    let d1 = s.get_document("col_1", "d1").await.unwrap().unwrap();
    assert_eq!((d1.state, d1.fingerprint.as_deref(), d1.chunk_count), (DocumentState::Ready, Some("fp1"), 3));
    let stored = s.document_chunks("col_1", "d1").await.unwrap();
    assert_eq!(stored.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        (stored[1].text.as_str(), stored[1].headings.clone(), stored[1].embedding.clone()),
        ("b", vec!["Guide".to_owned(), "Part 1".to_owned()], vec![1.0, 0.5, -1.0])
    );
    assert_eq!((stored[2].collection_id.as_str(), stored[2].start, stored[2].end), ("col_1", 20, 29));
    s.replace_chunks(&v1, "fp2", &[chunk(0, "new a"), chunk(1, "new b")], 30).await.unwrap();
    assert_eq!(
        s.document_chunks("col_1", "d1").await.unwrap().iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["new a", "new b"]
    );
    assert!(s.document_chunks("col_3", "d1").await.unwrap().is_empty(), "the other collection's d1 is untouched");
    let first = s.collection_chunks("col_1", 0, 1).await.unwrap();
    let rest = s.collection_chunks("col_1", first[0].id, 10).await.unwrap();
    assert_eq!(first.len() + rest.len(), 2);

    // A new upload (version 2) keeps the searchable chunks; version 1's job finishing late
    // changes nothing, whether it would replace, mark ready or fail.
    s.put_document(&Document { title: "First v2".into(), version: 2, ..document("d1", "col_1", "x") }).await.unwrap();
    let d1 = s.get_document("col_1", "d1").await.unwrap().unwrap();
    assert_eq!(
        (d1.title.as_str(), d1.chunk_count, d1.fingerprint.as_deref(), d1.version),
        ("First v2", 2, Some("fp2"), 2)
    );
    assert!(matches!(s.replace_chunks(&v1, "old", &[chunk(0, "old")], 35).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.mark_ready(&v1, 35).await, Err(StoreError::Conflict(_))));
    s.fail_document(&v1, "late failure", 35).await.unwrap();
    let d1 = s.get_document("col_1", "d1").await.unwrap().unwrap();
    assert_eq!((d1.state, d1.error.as_deref()), (DocumentState::Pending, None));
    assert_eq!(s.document_chunks("col_1", "d1").await.unwrap()[0].text, "new a");
    let v2 = doc_key("col_1", "d1", 2);
    s.fail_document(&v2, "embedding failed", 40).await.unwrap();
    let d1 = s.get_document("col_1", "d1").await.unwrap().unwrap();
    assert_eq!((d1.state, d1.error.as_deref()), (DocumentState::Failed, Some("embedding failed")));
    assert_eq!(s.document_chunks("col_1", "d1").await.unwrap().len(), 2);
    assert!(matches!(
        s.replace_chunks(&doc_key("col_1", "ghost", 1), "fp", &[], 1).await,
        Err(StoreError::NotFound(_))
    ));
    let logged = s.latest_change().await.unwrap();
    s.mark_ready(&v2, 45).await.unwrap();
    let d1 = s.get_document("col_1", "d1").await.unwrap().unwrap();
    assert_eq!((d1.state, d1.error.as_deref(), d1.chunk_count), (DocumentState::Ready, None, 2));
    assert!(s.latest_change().await.unwrap() > logged, "marking ready is logged for the indexes");
    assert!(matches!(s.mark_ready(&doc_key("col_1", "ghost", 1), 1).await, Err(StoreError::NotFound(_))));

    assert!(s.delete_document("col_1", "d1", 50).await.unwrap());
    assert!(!s.delete_document("col_1", "d1", 51).await.unwrap());
    assert!(s.document_chunks("col_1", "d1").await.unwrap().is_empty());
    assert!(s.get_document("col_3", "d1").await.unwrap().is_some(), "deleting one collection's d1 spares the other");
    s.replace_chunks(&doc_key("col_1", "d2", 1), "fp", &[chunk(0, "z")], 60).await.unwrap();
    assert!(s.delete_collection("col_1", 70).await.unwrap());
    assert!(s.get_collection("col_1").await.unwrap().is_none());
    assert!(s.get_document("col_1", "d2").await.unwrap().is_none());
    assert!(s.collection_chunks("col_1", 0, 10).await.unwrap().is_empty());

    let log = s.changes_since(0, 100).await.unwrap();
    let kinds: Vec<_> = log.iter().map(|c| (c.kind, c.document_id.clone())).collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Document, Some("d1".to_owned())),
            (ChangeKind::Document, Some("d1".to_owned())),
            (ChangeKind::Document, Some("d1".to_owned())),
            (ChangeKind::DocumentDeleted, Some("d1".to_owned())),
            (ChangeKind::Document, Some("d2".to_owned())),
            (ChangeKind::CollectionDeleted, None),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(s.changes_since(log[3].seq, 100).await.unwrap().len(), 2);
    assert_eq!(s.latest_change().await.unwrap(), log[5].seq);
}
