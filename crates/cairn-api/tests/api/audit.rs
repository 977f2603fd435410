//! The audit log through the HTTP API: the listed actions are recorded with who did them, in
//! one chain; tenants read only their own entries; the export is the same chain as JSON lines.

use serde_json::{json, Value};

use crate::setup;

fn actions(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn actions_are_recorded_in_one_chain_that_tenants_read_apart() {
    let (s, _up, _) = setup().await;
    let acme_admin = s.key("acme", "admin", json!({"monthly_budget_usd": 25.0})).await;
    let member = s.key("acme", "member", json!({})).await;
    let globex_admin = s.key("globex", "admin", json!({})).await;
    let (_, col) = s.post("/v1/collections", &member, &json!({"name": "notes", "embedding_model": "embed"})).await;
    let col = col["id"].as_str().unwrap().to_owned();
    assert_eq!(s.delete(&format!("/v1/collections/{col}"), &member).await, 204);
    let (status, _) = s.post("/v1/jobs/purge", &acme_admin, &json!({"older_than_secs": 3600})).await;
    assert_eq!(status, 200);
    let resp = s.client.delete(format!("{}/v1/cache", s.base)).bearer_auth(&acme_admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (_, keys) = s.get("/v1/admin/keys", &acme_admin).await;
    let member_id = keys["data"].as_array().unwrap().iter().find(|k| k["role"] == "member").unwrap()["id"].clone();
    let member_id = member_id.as_str().unwrap();
    assert_eq!(s.delete(&format!("/v1/admin/keys/{member_id}"), &acme_admin).await, 200);

    // The owner sees every tenant's entries, in order, chained.
    let (status, all) = s.get("/v1/audit", &s.admin_key).await;
    assert_eq!(status, 200, "{all}");
    let entries = all["data"].as_array().unwrap();
    let mut prev = "0".repeat(64);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1);
        assert_eq!(e["prev_hash"], prev.as_str(), "each entry links to the one before");
        prev = e["hash"].as_str().unwrap().to_owned();
    }
    let acme_page = s.get("/v1/audit?tenant=acme", &s.admin_key).await.1;
    assert_eq!(
        actions(&acme_page),
        ["tenant.create", "key.create", "key.create", "collection.delete", "jobs.purge", "cache.purge", "key.revoke"]
    );
    let data = acme_page["data"].as_array().unwrap();
    let budget_key = &data[1];
    assert_eq!(budget_key["details"]["role"], "admin");
    assert_eq!(budget_key["details"]["limits"]["monthly_budget_usd"], 25.0, "budgets are recorded");
    assert!(!budget_key.to_string().contains("sk-cairn-"), "no secret is ever recorded");
    assert_eq!(data[3]["target"], col.as_str());
    let revoke = &data[6];
    assert_eq!(revoke["target"], member_id);
    assert!(revoke["actor"].as_str().unwrap().starts_with("key_"), "the admin's key id, not the owner's");

    // Tenants read their own only; members not at all.
    let own = s.get("/v1/audit", &acme_admin).await.1;
    assert_eq!(actions(&own), actions(&acme_page));
    assert_eq!(s.get("/v1/audit?tenant=acme", &globex_admin).await.0, 403);
    let globex = s.get("/v1/audit", &globex_admin).await.1;
    assert_eq!(actions(&globex), ["tenant.create", "key.create"]);
    let reader = s.key("acme", "reader", json!({})).await;
    assert_eq!(s.get("/v1/audit", &reader).await.0, 403);
    assert_eq!(s.get("/v1/audit?limit=0", &acme_admin).await.0, 400);
    assert_eq!(s.get("/v1/audit?action=key.launch", &acme_admin).await.0, 400);

    // Filters and pages.
    let revokes = s.get("/v1/audit?action=key.revoke", &acme_admin).await.1;
    assert_eq!(actions(&revokes), ["key.revoke"]);
    let first = s.get("/v1/audit?limit=2", &acme_admin).await.1;
    let after = first["next_after"].as_i64().unwrap();
    let rest = s.get(&format!("/v1/audit?after={after}"), &acme_admin).await.1;
    let now = actions(&s.get("/v1/audit", &acme_admin).await.1);
    assert_eq!(now.len(), actions(&own).len() + 1, "the reader's key since");
    assert_eq!([actions(&first), actions(&rest)].concat(), now);

    // The export is the same entries as JSON lines, page after page.
    let resp =
        s.client.get(format!("{}/v1/audit/export?limit=2", s.base)).bearer_auth(&s.admin_key).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = resp.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let everything = s.get("/v1/audit?limit=1000", &s.admin_key).await.1;
    assert_eq!(lines, everything["data"].as_array().unwrap().clone());
    assert_eq!(lines.len(), entries.len() + 1, "the reader's key since");
    let refused = s
        .client
        .get(format!("{}/v1/audit/export?tenant=acme", s.base))
        .bearer_auth(&globex_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}
