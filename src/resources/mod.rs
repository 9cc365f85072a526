//! The organization's resources (API.md §7–§9): deployments, apps and subscriptions. Handlers
//! call these functions; these check permissions, seal secrets and call the store.

pub mod apps;
pub mod deployments;
pub mod subscriptions;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::auth::sealing::Sealer;
use crate::domain::origins::Origin;
use crate::store::deployments::Deployment;
use crate::store::tasks::NewTask;
use crate::store::Store;

pub struct Resources {
    pub store: Store,
    pub sealer: Arc<Sealer>,
    /// The state directory; an `fs` origin may not point into it.
    pub state_dir: PathBuf,
    /// The `origin_roots` setting: where `fs` origins may point (empty: anywhere else).
    pub origin_roots: Vec<PathBuf>,
}

/// Where published files of one deployment live, for the prune task.
pub fn prune_target(d: &Deployment) -> Value {
    json!({"deployment": d.name, "prefix": d.origin_prefix, "origin": d.origin})
}

/// A background `prune` of an organization's (or one app's) published files: the local depot
/// and the given deployments' origins.
pub fn prune_task(org: &str, app: Option<&str>, targets: Vec<Value>, depot: bool) -> NewTask {
    NewTask {
        kind: crate::tasks::prune::TYPE.into(),
        group: None,
        app_name: app.map(str::to_string),
        build_id: None,
        input: json!({"orgName": org, "appName": app, "targets": targets, "depot": depot}),
        max_attempts: 5,
        run_in_maintenance: false,
    }
}

impl Resources {
    /// The sealing context binds a secret to its organization, resource and field.
    pub fn context(kind: &str, org_id: i64, name: &str, field: &str) -> String {
        format!("{kind}/{org_id}/{name}/{field}")
    }

    /// Opens a deployment's origin with its secret, for merging a PATCH (or publishing).
    pub fn open_origin(&self, org_id: i64, d: &Deployment) -> Result<Origin, crate::error::ApiError> {
        let secret = match &d.origin_secret {
            Some(sealed) => Some(
                self.sealer
                    .open(&Self::context("deployment", org_id, &d.name, "secretAccessKey"), sealed)
                    .map_err(crate::error::ApiError::internal)?,
            ),
            None => None,
        };
        Origin::from_stored(&d.origin, secret)
    }
}
