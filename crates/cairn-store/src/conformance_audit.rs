//! The audit log's part of the conformance suite.

use std::sync::Arc;

use cairn_core::audit::{self, AuditAction, AuditEvent, AuditQuery, GENESIS};
use cairn_core::store::Store;
use serde_json::json;

fn event(tenant: &str, action: AuditAction, target: &str) -> AuditEvent {
    AuditEvent {
        tenant_id: tenant.into(),
        actor: "key_admin".into(),
        action,
        target: target.into(),
        details: json!({"why": "test"}),
    }
}

fn all() -> AuditQuery {
    AuditQuery { limit: 10_000, ..Default::default() }
}

/// One chain however many append at once; listing by tenant, action, time and page.
pub(crate) async fn audit_log(s: Arc<dyn Store>) {
    let first = audit::append(&*s, &event("acme", AuditAction::KeyCreate, "key_1")).await.unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS));
    // Concurrent appenders (a pool of connections on PostgreSQL) still make one chain.
    let appends = (0..24).map(|i| {
        let s = s.clone();
        async move {
            let tenant = if i % 2 == 0 { "acme" } else { "globex" };
            audit::append(&*s, &event(tenant, AuditAction::DocumentDelete, &format!("doc_{i}"))).await.unwrap()
        }
    });
    futures::future::join_all(appends).await;
    let entries = s.audit_list(&all()).await.unwrap();
    assert_eq!(entries.len(), 25);
    let (last, _) = audit::verify((0, GENESIS.into()), &entries).expect("one unbroken chain");
    assert_eq!(last, 25);

    let acme = s.audit_list(&AuditQuery { tenant: Some("acme".into()), ..all() }).await.unwrap();
    assert_eq!(acme.len(), 13);
    assert!(acme.iter().all(|e| e.tenant_id == "acme") && acme.windows(2).all(|w| w[0].seq < w[1].seq));
    let keys = s.audit_list(&AuditQuery { action: Some(AuditAction::KeyCreate), ..all() }).await.unwrap();
    assert_eq!(keys.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["key_1"]);
    let page = s.audit_list(&AuditQuery { after_seq: 20, limit: 3, ..all() }).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [21, 22, 23]);
    let later = s.audit_list(&AuditQuery { from_ms: Some(first.ts_ms + 3_600_000), ..all() }).await.unwrap();
    assert!(later.is_empty());
    let before = s.audit_list(&AuditQuery { to_ms: Some(first.ts_ms), ..all() }).await.unwrap();
    assert!(before.is_empty(), "to_ms is exclusive");
}
