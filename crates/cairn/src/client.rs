//! A small client of Cairn's own HTTP API, for the commands that talk to a running server
//! (`cairn ingest`, `cairn ask`): bearer auth, and non-2xx answers turned into errors that
//! carry the server's message.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::multipart::Form;
use serde_json::Value;

/// Cairn's HTTP API, for one key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// A client of the server at `url`, authenticating with `key`.
    pub fn new(url: &str, key: &str) -> Result<Client> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Client { http, base: url.trim_end_matches('/').to_owned(), key: key.to_owned() })
    }

    /// Sends `req`, failing on a non-2xx answer; returns the response.
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp =
            req.bearer_auth(&self.key).send().await.with_context(|| format!("reaching Cairn at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or("no error message");
            bail!("{status}: {message}");
        }
        Ok(resp)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        Ok(self.send_raw(req).await?.json().await.unwrap_or(Value::Null))
    }

    /// `GET path`, as JSON.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// `POST path` with a JSON body, as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// `POST path` with a multipart body, as JSON.
    pub async fn upload(&self, path: &str, form: Form) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).multipart(form)).await
    }

    /// `GET path`, returning the open response (for event streams).
    pub async fn open(&self, path: &str) -> Result<reqwest::Response> {
        self.send_raw(self.http.get(format!("{}{path}", self.base))).await
    }

    /// `POST path` with a JSON body, returning the open response (for event streams).
    pub async fn stream(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        self.send_raw(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }
}

/// The caller's collection whose id or name is `wanted`, if any.
pub async fn find_collection(client: &Client, wanted: &str) -> Result<Option<Value>> {
    let list = client.get("/v1/collections").await?;
    Ok(list["data"].as_array().into_iter().flatten().find(|c| c["id"] == wanted || c["name"] == wanted).cloned())
}
