//! Where per-key rate limits are kept (`gateway.shared_limits`), and the Redis they may be
//! kept in (`[redis]`).

use serde::{Deserialize, Serialize};

use crate::topology::StateHome;

/// When an answer may leave relative to its call's usage record: the trade PostgreSQL's
/// `synchronous_commit` makes, for accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageCommit {
    /// The answer (a stream's last event) waits until the record is durable: a process killed
    /// right after answering has accounted every call it answered. On SQLite that is one write
    /// to the process's usage journal beside the database (replayed by the next start); on
    /// PostgreSQL, the record's commit.
    #[default]
    BeforeAnswer,
    /// The answer leaves at once and the record is committed within milliseconds (sharing a
    /// transaction with others): a process killed in that window loses those records.
    AfterAnswer,
}

/// Where the requests- and tokens-per-minute buckets live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedLimits {
    /// `database` on PostgreSQL (several nodes share it), `process` on SQLite.
    #[default]
    Auto,
    /// In this process's memory: no storage round trip, but each process enforces the limit
    /// on its own (two nodes admit twice the rate).
    Process,
    /// In the database, one atomic statement per admission: every process on the database
    /// enforces one limit together.
    Database,
    /// In Redis (`redis.url`), one atomic script per admission: every process on that Redis
    /// enforces one limit together, and the database sees no write per request.
    Redis,
}

impl SharedLimits {
    /// Where buckets live, for a store of `backend` (`sqlite`, `postgres`).
    pub fn home(self, backend: &str) -> StateHome {
        match self {
            SharedLimits::Auto if backend == "postgres" => StateHome::Database,
            SharedLimits::Auto | SharedLimits::Process => StateHome::Process,
            SharedLimits::Database => StateHome::Database,
            SharedLimits::Redis => StateHome::Redis,
        }
    }
}

/// A Redis server shared by every node (`[redis]`): used for rate limits when
/// `gateway.shared_limits = "redis"`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS; a password is better
    /// given through `CAIRN_REDIS__URL` than written in the file.
    pub url: String,
    /// For `rediss://`: a PEM file of the certificate authorities to trust instead of the
    /// system's (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Prefix of every key Cairn writes, so that several deployments can share one Redis.
    pub key_prefix: String,
    /// Longest one Redis command may take (connecting included) before the call fails.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: String::new(), ca_file: None, key_prefix: "cairn:".into(), timeout_ms: 1_000 }
    }
}

impl RedisConfig {
    /// The URL fit to print or log: any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        super::redact_url_password(&self.url)
    }

    /// What is wrong with these settings, given where rate limits live.
    pub(crate) fn problems(&self, limits: SharedLimits) -> Vec<String> {
        let mut problems = Vec::new();
        if limits == SharedLimits::Redis && self.url.is_empty() {
            problems.push("gateway.shared_limits = \"redis\" needs redis.url (or CAIRN_REDIS__URL)".into());
        }
        let tls = self.url.starts_with("rediss://");
        if !self.url.is_empty() && !tls && !self.url.starts_with("redis://") {
            problems.push(format!("redis.url must start with redis:// or rediss:// (got '{}')", self.redacted_url()));
        }
        if self.ca_file.is_some() && !tls {
            problems.push("redis.ca_file is for TLS: the URL must start with rediss://".into());
        }
        if self.timeout_ms == 0 {
            problems.push("redis.timeout_ms must be at least 1".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_shares_limits_only_on_postgres() {
        assert_eq!(SharedLimits::Auto.home("postgres"), StateHome::Database);
        assert_eq!(SharedLimits::Auto.home("sqlite"), StateHome::Process);
        assert_eq!(SharedLimits::Redis.home("sqlite"), StateHome::Redis);
    }

    #[test]
    fn redis_limits_need_a_redis_url_and_never_print_its_password() {
        let none = RedisConfig::default();
        assert_eq!(none.problems(SharedLimits::Redis).len(), 1);
        assert!(none.problems(SharedLimits::Database).is_empty());
        let bad = RedisConfig { url: "http://:hunter2@cache:6379".into(), ..RedisConfig::default() };
        let problems = bad.problems(SharedLimits::Redis).join("; ");
        assert!(problems.contains("redis.url must start with") && !problems.contains("hunter2"), "{problems}");
        let plain_with_ca = RedisConfig { url: "redis://cache:6379".into(), ca_file: Some("ca.pem".into()), ..none };
        assert!(plain_with_ca.problems(SharedLimits::Redis).join("; ").contains("rediss://"));
    }
}
