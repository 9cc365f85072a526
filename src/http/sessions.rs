//! `/be/v1/sessions`: seeing and ending login sessions, e.g. a lost laptop's, without resetting
//! the password.

use actix_web::{web, HttpRequest, HttpResponse};

use super::list::{self, ListSpec};
use super::principal::Caller;
use super::views;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store;

pub const SESSIONS_LIST: ListSpec = ListSpec {
    sort: store::sessions::SORT,
    fields: &["sessionId", "username", "created", "refreshed", "client", "expires"],
    filters: &["username"],
    choices: &[],
    times: &[],
};

pub async fn list(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &SESSIONS_LIST,
        |query, page| {
            query.render("sessions", &page.items.iter().map(views::live_session).collect::<Vec<_>>(), page.total)
        },
        |filters, page| state.identity.list_sessions(&caller, filters.get("username"), page),
    )
    .await
}

pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let client = super::client::client_address(&req, &state.settings.trusted_proxies);
    state.identity.end_session(&caller, &id, &client).await?;
    Ok(super::done())
}
