//! The organization's resources (API.md §7–§9): deployments, apps and subscriptions. Handlers
//! call these functions; these check permissions, seal secrets and call the store.

pub mod apps;
pub mod builds;
pub mod deployments;
pub mod subscriptions;
pub mod traces;
pub mod transfers;
pub mod uploads;

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::sealing::Sealer;
use crate::domain::origins::Origin;
use crate::store::deployments::Deployment;
use crate::store::Store;
use crate::tasks::Queue;

pub struct Resources {
    pub store: Store,
    pub sealer: Arc<Sealer>,
    /// The state directory; an `fs` origin may not point into it.
    pub state_dir: PathBuf,
    /// Woken after a delete commits together with its prune task.
    pub queue: Queue,
    /// The `origin_roots` setting: where `fs` origins may point (empty: anywhere else).
    pub origin_roots: Vec<PathBuf>,
}

impl Resources {
    /// The sealing context binds a secret to its organization, resource and field.
    pub fn context(kind: &str, org_id: i64, name: &str, field: &str) -> String {
        crate::auth::sealing::context(kind, org_id, name, field)
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
        Ok(Origin::from_stored(&d.origin, secret)?)
    }
}
