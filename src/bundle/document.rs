//! The JSON document of a bundle: an organization's rows, by name (ids are the box's own and do
//! not travel). Secret fields hold an encrypted form whose key depends on where the document is:
//! in a bundle, the passphrase's key; in the store and in a staged import, this box's sealing key
//! (base64 of the sealed bytes). Only the service layer converts between the two.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgDocument {
    pub org: OrgRow,
    pub roles: Vec<RoleRow>,
    pub users: Vec<UserRow>,
    pub api_keys: Vec<ApiKeyRow>,
    pub deployments: Vec<DeploymentRow>,
    pub apps: Vec<AppRow>,
    pub subscriptions: Vec<SubscriptionRow>,
    /// Whether the bundle carries the apps' retained builds (their files follow the document).
    #[serde(default)]
    pub include_builds: bool,
    /// When and by whom the bundle was written, for the dry-run report.
    #[serde(default)]
    pub exported: String,
    #[serde(default)]
    pub exported_by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgRow {
    pub name: String,
    pub label: String,
    pub public_key: Option<String>,
    pub created: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRow {
    pub name: String,
    pub label: String,
    pub permissions: Value,
    pub builtin: bool,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRow {
    pub username: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub title: Option<String>,
    pub label: Option<String>,
    /// As stored: `$pbkdf2-sha256$i=…$salt$hash`, never a password.
    pub password_hash: Option<String>,
    pub created: String,
    pub updated: String,
    pub last_login: Option<String>,
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyRow {
    pub id: String,
    pub username: String,
    /// Base64 of the SHA-256 the box keeps; the key itself exists nowhere.
    pub key_hash: String,
    pub created: String,
    pub last_used: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentRow {
    pub name: String,
    pub label: String,
    pub origin_prefix: String,
    pub origin_type: String,
    /// The clear origin fields (never the secret).
    pub origin: Value,
    pub origin_secret: Option<String>,
    pub download_auth_type: Option<String>,
    pub download_auth_key: Option<String>,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppRow {
    pub name: String,
    pub label: String,
    pub max_builds: i64,
    pub i_cur_build: i64,
    pub dxf_name: Option<String>,
    pub last_build: i64,
    pub deployments: Vec<String>,
    pub builds: Vec<BuildRow>,
    pub patches: Vec<PatchRow>,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildRow {
    pub build_id: i64,
    pub name: Option<String>,
    pub size_bytes: i64,
    pub created: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchRow {
    pub from_build_id: i64,
    pub to_build_id: i64,
    pub size_bytes: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionRow {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub events: Value,
    pub secret: String,
    pub created: String,
    pub updated: String,
}

impl OrgDocument {
    /// Drops what only the builds' files make true: without them the apps start empty.
    pub fn without_builds(&mut self) {
        self.include_builds = false;
        for app in &mut self.apps {
            app.builds.clear();
            app.patches.clear();
            app.i_cur_build = 0;
            app.dxf_name = None;
        }
    }
}
