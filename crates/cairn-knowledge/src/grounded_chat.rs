//! Knowledge inside `/v1/chat/completions`: a request carrying
//! `"cairn": {"knowledge": {"collections": [...]}}` is answered from those collections. The
//! last user message is the question; a system message with the rules and the fenced sources
//! goes first, and the conversation itself is left as it was. The reply keeps OpenAI's shape, with
//! `cairn.citations` and `cairn.sources` added: on the completion, or on one extra chunk (no
//! choices, like the usage chunk) just before `[DONE]`. With nothing relevant the reply says so
//! without a model call, as `/answer` does.

use cairn_core::openai::{
    ChatChunk, ChatCompletion, ChatMessage, ChatRequest, ChatRole, ChatStream, Choice, ChunkChoice, Delta, Extra,
    Routed, StreamEvent, UsageField,
};

use cairn_core::time::now_ms;
use cairn_core::{CallContext, Error, Result};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::answer::{finish, not_found, Answer, AnswerService, Retrieval};

/// The `cairn` field of a chat request.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CairnOptions {
    /// Answer from these collections.
    pub knowledge: Option<KnowledgeOption>,
    /// What this request asks of the response cache (with the `Cache-Control` header).
    pub cache: Option<cairn_core::cache::CacheControl>,
    /// For a routed model: which of its models must answer (else the router decides).
    pub route: Option<cairn_core::config::ModelSize>,
}

/// `cairn.knowledge`: which collections to answer from, and how to retrieve.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeOption {
    /// Collection ids, 1-10; the first is searched with the others as `also`.
    pub collections: Vec<String>,
    /// Sources, 1-20 (default `knowledge.answer_top_k`).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// `keyword`, `vector` or `hybrid` (default).
    #[serde(default)]
    pub mode: Option<crate::retrieve::SearchMode>,
    /// A metadata filter.
    #[serde(default)]
    pub filter: Option<Value>,
    /// Least cosine similarity for a chunk to count as relevant.
    #[serde(default)]
    pub min_similarity: Option<f32>,
}

/// A chat reply: whole, or streamed.
pub enum ChatReply {
    /// A completion.
    Completion(Box<ChatCompletion>, Option<Routed>),
    /// A stream of chunks.
    Stream(ChatStream, Option<Routed>),
}

/// Takes the `cairn` options out of `req` (they are Cairn's, never sent upstream).
pub fn take_options(req: &mut ChatRequest) -> Result<Option<CairnOptions>> {
    let Some(v) = req.extra.remove("cairn") else { return Ok(None) };
    let opts: CairnOptions = serde_json::from_value(v).map_err(|e| Error::invalid_param("cairn", e.to_string()))?;
    Ok(Some(opts))
}

impl AnswerService {
    /// Answers a chat request from the collections `k` names (see the module docs).
    pub async fn chat(&self, ctx: &CallContext, mut req: ChatRequest, k: KnowledgeOption) -> Result<ChatReply> {
        if k.collections.is_empty() || k.collections.len() > 10 {
            return Err(Error::invalid_param("cairn.knowledge.collections", "name between 1 and 10 collections"));
        }
        let Some(last_user) = req.messages.iter().rfind(|m| m.role == ChatRole::User) else {
            return Err(Error::invalid_param("messages", "knowledge needs a user message to answer"));
        };
        let question = last_user.text_content();
        if question.trim().is_empty() {
            return Err(Error::invalid_param("messages", "the last user message has no text"));
        }
        req.validate()?;
        let retrieval = Retrieval {
            top_k: k.top_k,
            mode: k.mode,
            filter: k.filter,
            also: k.collections[1..].to_vec(),
            min_similarity: k.min_similarity,
        };
        let grounded = self.ground(ctx, &k.collections[0], &question, retrieval).await?;
        let stream = req.is_stream();
        let Some(prompt) = grounded.prompt else {
            return Ok(synthesised(&req.model, not_found(grounded.sources), stream));
        };
        req.messages.insert(0, ChatMessage::text(ChatRole::System, prompt.system));
        let sources = grounded.sources;
        let sent = serde_json::to_string(&req.messages).unwrap_or_default();
        let (decisions, caller, collection) = (self.decisions.clone(), ctx.principal.clone(), k.collections[0].clone());
        // The answer is built on these collections: a cached copy goes when any of them changes.
        let mut grounded_ctx = ctx.clone();
        grounded_ctx.knowledge.clone_from(&k.collections);
        let ctx = &grounded_ctx;
        if !stream {
            let (mut completion, routed) = self.chat_model().complete(ctx, req).await?;
            let text = completion.choices.first().map(|c| c.message.text_content()).unwrap_or_default();
            let answer = finish(text, sources, None, None);
            decisions.answered(&caller, &collection, &completion.model, &sent, &answer, &completion.id);
            completion.extra.insert("cairn".into(), cairn_field(&answer));
            return Ok(ChatReply::Completion(Box::new(completion), Some(routed)));
        }
        let (chunks, routed) = self.chat_model().stream(ctx, req).await?;
        let mut text = String::new();
        let mut template: Option<ChatChunk> = None;
        let body = chunks.flat_map(move |ev| {
            let out = match ev {
                StreamEvent::Chunk(c) => {
                    text.extend(c.choices.iter().filter_map(|ch| ch.delta.content.as_deref()));
                    template.get_or_insert_with(|| (*c).clone());
                    vec![StreamEvent::Chunk(c)]
                }
                StreamEvent::Done => {
                    let answer = finish(std::mem::take(&mut text), sources.clone(), None, None);
                    let mut last = template.take().unwrap_or_else(|| empty_chunk("", ""));
                    decisions.answered(&caller, &collection, &last.model, &sent, &answer, &last.id);
                    last.choices.clear();
                    last.usage = UsageField::Absent;
                    last.extra = Extra::from_iter([("cairn".to_owned(), cairn_field(&answer))]);
                    vec![StreamEvent::Chunk(Box::new(last)), StreamEvent::Done]
                }
                other => vec![other],
            };
            futures::stream::iter(out)
        });
        Ok(ChatReply::Stream(Box::pin(body), Some(routed)))
    }
}

/// `cairn.citations` and `cairn.sources` of an answer.
fn cairn_field(a: &Answer) -> Value {
    json!({ "found": a.found, "citations": a.citations, "sources": a.sources })
}

fn empty_chunk(id: &str, model: &str) -> ChatChunk {
    ChatChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk".into(),
        created: now_ms() / 1000,
        model: model.to_owned(),
        choices: Vec::new(),
        usage: UsageField::Absent,
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

/// A reply written by Cairn itself (nothing relevant was found), in the shape asked for.
fn synthesised(model: &str, answer: Answer, stream: bool) -> ChatReply {
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let cairn = cairn_field(&answer);
    if !stream {
        let completion = ChatCompletion {
            id,
            object: "chat.completion".into(),
            created: now_ms() / 1000,
            model: model.to_owned(),
            choices: vec![Choice {
                index: 0,
                message: ChatMessage::text(ChatRole::Assistant, answer.answer),
                finish_reason: Some("stop".into()),
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
            extra: Extra::from_iter([("cairn".to_owned(), cairn)]),
        };
        return ChatReply::Completion(Box::new(completion), None);
    }
    let choice = |delta: Delta, finish: Option<&str>| ChunkChoice {
        index: 0,
        delta,
        finish_reason: finish.map(str::to_owned),
        logprobs: None,
    };
    let mut text = empty_chunk(&id, model);
    text.choices = vec![choice(
        Delta { role: Some(ChatRole::Assistant), content: Some(answer.answer), ..Default::default() },
        None,
    )];
    let mut stop = empty_chunk(&id, model);
    stop.choices = vec![choice(Delta::default(), Some("stop"))];
    let mut tail = empty_chunk(&id, model);
    tail.extra.insert("cairn".into(), cairn);
    let events = [text, stop, tail].map(|c| StreamEvent::Chunk(Box::new(c)));
    ChatReply::Stream(Box::pin(futures::stream::iter(events).chain(futures::stream::iter([StreamEvent::Done]))), None)
}
