//! What every handler can reach through `web::Data<AppState>`; there are no globals.

use std::sync::Arc;

use crate::auth::keyring::Keyring;
use crate::config::Settings;
use crate::http::access_log::AccessLog;
use crate::identity::Identity;
use crate::instance::MaintenanceSwitch;
use crate::metrics::RequestMetrics;
use crate::resources::Resources;
use crate::store::Store;
use crate::tasks::Queue;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub queue: Queue,
    pub maintenance: Arc<MaintenanceSwitch>,
    pub identity: Arc<Identity>,
    pub resources: Arc<Resources>,
    pub access_log: AccessLog,
    /// Request counts and latencies per route template, for `/metrics`.
    pub requests: Arc<RequestMetrics>,
}
