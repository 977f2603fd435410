//! RAG answers: retrieve the chunks relevant to a question, give them to a chat model as
//! numbered, fenced sources, and hand back the answer with citations resolved to chunks and
//! documents. Relevance is judged by cosine similarity to the question, an absolute measure
//! (fused scores only rank): when no chunk reaches `min_similarity` the service answers
//! `rag::NOT_FOUND` itself and never asks the model, which would otherwise invent an answer.
//! Generation goes through the `ChatModel` port on the caller's key, so budgets and usage apply.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::config::KnowledgeConfig;
use cairn_core::openai::{ChatMessage, ChatRequest, ChatRole, Routed, StreamEvent, StreamOptions, Usage, UsageField};

use crate::retrieve::SearchMode;
use cairn_core::{CallContext, Error, Result};
use cairn_guard::InjectionScreen;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::analyze::Analyzer;
use crate::generate::ChatModel;
use crate::rag::{build_prompt, citations, infer_citations, Citation, RagPrompt, Source, NOT_FOUND};
use crate::service::{KnowledgeService, SearchRequest};
use crate::traced;

/// A question for `POST /v1/collections/{id}/answer`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The question (at most 8,192 characters).
    #[schema(min_length = 1, max_length = 8192, pattern = "[^\\s\\u0085]")]
    pub question: String,
    /// Chat model that writes the answer (default `knowledge.answer_model`).
    #[serde(default)]
    pub model: Option<String>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Output-token cap (default `knowledge.answer_max_tokens`).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0-2 (default 0: the most likely answer).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Sources to give the model, 1-20 (default `knowledge.answer_top_k`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<usize>,
    /// Retrieval mode: `keyword`, `vector` or `hybrid` (default).
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// A metadata filter (see the filter language).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// More collections to draw on (at most 9).
    #[serde(default)]
    #[schema(max_items = 9)]
    pub also: Vec<String>,
    /// Least cosine similarity for a chunk to count as relevant (default
    /// `knowledge.min_similarity`).
    #[serde(default)]
    #[schema(minimum = -1, maximum = 1)]
    pub min_similarity: Option<f32>,
}

impl AnswerRequest {
    fn retrieval(&self) -> Retrieval {
        Retrieval {
            top_k: self.top_k,
            mode: self.mode,
            filter: self.filter.clone(),
            also: self.also.clone(),
            min_similarity: self.min_similarity,
        }
    }
}

/// How sources are retrieved for an answer.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrieval {
    /// Sources to give the model, 1-20 (default `knowledge.answer_top_k`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<usize>,
    /// `keyword`, `vector` or `hybrid` (default).
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// A metadata filter (see the filter language).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// More collections to draw on (at most 9).
    #[serde(default)]
    #[schema(max_items = 9)]
    pub also: Vec<String>,
    /// Least cosine similarity for a chunk to count as relevant (default
    /// `knowledge.min_similarity`); keyword mode has no similarity and keeps every match.
    #[serde(default)]
    #[schema(minimum = -1, maximum = 1)]
    pub min_similarity: Option<f32>,
}

/// A retrieved chunk given to the model as source `n`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnswerSource {
    /// Its number in the prompt, from 1.
    pub n: usize,
    /// The chunk.
    pub chunk_id: u64,
    /// Its collection.
    pub collection_id: String,
    /// Its document.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// Retrieval score in the chosen mode.
    pub score: f32,
    /// Cosine similarity to the question.
    pub similarity: Option<f32>,
    /// The text given to the model.
    pub text: String,
    /// Rules of the injection screen this text tripped: it was fenced and labelled as data.
    pub flagged: Vec<String>,
}

/// A finished answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Answer {
    /// `ans_...`: send feedback on this answer to `/v1/answers/{id}/feedback`.
    pub id: String,
    /// Always `knowledge.answer`.
    pub object: &'static str,
    /// The answer text, citing sources as [n].
    pub answer: String,
    /// False when nothing relevant was found (the answer then says so, and no model ran).
    pub found: bool,
    /// The model that wrote it.
    pub model: Option<String>,
    /// The sources the answer cites, in order of first citation; then those Cairn attributed
    /// uncited sentences to (`inferred`).
    pub citations: Vec<Citation>,
    /// Every source given to the model.
    pub sources: Vec<AnswerSource>,
    /// Tokens used, when the model reported them.
    pub usage: Option<Usage>,
}

/// One event of a streamed answer.
#[derive(Clone, Debug)]
pub enum AnswerEvent {
    /// The sources, before any text.
    Sources(Vec<AnswerSource>),
    /// More answer text.
    Delta(String),
    /// The end, with the whole answer and its citations.
    Done(Box<Answer>),
    /// Generation broke after it started; the stream ends.
    Error(String),
}

/// A streamed answer.
pub type AnswerStream = Pin<Box<dyn Stream<Item = AnswerEvent> + Send>>;

/// Sources for a question, and the prompt over them when any is relevant.
pub struct Grounded {
    /// The relevant sources.
    pub sources: Vec<AnswerSource>,
    /// The prompt, or `None` when nothing relevant was found.
    pub prompt: Option<RagPrompt>,
}

/// Answers questions from collections (see the module docs).
pub struct AnswerService {
    knowledge: Arc<KnowledgeService>,
    chat: Arc<dyn ChatModel>,
    screen: InjectionScreen,
    config: KnowledgeConfig,
    pub(crate) decisions: crate::decisions::Decisions,
}

impl AnswerService {
    /// A service retrieving through `knowledge` and generating through `chat`.
    pub fn new(knowledge: Arc<KnowledgeService>, chat: Arc<dyn ChatModel>, config: KnowledgeConfig) -> Self {
        Self { knowledge, chat, screen: InjectionScreen::new(), config, decisions: Default::default() }
    }

    /// The same service recording every answer a model gives in the audit log.
    pub fn with_decisions(mut self, decisions: crate::decisions::Decisions) -> Self {
        self.decisions = decisions;
        self
    }

    pub(crate) fn chat_model(&self) -> &dyn ChatModel {
        &*self.chat
    }

    /// Retrieves the relevant sources for `question` and builds the prompt over them.
    pub async fn ground(
        &self,
        ctx: &CallContext,
        collection_id: &str,
        question: &str,
        r: Retrieval,
    ) -> Result<Grounded> {
        let top_k = r.top_k.unwrap_or(self.config.answer_top_k);
        if !(1..=20).contains(&top_k) {
            return Err(Error::invalid_param("top_k", "top_k must be between 1 and 20"));
        }
        let min = r.min_similarity.unwrap_or(self.config.min_similarity);
        if !(-1.0..=1.0).contains(&min) {
            return Err(Error::invalid_param("min_similarity", "min_similarity must be between -1 and 1"));
        }
        let search = SearchRequest {
            query: question.to_owned(),
            mode: r.mode,
            top_k: Some(top_k),
            filter: r.filter,
            also: r.also,
        };
        let hits = self.knowledge.search(ctx, collection_id, search).await?;
        let relevant: Vec<_> = hits.into_iter().filter(|h| h.similarity.is_none_or(|s| s >= min)).collect();
        let rag_sources: Vec<Source> = relevant
            .iter()
            .map(|h| Source {
                chunk_id: h.chunk_id,
                collection_id: h.collection_id.clone(),
                document_id: h.document_id.clone(),
                title: (!h.title.is_empty()).then(|| h.title.clone()),
                text: h.text.clone(),
            })
            .collect();
        let prompt = (!rag_sources.is_empty()).then(|| build_prompt(question, &rag_sources, &self.screen));
        let sources = relevant
            .into_iter()
            .enumerate()
            .map(|(i, h)| AnswerSource {
                n: i + 1,
                flagged: prompt
                    .iter()
                    .flat_map(|p| &p.flagged)
                    .filter(|(n, _)| *n == i + 1)
                    .map(|(_, f)| f.rule.to_owned())
                    .collect(),
                chunk_id: h.chunk_id,
                collection_id: h.collection_id,
                document_id: h.document_id,
                title: h.title,
                score: h.score,
                similarity: h.similarity,
                text: h.text,
            })
            .collect();
        Ok(Grounded { sources, prompt })
    }

    /// The chat request that asks `model` to answer from `prompt`.
    fn request(&self, req: &AnswerRequest, prompt: &RagPrompt, stream: bool) -> ChatRequest {
        ChatRequest {
            model: req.model.clone().unwrap_or_else(|| self.config.answer_model.clone()),
            messages: vec![
                ChatMessage::text(ChatRole::System, prompt.system.clone()),
                ChatMessage::text(ChatRole::User, prompt.user.clone()),
            ],
            stream: Some(stream),
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
            max_tokens: Some(req.max_tokens.unwrap_or(self.config.answer_max_tokens)),
            // Greedy by default: an answer should follow its sources, not wander.
            temperature: Some(req.temperature.unwrap_or(0.0)),
            ..Default::default()
        }
    }

    fn check(req: &AnswerRequest) -> Result<()> {
        if req.question.trim().is_empty() {
            return Err(Error::invalid_param("question", "the question is empty"));
        }
        if req.question.chars().count() > 8192 {
            return Err(Error::invalid_param("question", "the question is longer than 8192 characters"));
        }
        if req.max_tokens == Some(0) {
            return Err(Error::invalid_param("max_tokens", "max_tokens must be positive"));
        }
        // Checked here, before retrieval, so a request is refused the same whether or not
        // any source is found (without sources no model is called).
        if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(Error::invalid_param("temperature", "temperature must be between 0 and 2"));
        }
        Ok(())
    }

    /// Answers `req` from `collection_id` (and `req.retrieval.also`) in one response.
    pub async fn answer(
        &self,
        ctx: &CallContext,
        collection_id: &str,
        req: AnswerRequest,
    ) -> Result<(Answer, Option<Routed>)> {
        Self::check(&req)?;
        let tracer = &self.knowledge.tracer;
        let mut span = traced::answer(tracer, ctx, collection_id);
        let ctx = &ctx.under(&span);
        let grounded = self.ground(ctx, collection_id, &req.question, req.retrieval()).await?;
        let Some(prompt) = &grounded.prompt else {
            let mut answer = not_found(grounded.sources);
            traced::answered(tracer, &mut span, &mut answer);
            return Ok((answer, None));
        };
        let request = self.request(&req, prompt, false);
        let sent = serde_json::to_string(&request.messages).unwrap_or_default();
        let (completion, routed) = self.chat.complete(ctx, request).await?;
        let text = completion.choices.first().map(|c| c.message.text_content()).unwrap_or_default();
        let model = completion.model.clone();
        let mut answer = finish(text, grounded.sources, Some(completion.model), completion.usage);
        traced::answered(tracer, &mut span, &mut answer);
        self.decisions.answered(&ctx.principal, collection_id, &model, &sent, &answer, &answer.id);
        Ok((answer, Some(routed)))
    }

    /// Answers `req` as a stream: the sources, the text as it is generated, then the citations.
    pub async fn answer_stream(
        &self,
        ctx: &CallContext,
        collection_id: &str,
        req: AnswerRequest,
    ) -> Result<(AnswerStream, Option<Routed>)> {
        Self::check(&req)?;
        let tracer = self.knowledge.tracer.clone();
        let mut span = traced::answer(&tracer, ctx, collection_id);
        let ctx = &ctx.under(&span);
        let grounded = self.ground(ctx, collection_id, &req.question, req.retrieval()).await?;
        let head = AnswerEvent::Sources(grounded.sources.clone());
        let Some(prompt) = &grounded.prompt else {
            let mut done = not_found(grounded.sources);
            traced::answered(&tracer, &mut span, &mut done);
            let events = [head, AnswerEvent::Delta(done.answer.clone()), AnswerEvent::Done(Box::new(done))];
            return Ok((Box::pin(futures::stream::iter(events)), None));
        };
        let request = self.request(&req, prompt, true);
        let sent = serde_json::to_string(&request.messages).unwrap_or_default();
        let (chunks, routed) = self.chat.stream(ctx, request).await?;
        let sources = grounded.sources;
        let (decisions, caller, collection) = (self.decisions.clone(), ctx.principal.clone(), collection_id.to_owned());
        let mut text = String::new();
        let mut usage = None;
        let mut model = None;
        let body = chunks.filter_map(move |ev| {
            let out = match ev {
                StreamEvent::Chunk(c) => {
                    model.get_or_insert_with(|| c.model.clone());
                    if let UsageField::Some(u) = c.usage {
                        usage = Some(u);
                    }
                    let delta: String = c.choices.iter().filter_map(|ch| ch.delta.content.as_deref()).collect();
                    text.push_str(&delta);
                    (!delta.is_empty()).then_some(AnswerEvent::Delta(delta))
                }
                StreamEvent::Error(m) | StreamEvent::Refused { message: m, .. } => {
                    span.fail(&m);
                    Some(AnswerEvent::Error(m))
                }
                StreamEvent::Done => {
                    let mut done = finish(std::mem::take(&mut text), sources.clone(), model.take(), usage.take());
                    traced::answered(&tracer, &mut span, &mut done);
                    let by = done.model.clone().unwrap_or_default();
                    decisions.answered(&caller, &collection, &by, &sent, &done, &done.id);
                    Some(AnswerEvent::Done(Box::new(done)))
                }
            };
            futures::future::ready(out)
        });
        Ok((Box::pin(futures::stream::iter([head]).chain(body)), Some(routed)))
    }
}

/// The answer when nothing relevant was found.
pub(crate) fn not_found(sources: Vec<AnswerSource>) -> Answer {
    Answer {
        id: String::new(),
        object: "knowledge.answer",
        answer: NOT_FOUND.to_owned(),
        found: false,
        model: None,
        citations: Vec::new(),
        sources,
        usage: None,
    }
}

/// The answer for generated `text`, with its citations resolved against `sources`.
pub(crate) fn finish(text: String, sources: Vec<AnswerSource>, model: Option<String>, usage: Option<Usage>) -> Answer {
    let rag: Vec<Source> = sources
        .iter()
        .map(|s| Source {
            chunk_id: s.chunk_id,
            collection_id: s.collection_id.clone(),
            document_id: s.document_id.clone(),
            title: (!s.title.is_empty()).then(|| s.title.clone()),
            text: s.text.clone(),
        })
        .collect();
    let mut cited = citations(&text, &rag);
    cited.extend(infer_citations(&text, &rag, &Analyzer::english(), &cited));
    Answer {
        id: String::new(),
        object: "knowledge.answer",
        citations: cited,
        answer: text,
        found: true,
        model,
        sources,
        usage,
    }
}
