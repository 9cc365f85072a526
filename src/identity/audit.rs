//! Reading the audit trail: an organization's events for its Administrators, box-wide events
//! for admin-token holders. Events are written where the change happens (same transaction).

use super::principal::Principal;
use super::Identity;
use crate::error::ApiResult;
use crate::store::audit::{self, Entry, Filter};
use crate::store::{Listed, Page, StoreResult};

impl Identity {
    /// `GET /be/v1/audit`: only members of the organization's `Administrators`.
    pub async fn list_audit(&self, caller: &Principal, filter: Filter, page: Page) -> ApiResult<Listed<Entry>> {
        self.require_administrator(caller).await?;
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| audit::list(c, Some(org_id), &filter, &page)).await?)
    }

    /// `GET /adm/v1/audit`: events of no organization (organizations created and deleted).
    pub async fn list_box_audit(&self, filter: Filter, page: Page) -> ApiResult<Listed<Entry>> {
        Ok(self.store.read(move |c| audit::list(c, None, &filter, &page)).await?)
    }

    /// Removes events recorded before `cutoff` (RFC 3339): the `audit_retention` setting.
    pub fn remove_old_audit(&self, cutoff: String) -> StoreResult<usize> {
        self.store.write_blocking(move |c| audit::remove_before(c, &cutoff))
    }
}
