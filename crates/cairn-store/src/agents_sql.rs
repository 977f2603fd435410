//! The agents' queries, written once for SQLite and PostgreSQL. An update is a compare-and-set
//! on the agent's version inside one transaction with the new version's row, so two concurrent
//! updates never both win and no version is ever half-written.

/// Implements `AgentStore` for `$store` (with `pool` and `writer` fields) on `$db`.
macro_rules! impl_agent_store {
    ($store:ty, $db:ty) => {
        #[allow(unused_imports)]
        use $crate::tx::Begin as _;
        use cairn_core::agents::{Agent, AgentStore, AgentVersion};
        use cairn_core::store::{StoreError, StoreResult};
        use sqlx::Row;

        type ARow = <$db as sqlx::Database>::Row;

        fn spec_from(text: &str) -> Result<serde_json::Value, sqlx::Error> {
            serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
        }

        fn agent_from_row(r: &ARow) -> Result<Agent, sqlx::Error> {
            Ok(Agent {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                name: r.try_get("name")?,
                version: r.try_get::<i64, _>("version")? as u32,
                spec: spec_from(&r.try_get::<String, _>("spec")?)?,
                created_at_ms: r.try_get("created_at_ms")?,
                updated_at_ms: r.try_get("updated_at_ms")?,
            })
        }

        /// A live agent with its latest version's definition.
        const AGENT_SELECT: &str = "SELECT a.id, a.tenant_id, a.name, a.version, v.spec, a.created_at_ms, \
             a.updated_at_ms FROM agents a JOIN agent_versions v ON v.agent_id = a.id AND v.version = a.version \
             WHERE a.deleted_at_ms IS NULL";

        #[async_trait::async_trait]
        impl AgentStore for $store {
            async fn create_agent(&self, a: &Agent) -> StoreResult<()> {
                if a.version != 1 {
                    return Err(StoreError::Backend(format!("a new agent starts at version 1, not {}", a.version)));
                }
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                sqlx::query(
                    "INSERT INTO agents (id, tenant_id, name, version, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, 1, $4, $4)",
                )
                .bind(&a.id)
                .bind(&a.tenant_id)
                .bind(&a.name)
                .bind(a.created_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(|e| match $crate::db_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("an agent named '{}' exists", a.name)),
                    other => other,
                })?;
                sqlx::query("INSERT INTO agent_versions (agent_id, version, spec, created_at_ms) VALUES ($1, 1, $2, $3)")
                    .bind(&a.id)
                    .bind(a.spec.to_string())
                    .bind(a.created_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)
            }

            async fn update_agent(
                &self,
                id: &str,
                expected: u32,
                name: &str,
                spec: &serde_json::Value,
                now_ms: i64,
            ) -> StoreResult<Option<Agent>> {
                let mut conn = self.write_conn().await?;
                let mut tx = conn.begin_tx().await.map_err($crate::db_err)?;
                let next = i64::from(expected) + 1;
                let moved = sqlx::query(
                    "UPDATE agents SET version = $2, updated_at_ms = $3, name = $5 \
                     WHERE id = $1 AND version = $4 AND deleted_at_ms IS NULL",
                )
                .bind(id)
                .bind(next)
                .bind(now_ms)
                .bind(i64::from(expected))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| match $crate::db_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("an agent named '{name}' exists")),
                    other => other,
                })?
                .rows_affected();
                if moved == 0 {
                    return Ok(None);
                }
                sqlx::query("INSERT INTO agent_versions (agent_id, version, spec, created_at_ms) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(next)
                    .bind(spec.to_string())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let row = sqlx::query(&format!("{AGENT_SELECT} AND a.id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::db_err)?;
                let agent = agent_from_row(&row).map_err($crate::db_err)?;
                tx.commit().await.map_err($crate::db_err)?;
                Ok(Some(agent))
            }

            async fn get_agent(&self, id: &str) -> StoreResult<Option<Agent>> {
                let row = sqlx::query(&format!("{AGENT_SELECT} AND a.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                row.map(|r| agent_from_row(&r)).transpose().map_err($crate::db_err)
            }

            async fn get_agent_version(&self, id: &str, version: u32) -> StoreResult<Option<AgentVersion>> {
                let row = sqlx::query(
                    "SELECT agent_id, version, spec, created_at_ms FROM agent_versions \
                     WHERE agent_id = $1 AND version = $2",
                )
                .bind(id)
                .bind(i64::from(version))
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::db_err)?;
                row.map(|r| -> Result<AgentVersion, sqlx::Error> {
                    Ok(AgentVersion {
                        agent_id: r.try_get("agent_id")?,
                        version: r.try_get::<i64, _>("version")? as u32,
                        spec: spec_from(&r.try_get::<String, _>("spec")?)?,
                        created_at_ms: r.try_get("created_at_ms")?,
                    })
                })
                .transpose()
                .map_err($crate::db_err)
            }

            async fn list_agents(&self, tenant_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Agent>> {
                let rows = sqlx::query(&format!(
                    "{AGENT_SELECT} AND a.tenant_id = $1 AND ($2 IS NULL OR a.id > $2) ORDER BY a.id LIMIT $3"
                ))
                .bind(tenant_id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::db_err)?;
                rows.iter().map(agent_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn delete_agent(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE agents SET deleted_at_ms = $2 WHERE id = $1 AND deleted_at_ms IS NULL")
                    .bind(id)
                    .bind(now_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err($crate::db_err)?
                    .rows_affected();
                Ok(done > 0)
            }

            async fn create_mcp_server(&self, m: &cairn_core::agents::McpServerRecord) -> StoreResult<()> {
                let headers = serde_json::to_string(&m.headers).map_err(|e| StoreError::Backend(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO mcp_servers (tenant_id, name, url, headers, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&m.tenant_id)
                .bind(&m.name)
                .bind(&m.url)
                .bind(headers)
                .bind(m.created_at_ms)
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err(|e| match $crate::db_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("an MCP server named '{}' exists", m.name)),
                    other => other,
                })?;
                Ok(())
            }

            async fn get_mcp_server(
                &self,
                tenant_id: &str,
                name: &str,
            ) -> StoreResult<Option<cairn_core::agents::McpServerRecord>> {
                let row = sqlx::query(&format!("{MCP_SELECT} WHERE tenant_id = $1 AND name = $2"))
                    .bind(tenant_id)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                row.map(|r| mcp_from_row(&r)).transpose().map_err($crate::db_err)
            }

            async fn list_mcp_servers(&self, tenant_id: &str) -> StoreResult<Vec<cairn_core::agents::McpServerRecord>> {
                let rows = sqlx::query(&format!("{MCP_SELECT} WHERE tenant_id = $1 ORDER BY name LIMIT 1000"))
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::db_err)?;
                rows.iter().map(mcp_from_row).collect::<Result<_, _>>().map_err($crate::db_err)
            }

            async fn delete_mcp_server(&self, tenant_id: &str, name: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM mcp_servers WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant_id)
                    .bind(name)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err($crate::db_err)?
                    .rows_affected();
                Ok(done > 0)
            }
        }

        /// Every column of an MCP server.
        const MCP_SELECT: &str = "SELECT tenant_id, name, url, headers, created_at_ms FROM mcp_servers";

        fn mcp_from_row(r: &ARow) -> Result<cairn_core::agents::McpServerRecord, sqlx::Error> {
            Ok(cairn_core::agents::McpServerRecord {
                tenant_id: r.try_get("tenant_id")?,
                name: r.try_get("name")?,
                url: r.try_get("url")?,
                headers: serde_json::from_str(&r.try_get::<String, _>("headers")?)
                    .map_err(|e| sqlx::Error::Decode(e.into()))?,
                created_at_ms: r.try_get("created_at_ms")?,
            })
        }
    };
}
pub(crate) use impl_agent_store;
