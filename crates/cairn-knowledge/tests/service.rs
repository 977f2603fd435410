//! The knowledge service: collections, documents and search for a caller, with roles, tenant
//! separation and bad input answered with clear errors and nothing half-written.

mod support;

use cairn_core::knowledge::DocumentState;
use cairn_core::tenancy::{KeyLimits, Principal, Role};
use cairn_core::Error;
use cairn_knowledge::ingest::INGEST_JOB;
use cairn_knowledge::retrieve::SearchMode;
use cairn_knowledge::service::{CreateCollection, NewDocument, SearchRequest};
use serde_json::json;
use support::{ctx, member, setup};

fn create(name: &str) -> CreateCollection {
    CreateCollection {
        name: name.into(),
        embedding_model: "m".into(),
        chunk_max_tokens: None,
        chunk_overlap_tokens: None,
        pii: None,
        tenant_id: None,
        pii_exempt_fields: Vec::new(),
    }
}

fn doc(id: &str, text: &str, metadata: serde_json::Value) -> NewDocument {
    NewDocument {
        id: Some(id.into()),
        title: Some(format!("Title {id}")),
        source: None,
        text: text.into(),
        metadata: Some(metadata),
    }
}

fn search(query: &str) -> SearchRequest {
    SearchRequest { query: query.into(), mode: None, top_k: None, filter: None, also: vec![] }
}

fn other_tenant() -> Principal {
    Principal { key_id: "k2".into(), tenant_id: "globex".into(), role: Role::Member, limits: KeyLimits::default() }
}

fn param(e: Error) -> String {
    match e {
        Error::InvalidRequest { param, .. } => param.unwrap_or_default(),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn collections_are_created_with_the_model_s_size_and_checked() {
    let s = setup().await;
    let c = s.service.create_collection(&ctx(member()), create("papers")).await.unwrap();
    assert_eq!((c.dimensions, c.chunk_max_tokens, c.chunk_overlap_tokens, c.tenant_id.as_str()), (16, 200, 30, "acme"));
    assert!(matches!(s.service.create_collection(&ctx(member()), create("papers")).await, Err(Error::Conflict(_))));
    assert_eq!(param(s.service.create_collection(&ctx(member()), create("Bad Name")).await.unwrap_err()), "name");
    // An overlap of half the budget or more is lowered to just under half.
    let small = CreateCollection { chunk_max_tokens: Some(20), chunk_overlap_tokens: Some(10), ..create("x") };
    assert_eq!(s.service.create_collection(&ctx(member()), small).await.unwrap().chunk_overlap_tokens, 9);
    let huge = CreateCollection { chunk_overlap_tokens: Some(5000), ..create("x2") };
    assert_eq!(param(s.service.create_collection(&ctx(member()), huge).await.unwrap_err()), "chunk_overlap_tokens");
    *s.embedder.fault.lock() = Some("unknown");
    assert!(matches!(s.service.create_collection(&ctx(member()), create("y")).await, Err(Error::NotFound(_))));
    *s.embedder.fault.lock() = Some("down");
    assert!(matches!(s.service.create_collection(&ctx(member()), create("y")).await, Err(Error::Unavailable { .. })));
    *s.embedder.fault.lock() = None;
    let reader = Principal { role: Role::Reader, ..member() };
    assert!(matches!(s.service.create_collection(&ctx(reader.clone()), create("z")).await, Err(Error::Forbidden(_))));
    let mine: Vec<String> = s.service.collections(&member()).await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(mine, ["docs", "papers", "x"]);
}

#[tokio::test]
async fn documents_are_ingested_and_searched_with_filters() {
    let s = setup().await;
    let c = s.service.create_collection(&ctx(member()), create("papers")).await.unwrap();
    let accepted = s
        .service
        .add_documents(
            &ctx(member()),
            &c.id,
            vec![
                doc("a", "Aspirin reduces fever.", json!({"year": 2019, "kind": "trial"})),
                doc("b", "Aspirin thins the blood and reduces clots.", json!({"year": 2023, "kind": "review"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(accepted.len(), 2);
    assert!(accepted.iter().all(|a| a.document.state == DocumentState::Pending && a.job_id.starts_with("job_")));
    s.worker.run_due(INGEST_JOB).await;
    assert_eq!(s.service.document(&member(), &c.id, "a").await.unwrap().state, DocumentState::Ready);

    let hits = s.service.search(&ctx(member()), &c.id, search("aspirin")).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits[0].title.starts_with("Title "));
    let recent = SearchRequest { filter: Some(json!({"field": "year", "gte": 2020})), ..search("aspirin") };
    let hits = s.service.search(&ctx(member()), &c.id, recent).await.unwrap();
    assert_eq!(hits.iter().map(|h| h.document_id.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(hits[0].metadata["kind"], "review");
    for (req, field) in [
        (SearchRequest { filter: Some(json!({"field": "year", "like": 1})), ..search("x") }, "filter"),
        (SearchRequest { top_k: Some(0), ..search("x") }, "top_k"),
        (search("  "), "query"),
    ] {
        assert_eq!(param(s.service.search(&ctx(member()), &c.id, req).await.unwrap_err()), field);
    }

    s.service.delete_document(&member(), &c.id, "a").await.unwrap();
    let hits = s
        .service
        .search(&ctx(member()), &c.id, SearchRequest { mode: Some(SearchMode::Keyword), ..search("fever") })
        .await
        .unwrap();
    assert!(hits.is_empty(), "no stale hit after a delete");
    s.service.delete_collection(&member(), &c.id).await.unwrap();
    assert!(matches!(s.service.collection(&member(), &c.id).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn a_bad_document_leaves_nothing_behind() {
    let s = setup().await;
    let c = s.service.create_collection(&ctx(member()), create("papers")).await.unwrap();
    let bad = vec![doc("ok", "Fine text.", json!({})), doc("empty", "   ", json!({}))];
    assert_eq!(param(s.service.add_documents(&ctx(member()), &c.id, bad).await.unwrap_err()), "documents[1].text");
    let bad = vec![doc("m", "Text.", json!([1, 2]))];
    assert_eq!(param(s.service.add_documents(&ctx(member()), &c.id, bad).await.unwrap_err()), "documents[0].metadata");
    let huge = vec![doc("h", &"word ".repeat(300_000), json!({}))];
    assert!(matches!(s.service.add_documents(&ctx(member()), &c.id, huge).await, Err(Error::TooLarge(_))));
    assert!(s.store.list_documents(&c.id, None, None, 10).await.unwrap().is_empty(), "nothing was written");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let s = setup().await;
    let c = s.service.create_collection(&ctx(member()), create("papers")).await.unwrap();
    s.service.add_documents(&ctx(member()), &c.id, vec![doc("a", "Aspirin reduces fever.", json!({}))]).await.unwrap();
    s.worker.run_due(INGEST_JOB).await;
    let them = other_tenant();
    assert!(matches!(s.service.collection(&them, &c.id).await, Err(Error::NotFound(_))));
    assert!(matches!(s.service.search(&ctx(them.clone()), &c.id, search("aspirin")).await, Err(Error::NotFound(_))));
    assert!(matches!(
        s.service.add_documents(&ctx(them.clone()), &c.id, vec![doc("x", "t", json!({}))]).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(s.service.document(&them, &c.id, "a").await, Err(Error::NotFound(_))));
    assert!(s.service.collections(&them).await.unwrap().is_empty());
    let theirs = s.service.create_collection(&ctx(them.clone()), create("papers")).await.unwrap();
    let also = SearchRequest { also: vec![c.id.clone()], ..search("aspirin") };
    assert!(
        matches!(s.service.search(&ctx(them.clone()), &theirs.id, also).await, Err(Error::NotFound(_))),
        "not even alongside"
    );
}
