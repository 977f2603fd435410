//! The audit log: an append-only record of who did what, in one hash chain. Each entry holds
//! the SHA-256 of the entry before it and its own hash over its fields and that link, so an
//! entry edited, removed or inserted anywhere in storage breaks the chain at that point, which
//! `cairn audit verify` finds. Entries are appended by the services that act (key and tenant
//! changes, deletions, job replays and purges, cache purges, approvals), after the action.
//! One chain holds every tenant's entries; a tenant lists and exports its own.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::store::StoreResult;
use crate::tenancy::Principal;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The tenant of an owner's action over every tenant (a bulk replay or purge).
pub const EVERY_TENANT: &str = "*";

/// Times an append is tried when another writer took the next place first.
const APPEND_TRIES: u32 = 5;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    /// A tenant was created.
    #[serde(rename = "tenant.create")]
    TenantCreate,
    /// A key was created (its role and limits, budget included, in the details).
    #[serde(rename = "key.create")]
    KeyCreate,
    /// A key was revoked.
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    /// A collection was deleted.
    #[serde(rename = "collection.delete")]
    CollectionDelete,
    /// A document was deleted.
    #[serde(rename = "document.delete")]
    DocumentDelete,
    /// A job was replayed.
    #[serde(rename = "job.retry")]
    JobRetry,
    /// Dead jobs were replayed in bulk.
    #[serde(rename = "jobs.retry_dead")]
    JobsRetryDead,
    /// Finished jobs were purged.
    #[serde(rename = "jobs.purge")]
    JobsPurge,
    /// Cached responses were purged.
    #[serde(rename = "cache.purge")]
    CachePurge,
    /// A person approved or denied an agent's action.
    #[serde(rename = "run.approval")]
    RunApproval,
    /// A model answered from a collection (model, prompt and output hashes, citations).
    #[serde(rename = "ai.decision")]
    AiDecision,
    /// A guard refused a model call (the guard, its finding, the call's id and prompt hash).
    #[serde(rename = "guard.block")]
    GuardBlock,
}

impl AuditAction {
    /// Every action, for parsing.
    pub const ALL: [AuditAction; 12] = [
        AuditAction::TenantCreate,
        AuditAction::KeyCreate,
        AuditAction::KeyRevoke,
        AuditAction::CollectionDelete,
        AuditAction::DocumentDelete,
        AuditAction::JobRetry,
        AuditAction::JobsRetryDead,
        AuditAction::JobsPurge,
        AuditAction::CachePurge,
        AuditAction::RunApproval,
        AuditAction::AiDecision,
        AuditAction::GuardBlock,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::TenantCreate => "tenant.create",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::CollectionDelete => "collection.delete",
            AuditAction::DocumentDelete => "document.delete",
            AuditAction::JobRetry => "job.retry",
            AuditAction::JobsRetryDead => "jobs.retry_dead",
            AuditAction::JobsPurge => "jobs.purge",
            AuditAction::CachePurge => "cache.purge",
            AuditAction::RunApproval => "run.approval",
            AuditAction::AiDecision => "ai.decision",
            AuditAction::GuardBlock => "guard.block",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// An action to record.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    /// The tenant the action concerns.
    pub tenant_id: String,
    /// Who acted: a key id.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// To what (a key, collection, document or job id; a description for bulk actions).
    pub target: String,
    /// Particulars, as a JSON object.
    pub details: serde_json::Value,
}

/// One entry of the chain, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Place in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended, Unix ms.
    pub ts_ms: i64,
    /// The tenant the action concerns.
    pub tenant_id: String,
    /// Who acted (a key id).
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// To what.
    pub target: String,
    /// Particulars: a JSON object, kept as text exactly as hashed (served as JSON).
    #[serde(serialize_with = "as_json")]
    #[schema(value_type = Object)]
    pub details: String,
    /// The hash of the entry before (`GENESIS` for the first).
    pub prev_hash: String,
    /// SHA-256 over this entry's fields and `prev_hash`, hex.
    pub hash: String,
}

/// Writes stored JSON text as JSON (as a string if it does not parse, so nothing is hidden).
fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}

impl AuditEntry {
    /// `event` as the entry at `seq` after `prev_hash`, sealed with its hash.
    pub fn seal(event: &AuditEvent, seq: i64, ts_ms: i64, prev_hash: &str) -> Self {
        let mut e = AuditEntry {
            seq,
            ts_ms,
            tenant_id: event.tenant_id.clone(),
            actor: event.actor.clone(),
            action: event.action,
            target: event.target.clone(),
            details: event.details.to_string(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        e.hash = e.computed_hash();
        e
    }

    /// The hash this entry's fields give (equal to `hash` unless it was tampered with).
    pub fn computed_hash(&self) -> String {
        let mut h = Sha256::new();
        let (seq, ts) = (self.seq.to_string(), self.ts_ms.to_string());
        let fields = [
            self.prev_hash.as_str(),
            &seq,
            &ts,
            &self.tenant_id,
            &self.actor,
            self.action.as_str(),
            &self.target,
            &self.details,
        ];
        // Length-prefixed, so no field can be spelled to run into the next.
        for f in fields {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Where a walk of the chain found it broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first entry that does not fit (or the place where one is missing).
    pub seq: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks `entries` (in order) continue a chain whose last entry was `prev` (`(0, GENESIS)`
/// at the start); returns the new last `(seq, hash)`.
pub fn verify(prev: (i64, String), entries: &[AuditEntry]) -> Result<(i64, String), ChainBreak> {
    let (mut seq, mut hash) = prev;
    for e in entries {
        let broken = |reason: String| Err(ChainBreak { seq: e.seq, reason });
        if e.seq != seq + 1 {
            return Err(ChainBreak {
                seq: seq + 1,
                reason: format!("entry {} is missing (found {} next)", seq + 1, e.seq),
            });
        }
        if e.prev_hash != hash {
            return broken("its prev_hash is not the hash of the entry before it".into());
        }
        if e.computed_hash() != e.hash {
            return broken("its contents do not match its hash (edited)".into());
        }
        (seq, hash) = (e.seq, e.hash.clone());
    }
    Ok((seq, hash))
}

/// Which entries to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditQuery {
    /// Only this tenant's (`None`: every tenant's).
    pub tenant: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Appended at or after this time, Unix ms.
    pub from_ms: Option<i64>,
    /// Appended before this time, Unix ms.
    pub to_ms: Option<i64>,
    /// Only entries after this place in the chain (paging).
    pub after_seq: i64,
    /// At most this many, in chain order.
    pub limit: u32,
}

/// Storage of the audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` after the chain's last entry, in one transaction; fails with a conflict
    /// when another writer took that place first (then try again).
    async fn audit_append_once(&self, event: &AuditEvent, ts_ms: i64) -> StoreResult<AuditEntry>;
    /// Entries matching `q`, in chain order.
    async fn audit_list(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}

/// Appends `event`, trying again when a concurrent writer took the next place first, so the
/// chain never forks.
pub async fn append(store: &dyn AuditStore, event: &AuditEvent) -> StoreResult<AuditEntry> {
    let mut tries = 1;
    loop {
        match store.audit_append_once(event, crate::time::now_ms()).await {
            Err(e) if tries < APPEND_TRIES => {
                tracing::debug!(error = %e, "audit append lost a race; trying again");
                tries += 1;
            }
            done => return done,
        }
    }
}

/// The SHA-256 of `text` in hex: how entries refer to prompts and outputs without holding them.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Records that `caller` did `action` to `target` in `tenant`. The action has happened: a
/// failure to record it is logged, never turned into a failure of the action.
pub async fn record(
    store: &dyn AuditStore,
    caller: &Principal,
    tenant: &str,
    action: AuditAction,
    target: &str,
    details: serde_json::Value,
) {
    let event = AuditEvent {
        tenant_id: tenant.to_owned(),
        actor: caller.key_id.clone(),
        action,
        target: target.to_owned(),
        details,
    };
    if let Err(e) = append(store, &event).await {
        tracing::error!(error = %e, action = action.as_str(), target, "audit entry not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let event = AuditEvent {
                    tenant_id: "acme".into(),
                    actor: "key_1".into(),
                    action: AuditAction::KeyCreate,
                    target: format!("key_{seq}"),
                    details: json!({"role": "member"}),
                };
                let e = AuditEntry::seal(&event, seq, 1_000 + seq, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn a_sound_chain_verifies_and_any_change_breaks_it_where_it_was_made() {
        let entries = chain(5);
        let (seq, head) = verify((0, GENESIS.into()), &entries).expect("sound");
        assert_eq!((seq, head.as_str()), (5, entries[4].hash.as_str()));
        // In pages: a walk can go on from where the last page ended.
        let (seq, head) = verify((0, GENESIS.into()), &entries[..2]).expect("first page");
        assert!(verify((seq, head), &entries[2..]).is_ok());

        let mut edited = entries.clone();
        edited[2].details = json!({"role": "owner"}).to_string();
        assert_eq!(verify((0, GENESIS.into()), &edited).unwrap_err().seq, 3);
        let mut rehashed = edited.clone();
        rehashed[2].hash = rehashed[2].computed_hash();
        assert_eq!(verify((0, GENESIS.into()), &rehashed).unwrap_err().seq, 4, "a re-hashed edit breaks the next link");
        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify((0, GENESIS.into()), &removed).unwrap_err().seq, 2);
    }

    #[test]
    fn actions_round_trip_their_names() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), json!(a.as_str()));
        }
    }
}
