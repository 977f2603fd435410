//! Cairn's HTTP layer: axum routes, the bearer-key extractor, OpenAI-shaped errors, SSE,
//! OpenAPI and the interactive docs. Handlers only translate HTTP to service calls and back.

#![warn(missing_docs)]

mod app;
mod auth;
mod contract;
mod error;
mod json;
mod middleware;
mod openapi;
mod repoll;
mod routes;
mod server;
mod state;
mod strict;
mod ui;

pub use app::App;
pub use error::ApiError;
pub use server::{serve, serve_metrics};
pub use state::AppState;
