//! A run's event feed: its journal from a point on (each entry once, numbered, so a reader
//! that reconnects with `Last-Event-ID` misses nothing and sees nothing twice), the model's
//! text as it streams on this node, and the end. Journal entries are read from storage, woken
//! by this node's news or, for runs stepped on another node, by a short poll.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::runs::RunStore;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::events::{RunEvent, RunNews};
use crate::runs::{step_view, StepView};

/// How often a feed looks at storage when no news comes (runs stepped on another node).
const POLL: Duration = Duration::from_millis(500);
/// Journal entries read at a time.
const PAGE: u32 = 200;

/// One item of a run's feed.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedItem {
    /// A journal entry.
    Step(StepView),
    /// Model text as it streams (not numbered: the entry that follows holds it whole).
    Delta(String),
    /// The run ended without journaling it (cancelled): its state and why.
    Ended(Value),
}

struct Feed {
    runs: Arc<dyn RunStore>,
    id: String,
    after: u64,
    news: broadcast::Receiver<RunEvent>,
    queue: VecDeque<FeedItem>,
    done: bool,
}

/// The feed of run `id` after entry `after`; the caller checked it may see the run.
pub(crate) fn feed(
    runs: Arc<dyn RunStore>,
    news: broadcast::Receiver<RunEvent>,
    id: String,
    after: u64,
) -> BoxStream<'static, FeedItem> {
    let feed = Feed { runs, id, after, news, queue: VecDeque::new(), done: false };
    futures::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(item) = f.queue.pop_front() {
                return Some((item, f));
            }
            if f.done {
                return None;
            }
            f.fill().await;
        }
    })
    .boxed()
}

impl Feed {
    /// Reads what the journal gained; if nothing, waits for news or the poll.
    async fn fill(&mut self) {
        // Text that streamed before the entries now stored goes out before them.
        loop {
            match self.news.try_recv() {
                Ok(e) if *e.run_id == *self.id => {
                    if let RunNews::Delta(text) = e.news {
                        self.queue.push_back(FeedItem::Delta(text));
                    }
                }
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        let Ok(steps) = self.runs.list_steps(&self.id, self.after, PAGE).await else {
            self.done = true;
            return;
        };
        if !steps.is_empty() {
            for s in steps {
                self.after = s.seq;
                let ended = s.kind == cairn_core::runs::StepKind::Ended;
                self.queue.push_back(FeedItem::Step(step_view(s)));
                if ended {
                    self.done = true;
                }
            }
            return;
        }
        // Nothing new: has the run ended without a journal entry (a cancellation)?
        match self.runs.get_run(&self.id).await {
            Ok(Some(run)) if run.state.is_final() && run.steps <= self.after => {
                self.queue.push_back(FeedItem::Ended(json!({"state": run.state, "reason": run.error})));
                self.done = true;
                return;
            }
            Ok(Some(_)) => {}
            _ => {
                self.done = true;
                return;
            }
        }
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                news = self.news.recv() => match news {
                    Ok(e) if *e.run_id == *self.id => match e.news {
                        RunNews::Delta(text) => {
                            self.queue.push_back(FeedItem::Delta(text));
                            return;
                        }
                        RunNews::Appended(_) => return,
                    },
                    Ok(_) => {}
                    // Fell behind: storage has everything that matters.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// The SSE event name of a journal entry.
pub fn event_name(kind: cairn_core::runs::StepKind) -> &'static str {
    use cairn_core::runs::StepKind as K;
    match kind {
        K::Started => "run.started",
        K::ModelOutput => "step.done",
        K::ToolStarted => "tool.call",
        K::ToolResult => "tool.result",
        K::ActionRequested => "approval.requested",
        K::ActionTaken => "approval.answered",
        K::Summary => "summary",
        K::Recalled => "memory.recalled",
        K::Ended => "run.ended",
    }
}
