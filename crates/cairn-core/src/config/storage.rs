//! Where Cairn keeps its state, and how to print that without its password.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Storage settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Folder for embedded state (SQLite database, later indexes and models).
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; empty means SQLite in `data_dir`.
    pub url: String,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("cairn-data"), url: String::new(), max_connections: 16 }
    }
}

impl StorageConfig {
    /// The effective database URL.
    pub fn database_url(&self) -> String {
        if self.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("cairn.db").display())
        } else {
            self.url.clone()
        }
    }

    /// The database URL fit to print or log: any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.database_url())
    }
}

/// `url` with any password replaced by `***`: the user info's (`scheme://user:password@host`)
/// and a `password=` query parameter's (libpq accepts both).
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://cairn:s3cr%40t@db:5432/cairn?sslmode=require",
                "postgres://cairn:***@db:5432/cairn?sslmode=require",
            ),
            ("postgresql://u:p:q@h/db", "postgresql://u:***@h/db"),
            ("postgres://user@host/db", "postgres://user@host/db"),
            ("postgres://host/db?user=u&password=x@y&a=b", "postgres://host/db?user=u&password=***&a=b"),
            ("sqlite://data/cairn.db", "sqlite://data/cairn.db"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url_password(url), shown);
        }
    }
}
