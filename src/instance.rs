//! Instance-wide state: maintenance mode (durable, checked on every request) and version facts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::store::audit::{self, Actor};
use crate::store::{meta, Store, StoreResult};

/// The maintenance setting as stored and as `POST /srv/v1/maintenance` takes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    pub enabled: bool,
    pub message: String,
    pub retry_after: u64,
}

/// Default `Retry-After` while in maintenance, seconds.
pub const DEFAULT_RETRY_AFTER: u64 = 900;

/// In-memory copy of the maintenance state, so the per-request check is one atomic load.
#[derive(Default)]
pub struct MaintenanceSwitch {
    on: AtomicBool,
    details: RwLock<Maintenance>,
}

impl MaintenanceSwitch {
    /// Loads the stored state (it survives restarts).
    pub fn load(store: &Store) -> StoreResult<Self> {
        let stored = store.read_blocking(|c| meta::get(c, meta::MAINTENANCE))?;
        let state = stored.and_then(|text| serde_json::from_str::<Maintenance>(&text).ok()).unwrap_or_default();
        let switch = MaintenanceSwitch::default();
        switch.replace(state);
        Ok(switch)
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Maintenance {
        self.details.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stores the new state durably, with the box-wide audit event of who switched it, then makes
    /// it visible to requests.
    pub async fn set(&self, store: &Store, state: Maintenance, actor: &Actor) -> StoreResult<()> {
        let text = serde_json::to_string(&state).expect("serializable");
        let actor = actor.clone();
        let event = if state.enabled { audit::MAINTENANCE_ON } else { audit::MAINTENANCE_OFF };
        store
            .write(move |c| {
                meta::set(c, meta::MAINTENANCE, &text)?;
                let event = audit::Event {
                    org_id: None,
                    event,
                    principal: Some(&actor.principal),
                    client: Some(&actor.client),
                    target: None,
                };
                audit::record(c, &event)
            })
            .await?;
        self.replace(state);
        Ok(())
    }

    fn replace(&self, state: Maintenance) {
        let enabled = state.enabled;
        *self.details.write().unwrap_or_else(|p| p.into_inner()) = state;
        self.on.store(enabled, Ordering::Release);
    }
}
