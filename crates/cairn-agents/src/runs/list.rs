//! Listing runs: newest first, per tenant, by state (the dashboard's queue of runs waiting for
//! a person), paged by id.

use cairn_core::runs::RunState;
use cairn_core::tenancy::{Principal, Role};
use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{view, RunService, RunView};

/// Most runs in one page.
const MAX_LIMIT: u32 = 100;

/// Query of `GET /v1/runs`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunListRequest {
    /// Only runs in this state (`requires_action`: waiting for an approval or a tool output).
    pub state: Option<RunState>,
    /// Runs per page, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(max_length = 64)]
    pub after: Option<String>,
    /// Tenant (instance owners only; default the caller's own, owners: every tenant).
    pub tenant: Option<String>,
}

/// A page of runs, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunPage {
    /// Always `list`.
    pub object: &'static str,
    /// The runs, each with what it waits on.
    pub data: Vec<RunView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

impl RunService {
    /// Runs the caller may read, newest first.
    pub async fn list(&self, caller: &Principal, q: RunListRequest) -> Result<RunPage> {
        caller.require(Role::Reader)?;
        let tenant = caller.readable_tenant(q.tenant.as_deref())?;
        let limit = q.limit.unwrap_or(20);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid_param("limit", format!("limit must be 1-{MAX_LIMIT}")));
        }
        if q.after.as_ref().is_some_and(|a| a.len() > 64) {
            return Err(Error::invalid_param("after", "after must be the `next` of a previous page"));
        }
        let runs = self.rt.runs.list_runs(tenant.as_deref(), q.state, q.after.as_deref(), limit).await?;
        let next = (runs.len() == limit as usize).then(|| runs.last().map(|r| r.id.clone())).flatten();
        let mut data = Vec::with_capacity(runs.len());
        for run in runs {
            let replay = self.replay(&run).await?;
            data.push(view(run, &replay)?);
        }
        Ok(RunPage { object: "list", data, next })
    }
}
