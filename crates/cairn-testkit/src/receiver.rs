//! A webhook receiver for job tests: a real HTTP server that records every delivery, applies
//! each idempotency key's effect once (as a well-behaved receiver does), and can answer the
//! next requests with an error status, hold every answer for a while (so a test can kill a
//! worker while deliveries are in flight), or answer with a body that never ends (so a test
//! can show the caller stops reading).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::Value;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The `idempotency-key` header (the job id).
    pub key: String,
    /// The `x-cairn-job-attempt` header.
    pub attempt: u32,
    /// The JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    /// Effects applied, by idempotency key: how many times each was applied (always 1).
    effects: Mutex<BTreeMap<String, u32>>,
    faults: Mutex<VecDeque<u16>>,
    hold: Mutex<Duration>,
    /// Answer 200 with a body that never ends.
    endless: std::sync::atomic::AtomicBool,
    /// Bytes of endless bodies handed to the connection so far.
    endless_sent: Arc<std::sync::atomic::AtomicU64>,
    changed: tokio::sync::Notify,
}

/// A running webhook receiver.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = Router::new().route("/hook", post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, shared }
    }

    /// The URL to deliver to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next request with `status` (queued; one per request).
    pub fn fail_next(&self, status: u16) {
        self.shared.faults.lock().push_back(status);
    }

    /// Holds every answer this long (after recording the delivery).
    pub fn hold(&self, d: Duration) {
        *self.shared.hold.lock() = d;
    }

    /// Answers every request from now on with 200 and a body that never ends (until the
    /// caller hangs up).
    pub fn answer_without_end(&self) {
        self.shared.endless.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of never-ending bodies the receiver has written so far: what callers read, plus at
    /// most the sockets' buffers.
    pub fn endless_bytes_sent(&self) -> u64 {
        self.shared.endless_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every delivery so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().clone()
    }

    /// Effects applied so far, by key (each applied once, however often it was delivered).
    pub fn effects(&self) -> BTreeMap<String, u32> {
        self.shared.effects.lock().clone()
    }

    /// Waits until at least `n` deliveries arrived (fails after `within`).
    pub async fn wait_for_deliveries(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.shared.changed.notified();
            if self.shared.deliveries.lock().len() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("only {} of {n} deliveries arrived", self.shared.deliveries.lock().len());
            }
        }
    }
}

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let key = header("idempotency-key");
    let attempt = header("x-cairn-job-attempt").parse().unwrap_or(0);
    s.deliveries.lock().push(Delivery { key: key.clone(), attempt, body });
    s.changed.notify_waiters();
    if let Some(status) = s.faults.lock().pop_front() {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    }
    if s.endless.load(std::sync::atomic::Ordering::Relaxed) {
        return crate::standin::endless_body(b'x', s.endless_sent.clone()).into_response();
    }
    let hold = *s.hold.lock();
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    // Applied once per key: a repeated delivery of the same job changes nothing.
    s.effects.lock().entry(key).or_insert(1);
    StatusCode::OK.into_response()
}
