//! Threads: a tenant's conversations, append-only. Callers add `user` and `assistant`
//! messages; runs will add theirs (tool calls and results included) through the same store.

use std::sync::Arc;

use cairn_core::openai::{ChatMessage, ChatRole};
use cairn_core::runs::{RunStore, Thread, ThreadMessage};
use cairn_core::store::TenantStore;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::time::now_ms;
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Most messages one request adds.
pub const MAX_MESSAGES: usize = 100;
/// Most characters in one message.
pub const MAX_MESSAGE_CHARS: usize = 262_144;
/// Most messages one page lists.
pub const MAX_PAGE: u32 = 1000;

/// Who wrote a message a caller adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Author {
    /// The end user.
    User,
    /// The assistant (a reply written elsewhere, kept for context).
    Assistant,
}

/// A message to add.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// `user` or `assistant`.
    pub role: Author,
    /// The text (1-262,144 characters).
    #[schema(min_length = 1, max_length = 262144)]
    pub content: String,
}

/// Body of `POST /v1/threads`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThread {
    /// Messages to start with (at most 100).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub messages: Vec<NewMessage>,
    /// The caller's own data about the thread (a JSON object, at most 16 KiB).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Tenant to create it for (owners only; default the caller's).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub tenant_id: Option<String>,
}

/// Body of `POST /v1/threads/{id}/messages`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMessages {
    /// The messages, in order (1-100).
    #[schema(min_items = 1, max_items = 100)]
    pub messages: Vec<NewMessage>,
}

/// A thread as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ThreadView {
    /// `thr_...`.
    pub id: String,
    /// Always `thread`.
    pub object: &'static str,
    /// Owner.
    pub tenant_id: String,
    /// The caller's data.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// A message as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MessageView {
    /// Position in the thread, from 1.
    pub seq: u64,
    /// The message, in the chat format.
    pub message: ChatMessage,
    /// The run that wrote it (none for messages a caller added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// A page of a thread's messages, oldest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// Always `list`.
    pub object: &'static str,
    /// The messages.
    pub data: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// Threads for the API.
pub struct ThreadService {
    store: Arc<dyn RunStore>,
    tenants: Arc<dyn TenantStore>,
}

impl ThreadService {
    /// A service over `store` (and `tenants`, for owners acting for another tenant).
    pub fn new(store: Arc<dyn RunStore>, tenants: Arc<dyn TenantStore>) -> Self {
        Self { store, tenants }
    }

    /// Creates a thread, with its first messages if any.
    pub async fn create(&self, caller: &Principal, req: NewThread) -> Result<(ThreadView, Vec<MessageView>)> {
        caller.require(Role::Member)?;
        let tenant_id = caller.acting_tenant_in(req.tenant_id, &*self.tenants).await?;
        let messages = checked(req.messages, true)?;
        let metadata = req.metadata.unwrap_or_else(|| Value::Object(Default::default()));
        if !metadata.is_object() || metadata.to_string().len() > 16_384 {
            return Err(Error::invalid_param("metadata", "metadata is a JSON object of at most 16 KiB"));
        }
        let thread = Thread {
            id: format!("thr_{}", uuid::Uuid::now_v7().simple()),
            tenant_id,
            metadata,
            created_at_ms: now_ms(),
        };
        let added = self.store.create_thread(&thread, &messages).await?;
        Ok((thread_view(thread), added.into_iter().map(message_view).collect()))
    }

    /// Thread `id`.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<ThreadView> {
        Ok(thread_view(self.visible(caller, id).await?))
    }

    /// Adds messages to thread `id`, in order.
    pub async fn add(&self, caller: &Principal, id: &str, req: AddMessages) -> Result<Vec<MessageView>> {
        caller.require(Role::Member)?;
        self.visible(caller, id).await?;
        let messages = checked(req.messages, false)?;
        let added = self.store.append_messages(id, &messages, None, now_ms()).await?;
        Ok(added.into_iter().map(message_view).collect())
    }

    /// Thread `id`'s messages after `after`, oldest first, `limit` (1-1000, default 100) a page.
    pub async fn messages(
        &self,
        caller: &Principal,
        id: &str,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<MessagePage> {
        self.visible(caller, id).await?;
        let limit = limit.unwrap_or(100);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid_param("limit", format!("limit must be between 1 and {MAX_PAGE}")));
        }
        let mut rows = self.store.list_messages(id, after.unwrap_or(0), limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_after = more.then(|| rows.last().map(|m| m.seq)).flatten();
        Ok(MessagePage { object: "list", data: rows.into_iter().map(message_view).collect(), next_after })
    }

    /// Thread `id` if the caller may see it; another tenant's is as good as missing.
    async fn visible(&self, caller: &Principal, id: &str) -> Result<Thread> {
        caller.require(Role::Reader)?;
        match self.store.get_thread(id).await? {
            Some(t) if caller.sees(&t.tenant_id) => Ok(t),
            _ => Err(Error::NotFound(format!("thread '{id}' does not exist"))),
        }
    }
}

/// The messages as chat messages, after checking their count and sizes.
pub(crate) fn checked(messages: Vec<NewMessage>, may_be_empty: bool) -> Result<Vec<ChatMessage>> {
    if messages.len() > MAX_MESSAGES || (!may_be_empty && messages.is_empty()) {
        return Err(Error::invalid_param("messages", format!("send 1 to {MAX_MESSAGES} messages")));
    }
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let n = m.content.chars().count();
            if n == 0 || n > MAX_MESSAGE_CHARS {
                return Err(Error::invalid_param(
                    format!("messages[{i}].content"),
                    format!("a message has 1 to {MAX_MESSAGE_CHARS} characters"),
                ));
            }
            let role = match m.role {
                Author::User => ChatRole::User,
                Author::Assistant => ChatRole::Assistant,
            };
            Ok(ChatMessage::text(role, m.content))
        })
        .collect()
}

fn thread_view(t: Thread) -> ThreadView {
    ThreadView {
        id: t.id,
        object: "thread",
        tenant_id: t.tenant_id,
        metadata: t.metadata,
        created_at_ms: t.created_at_ms,
    }
}

fn message_view(m: ThreadMessage) -> MessageView {
    MessageView { seq: m.seq, message: m.message, run_id: m.run_id, created_at_ms: m.created_at_ms }
}
