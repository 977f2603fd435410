//! What a chat call hands back besides its content: the stream of events a streamed completion
//! sends to its client, and which target served the call. They live here, not in the gateway,
//! so that services composing chat calls (RAG answers) can speak them through a port.

use futures::Stream;

use super::ChatChunk;

/// One item of the stream sent to the client.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// A `chat.completion.chunk`.
    Chunk(Box<ChatChunk>),
    /// The stream broke after it started: an in-band error event, after which the stream ends.
    Error(String),
    /// A guard stopped the stream (before what it found was sent): an in-band error event
    /// naming the guard, after which the stream ends.
    Refused {
        /// Which guard.
        guard: crate::guard::GuardKind,
        /// What it found.
        message: String,
    },
    /// The end (`data: [DONE]`).
    Done,
}

/// The client-facing stream.
pub type ChatStream = std::pin::Pin<Box<dyn Stream<Item = StreamEvent> + Send>>;

/// Where a call was served, for response headers.
#[derive(Clone, Debug, Default)]
pub struct Routed {
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Retries taken.
    pub retries: u32,
    /// Fallbacks taken.
    pub fallbacks: u32,
    /// What the response cache did (`None` where the call did not pass it).
    pub cache: Option<crate::cache::CacheStatus>,
    /// For a hit found by meaning (the semantic cache), how similar the questions were
    /// (`x-cairn-cache-similarity`).
    pub cache_similarity: Option<f32>,
    /// What the call's guards did (`x-cairn-guards`).
    pub guards: crate::guard::GuardReport,
    /// How a routed alias chose the model (`x-cairn-route`); `None` for other aliases.
    pub route: Option<RouteDecision>,
}

/// How a routed alias chose the model that answered.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteDecision {
    /// Small or large.
    pub size: crate::config::ModelSize,
    /// The alias that answered (usage is recorded under it).
    pub alias: String,
    /// The request's difficulty, 0 to 1.
    pub score: f32,
    /// The request chose the size itself.
    pub forced: bool,
}

impl RouteDecision {
    /// The `x-cairn-route` header: `large; alias=smart; score=0.73` (`; forced` when asked).
    pub fn header(&self) -> String {
        let forced = if self.forced { "; forced" } else { "" };
        format!("{}; alias={}; score={:.2}{forced}", self.size.as_str(), self.alias, self.score)
    }
}
