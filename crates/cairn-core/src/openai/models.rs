//! `GET /v1/models` response types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A list of models.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
}

/// One model the caller may use.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Model {
    /// The name to put in `model`.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds (the server's start time: aliases have no creation date).
    pub created: i64,
    /// Always `cairn`.
    pub owned_by: String,
    /// Cairn details: kind and targets.
    pub cairn: ModelInfo,
}

/// Cairn-specific details of a model.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// `chat` or `embedding`.
    pub kind: String,
    /// `provider/model` of each target, in fallback order.
    pub targets: Vec<String>,
}
