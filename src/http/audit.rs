//! The audit trail over HTTP: `GET /be/v1/audit` (the organization's events, Administrators
//! only) and `GET /adm/v1/audit` (box-wide events, admin token); and who the actor of a request
//! is, for the events handlers cause.

use actix_web::{web, HttpRequest, HttpResponse};

use super::client::client_address;
use super::list::{self, Filters, ListSpec};
use super::principal::{Admin, Caller};
use super::views;
use crate::error::ApiResult;
use crate::identity::principal::Principal;
use crate::state::AppState;
use crate::store::audit::{self, Actor, Filter};

pub const AUDIT_LIST: ListSpec = ListSpec {
    sort: audit::SORT,
    fields: &["id", "created", "event", "username", "client", "target"],
    filters: &["event", "username", "createdAfter"],
    choices: &[],
    times: &["createdAfter"],
};

/// An organization member acting from this request's client address.
pub fn member(state: &AppState, caller: &Principal, req: &HttpRequest) -> Actor {
    Actor { principal: format!("{}/{}", caller.org_name, caller.username), client: client(state, req) }
}

/// An admin-token holder (named by the token's `username` claim) acting from this address.
pub fn admin(state: &AppState, admin: &Admin, req: &HttpRequest) -> Actor {
    Actor { principal: format!("admin-token:{}", admin.username), client: client(state, req) }
}

fn client(state: &AppState, req: &HttpRequest) -> String {
    client_address(req, &state.settings.trusted_proxies)
}

/// The list filters (`createdAfter` arrives checked and in the stored time form, see `times`).
fn filter(filters: &Filters) -> Filter {
    Filter {
        event: filters.get("event"),
        username: filters.get("username"),
        created_after: filters.get("createdAfter"),
    }
}

pub async fn org_events(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &AUDIT_LIST,
        |query, page| query.render("audit", &page.items.iter().map(views::audit_entry).collect::<Vec<_>>(), page.total),
        |filters, page| async move {
            let filter = filter(&filters);
            state.identity.list_audit(&caller, filter, page).await
        },
    )
    .await
}

pub async fn box_events(state: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> ApiResult<HttpResponse> {
    list::respond(
        &req,
        &AUDIT_LIST,
        |query, page| query.render("audit", &page.items.iter().map(views::audit_entry).collect::<Vec<_>>(), page.total),
        |filters, page| async move {
            let filter = filter(&filters);
            state.identity.list_box_audit(filter, page).await
        },
    )
    .await
}
