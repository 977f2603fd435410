//! The stdio transport: the server is a child process; messages are lines of JSON on its
//! stdin and stdout. A reader task routes responses to the requests waiting for them and
//! answers the server's own requests (`ping`; anything else is "method not found").
//!
//! The child gets a clean environment (only `PATH`, `HOME`, `LANG` and what the operator
//! configured), so no secret of Cairn's own leaks into a tool server, and dies with the
//! transport.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio as Pipe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::{McpError, Transport, MAX_MESSAGE_BYTES};

/// Requests waiting for their responses, by id.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A server run as a child process.
pub struct Stdio {
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    waiting: Waiting,
    closed: Arc<AtomicBool>,
    /// Killed when the transport is dropped.
    _child: Child,
}

impl Stdio {
    /// Starts `command` with `args` and `env` (added to a clean environment).
    pub fn spawn(command: &str, args: &[String], env: &BTreeMap<String, String>) -> Result<Self, McpError> {
        let mut cmd = Command::new(command);
        cmd.args(args).env_clear().stdin(Pipe::piped()).stdout(Pipe::piped()).stderr(Pipe::null());
        for key in ["PATH", "HOME", "LANG"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(env).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| McpError::Unreachable(format!("starting '{command}': {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(McpError::Unreachable("the child's pipes are missing".into()));
        };
        let stdin = Arc::new(tokio::sync::Mutex::new(stdin));
        let waiting: Waiting = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(read_loop(stdout, stdin.clone(), waiting.clone(), closed.clone()));
        Ok(Self { stdin, waiting, closed, _child: child })
    }

    async fn send(&self, message: &Value) -> Result<(), McpError> {
        send(&self.stdin, message).await
    }
}

async fn send(stdin: &tokio::sync::Mutex<ChildStdin>, message: &Value) -> Result<(), McpError> {
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    let mut stdin = stdin.lock().await;
    stdin.write_all(&line).await.map_err(|e| McpError::Unreachable(format!("writing to the server: {e}")))?;
    stdin.flush().await.map_err(|e| McpError::Unreachable(format!("writing to the server: {e}")))
}

/// Reads the server's lines until it closes stdout or breaks the protocol; then every waiting
/// request fails (its sender is dropped).
async fn read_loop(
    stdout: impl AsyncRead + Unpin,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    waiting: Waiting,
    closed: Arc<AtomicBool>,
) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        // One byte over the limit tells an over-long line from one that just fits.
        let read = (&mut reader).take(MAX_MESSAGE_BYTES as u64 + 1).read_until(b'\n', &mut line).await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) if line.len() > MAX_MESSAGE_BYTES => {
                tracing::warn!("an MCP stdio server sent a message over {MAX_MESSAGE_BYTES} bytes; closing it");
                break;
            }
            Ok(_) => {}
        }
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            // Servers may log to stdout by mistake; a line that is not JSON is skipped.
            continue;
        };
        match (message.get("id"), message.get("method")) {
            (Some(id), Some(method)) => {
                let reply = if method == "ping" {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})
                };
                if send(&stdin, &reply).await.is_err() {
                    break;
                }
            }
            (Some(id), None) => {
                let sender = id.as_u64().and_then(|id| waiting.lock().remove(&id));
                if let Some(sender) = sender {
                    let _ = sender.send(message);
                }
            }
            _ => {} // notifications: nothing a tool call needs
        }
    }
    closed.store(true, Ordering::SeqCst);
    waiting.lock().clear();
}

#[async_trait]
impl Transport for Stdio {
    async fn request(&self, id: u64, message: Value) -> Result<Value, McpError> {
        if self.is_closed() {
            return Err(McpError::Unreachable("the server process has exited".into()));
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        // The reader marks the transport closed before it drops the waiters: a waiter added
        // after that is caught here.
        if self.is_closed() {
            self.waiting.lock().remove(&id);
            return Err(McpError::Unreachable("the server process has exited".into()));
        }
        // Dropped with the request (a timeout, a cancelled run): forget the waiter.
        struct Forget<'a>(&'a Waiting, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.lock().remove(&self.1);
            }
        }
        let _forget = Forget(&self.waiting, id);
        self.send(&message).await?;
        rx.await.map_err(|_| McpError::Unreachable("the server process has exited".into()))
    }

    async fn notify(&self, message: Value) -> Result<(), McpError> {
        self.send(&message).await
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}
