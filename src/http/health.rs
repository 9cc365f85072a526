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
        if store.writes_failing() {
            // An empty write succeeds on a full disk; after a failure only a real one tells.
            let now = crate::store::now_rfc3339();
            store.write(move |c| crate::store::meta::set(c, crate::store::meta::READY_PROBE, &now)).await
        } else {
            store.write(|_| -> crate::store::StoreResult<()> { Ok(()) }).await
        }
    };
    match tokio::time::timeout(READY_DEADLINE, check).await {
        Ok(Ok(())) => Ok(super::success("message", "ready")),
        Ok(Err(crate::store::StoreError::Full)) => {
            Err(ApiError::Unavailable { message: "the disk is full: changes cannot be saved".into(), retry_after: 30 })
        }
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
