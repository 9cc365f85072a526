//! `/healthz` and `/readyz` for load balancers, systemd and monitoring: no authentication.

use std::time::Duration;

use actix_web::{web, HttpResponse};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long readiness waits for the database before answering 503.
const READY_DEADLINE: Duration = Duration::from_secs(2);

/// Alive: answers without touching the database.
pub async fn healthz() -> HttpResponse {
    super::success("message", "alive")
}

/// Ready: a read and a (no-op) write both get through the database in time.
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let store = state.store.clone();
    let check = async move {
        store.read(crate::store::meta::probe).await?;
        store.write(|_| -> crate::store::StoreResult<()> { Ok(()) }).await
    };
    match tokio::time::timeout(READY_DEADLINE, check).await {
        Ok(Ok(())) => Ok(super::success("message", "ready")),
        Ok(Err(e)) => {
            log::warn!("readiness check failed: {e}");
            Err(not_ready())
        }
        Err(_) => {
            log::warn!("readiness check: the database did not answer within {READY_DEADLINE:?}");
            Err(not_ready())
        }
    }
}

fn not_ready() -> ApiError {
    ApiError::Unavailable { message: "the database is not available".into(), retry_after: 5 }
}
