//! `cairn audit verify`: walks the whole audit chain in storage, in pages, and names the first
//! entry that does not fit (edited, removed or out of place).

use anyhow::{anyhow, bail, Result};
use cairn_core::audit::{verify, AuditQuery, GENESIS};
use cairn_core::config::Config;

/// Entries read per page.
const PAGE: u32 = 1_000;

/// Verifies the chain; prints its length and head, or fails naming the first broken entry.
pub async fn verify_chain(config: &Config) -> Result<()> {
    let store = cairn::compose::store(config, 2).await.map_err(|e| anyhow!(e))?;
    let mut head = (0i64, GENESIS.to_owned());
    loop {
        let page = store.audit_list(&AuditQuery { after_seq: head.0, limit: PAGE, ..Default::default() }).await?;
        if page.is_empty() {
            break;
        }
        head = match verify(head, &page) {
            Ok(next) => next,
            Err(broken) => bail!("the audit chain is broken at entry {}: {}", broken.seq, broken.reason),
        };
    }
    println!("audit chain intact: {} entries, head {}", head.0, head.1);
    Ok(())
}
