//! The agent store's part of the conformance suite.

use std::sync::Arc;

use cairn_core::agents::Agent;
use cairn_core::store::{Store, StoreError};
use serde_json::json;

fn agent(id: &str, tenant: &str, name: &str) -> Agent {
    Agent {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        version: 1,
        spec: json!({"model": "fast", "instructions": "Be brief."}),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

/// Versions, compare-and-set updates, names per tenant, deletion that keeps versions.
pub(crate) async fn agents(s: Arc<dyn Store>) {
    s.create_agent(&agent("agt_1", "acme", "helper")).await.unwrap();
    s.create_agent(&agent("agt_2", "globex", "helper")).await.unwrap();
    let taken = s.create_agent(&agent("agt_3", "acme", "helper")).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "a live name is unique per tenant: {taken:?}");
    assert!(s.create_agent(&Agent { version: 2, ..agent("agt_4", "acme", "x") }).await.is_err());

    // Updates are compare-and-set on the version: of two racing writers exactly one wins.
    let v2 = json!({"model": "fast", "instructions": "Be thorough."});
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(
                async move { s.update_agent("agt_1", 1, "helper", &json!({"racer": i}), 2_000).await.unwrap() },
            )
        })
        .collect();
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap().is_some());
    }
    assert_eq!(winners, 1, "one update per version");
    let updated = s.update_agent("agt_1", 2, "helper", &v2, 3_000).await.unwrap().unwrap();
    assert_eq!((updated.version, &updated.spec, updated.updated_at_ms), (3, &v2, 3_000));
    assert_eq!(updated.created_at_ms, 1_000);
    assert!(s.update_agent("agt_1", 2, "helper", &v2, 3_000).await.unwrap().is_none(), "stale version");
    assert!(s.update_agent("nope", 1, "helper", &v2, 3_000).await.unwrap().is_none());

    // A rename cannot take another live agent's name.
    s.create_agent(&agent("agt_7", "acme", "other")).await.unwrap();
    let clash = s.update_agent("agt_7", 1, "helper", &v2, 3_500).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(s.update_agent("agt_7", 1, "renamed", &v2, 3_500).await.unwrap().unwrap().name, "renamed");
    assert!(s.delete_agent("agt_7", 3_600).await.unwrap());

    // Every version stays as it was.
    let first = s.get_agent_version("agt_1", 1).await.unwrap().unwrap();
    assert_eq!(first.spec["instructions"], "Be brief.");
    assert_eq!(s.get_agent("agt_1").await.unwrap().unwrap().version, 3);

    // Listing is per tenant, by id, paged.
    s.create_agent(&agent("agt_5", "acme", "second")).await.unwrap();
    let ids = |v: Vec<Agent>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_agents("acme", None, 10).await.unwrap()), ["agt_1", "agt_5"]);
    assert_eq!(ids(s.list_agents("acme", Some("agt_1"), 10).await.unwrap()), ["agt_5"]);
    assert_eq!(ids(s.list_agents("acme", None, 1).await.unwrap()), ["agt_1"]);

    // Deleting hides the agent and frees its name; its versions stay for the runs that used them.
    assert!(s.delete_agent("agt_1", 4_000).await.unwrap());
    assert!(!s.delete_agent("agt_1", 4_000).await.unwrap());
    assert!(s.get_agent("agt_1").await.unwrap().is_none());
    assert!(s.update_agent("agt_1", 3, "helper", &v2, 5_000).await.unwrap().is_none());
    assert!(s.get_agent_version("agt_1", 2).await.unwrap().is_some());
    s.create_agent(&agent("agt_6", "acme", "helper")).await.unwrap();
    assert_eq!(ids(s.list_agents("acme", None, 10).await.unwrap()), ["agt_5", "agt_6"]);
}

/// MCP servers: one name per tenant, tenants apart, headers kept as they were given.
pub(crate) async fn mcp_servers(s: Arc<dyn Store>) {
    use cairn_core::agents::McpServerRecord;
    let server = |tenant: &str, name: &str| McpServerRecord {
        tenant_id: tenant.into(),
        name: name.into(),
        url: "http://127.0.0.1:9/mcp".into(),
        headers: [("Authorization".to_owned(), "Bearer s3cret".to_owned())].into(),
        created_at_ms: 1_000,
    };
    s.create_mcp_server(&server("acme", "tools")).await.unwrap();
    s.create_mcp_server(&server("globex", "tools")).await.unwrap();
    s.create_mcp_server(&server("acme", "more")).await.unwrap();
    let taken = s.create_mcp_server(&server("acme", "tools")).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "a name is unique per tenant: {taken:?}");
    assert_eq!(s.get_mcp_server("acme", "tools").await.unwrap(), Some(server("acme", "tools")));
    let names: Vec<String> = s.list_mcp_servers("acme").await.unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["more", "tools"]);
    assert!(s.delete_mcp_server("acme", "tools").await.unwrap());
    assert!(!s.delete_mcp_server("acme", "tools").await.unwrap());
    assert_eq!(s.get_mcp_server("acme", "tools").await.unwrap(), None);
    assert!(s.get_mcp_server("globex", "tools").await.unwrap().is_some(), "another tenant's server stays");
}
