//! `POST /be/v1/traces`: a launcher's start-up reads of a build (FastStart).

use actix_web::{web, HttpResponse};

use super::body::Json;
use super::principal::Caller;
use super::requests::SubmitTrace;
use crate::engine::startup::Read;
use crate::error::ApiResult;
use crate::state::AppState;

pub use crate::resources::traces::PATH;

pub async fn submit(state: web::Data<AppState>, caller: Caller, body: Json<SubmitTrace>) -> ApiResult<HttpResponse> {
    let body = body.0;
    let reads: Vec<Read> = body
        .reads
        .into_inner()
        .into_iter()
        .map(|r| Read { path: r.path.into_inner(), offset: r.offset.get() as u64, len: r.len.get() as u64 })
        .collect();
    let summary = state.resources.submit_trace(&caller, &body.app_name, body.build_id.get(), reads).await?;
    Ok(super::success("trace", summary))
}
