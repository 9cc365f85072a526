//! The request bodies of every endpoint, as typed structs. A struct that deserialized is valid as
//! far as its shape goes: names match their patterns, texts keep within their documented limits,
//! numbers are numbers in range, unknown fields are refused. Rules that need the database (does
//! the role exist?) stay in the services.
//!
//! PATCH bodies use `Option<Option<T>>` where the contract says `null` removes a field: absent is
//! `None` (leave it), `null` is `Some(None)` (remove it).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::origins::{DownloadAuthFields, OriginFields};
use crate::domain::text::{limits, not_null, present, DeploymentName, Email, Items, Name, Text, Within};

/// A list of names (roles, deployments) as the services take them.
pub fn strings<N: std::ops::Deref<Target = str>>(names: Vec<N>) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

pub type Label = Text<{ limits::LABEL }>;
pub type Message = Text<{ limits::MESSAGE }>;
pub type Password = Text<{ limits::PASSWORD }>;
pub type PersonText = Text<{ limits::PERSON }>;

/// `POST /srv/v1/ping`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    pub message: Option<Message>,
}

/// `POST /srv/v1/hello` [compat: both fields required].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub message: Message,
    pub maintenance: bool,
}

/// `POST /srv/v1/maintenance`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMaintenance {
    pub enabled: bool,
    pub message: Option<Message>,
    pub retry_after: Option<Within<1, 86_400>>,
}

/// The first administrator of a new organization.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgAdmin {
    pub username: Option<Name>,
    pub email: Option<Email>,
    pub firstname: Option<PersonText>,
    pub surname: Option<PersonText>,
}

/// `POST /adm/v1/orgs`, `POST /be/v1/orgs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrg {
    pub name: Name,
    pub label: Option<Label>,
    /// Checked by `domain::public_key`; the format tells a client (and the conformance run)
    /// that not every string is a key.
    #[schemars(extend("format" = "rsa-public-key-pem",
        "description" = "an RSA public key of at least 2048 bits in PEM (SPKI or PKCS#1)"))]
    pub public_key: Option<Text<{ limits::PUBLIC_KEY }>>,
    pub admin: Option<NewOrgAdmin>,
}

/// `POST /be/v1/login`: username+password, orgName with a selection token, or all three.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["username", "password"]}, {"required": ["orgName"]}]))]
#[schemars(extend("dependentRequired" = {"username": ["password"], "password": ["username"]}))]
pub struct Login {
    #[serde(default, deserialize_with = "not_null")]
    #[schemars(with = "Text<{ limits::LOGIN_NAME }>")]
    pub username: Option<Text<{ limits::LOGIN_NAME }>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schemars(with = "Password")]
    pub password: Option<Password>,
    #[serde(default, deserialize_with = "not_null")]
    #[schemars(with = "Text<{ limits::LOGIN_NAME }>")]
    pub org_name: Option<Text<{ limits::LOGIN_NAME }>>,
}

/// `POST /be/v1/refresh`: the token is in the header; the body is `{}` [compat], anything else
/// in it is ignored.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Refresh {}

/// `user` or `machine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    User,
    Machine,
}

/// `POST /be/v1/users`. A machine account (`type: machine`, or no type with a label and no
/// e-mail) has no password; a person needs e-mail, first name and surname.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = {"anyOf": [
        {"required": ["type"], "properties": {"type": {"const": "machine"}}},
        {"required": ["label"],
         "properties": {"type": {"type": "null"}, "label": {"type": "string"}, "email": {"type": "null"}}},
    ]},
    "then" = {"properties": {"password": {"type": "null"}}},
    "else" = {"required": ["email", "firstname", "surname"],
              "properties": {"email": {"type": "string"}, "firstname": {"type": "string"}, "surname": {"type": "string"}}},
))]
pub struct CreateUser {
    pub username: Name,
    #[serde(rename = "type")]
    pub kind: Option<AccountType>,
    pub email: Option<Email>,
    pub firstname: Option<PersonText>,
    pub surname: Option<PersonText>,
    pub title: Option<PersonText>,
    pub label: Option<Label>,
    pub roles: Option<Vec<Name>>,
    #[schemars(length(min = 12))]
    pub password: Option<Password>,
}

/// `PATCH /be/v1/users`. `oldPW` and `newPW` go together and are never `null`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("dependentRequired" = {"oldPW": ["newPW"], "newPW": ["oldPW"]}))]
pub struct ChangeUser {
    pub username: Option<Name>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<Email>>,
    #[serde(default, deserialize_with = "present")]
    pub firstname: Option<Option<PersonText>>,
    #[serde(default, deserialize_with = "present")]
    pub surname: Option<Option<PersonText>>,
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<PersonText>>,
    #[serde(default, deserialize_with = "present")]
    pub label: Option<Option<Label>>,
    pub roles: Option<Vec<Name>>,
    #[serde(rename = "oldPW", default, deserialize_with = "not_null")]
    #[schemars(with = "Password")]
    pub old_pw: Option<Password>,
    #[serde(rename = "newPW", default, deserialize_with = "not_null")]
    #[schemars(with = "Password", length(min = 12))]
    pub new_pw: Option<Password>,
    #[serde(rename = "resetCreds")]
    pub reset_creds: Option<bool>,
}

/// `POST /be/v1/apikeys`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub username: Option<Name>,
}

/// `POST /be/v1/roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: Name,
    pub label: Option<Label>,
    /// Resource name → bitmask; checked against the permission table by the domain.
    #[schemars(schema_with = "crate::domain::permissions::request_schema")]
    pub permissions: serde_json::Map<String, Value>,
}

/// `PATCH /be/v1/roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub name: Name,
    pub label: Option<Label>,
    #[serde(default)]
    #[schemars(schema_with = "crate::domain::permissions::optional_request_schema")]
    pub permissions: Option<serde_json::Map<String, Value>>,
}

/// `POST /be/v1/deployments`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeployment {
    pub name: DeploymentName,
    pub label: Option<Label>,
    pub origin_prefix: Option<Text<{ limits::PREFIX }>>,
    pub origin: OriginFields,
    pub download_auth: Option<DownloadAuthFields>,
}

/// `PATCH /be/v1/deployments`: only what is sent changes; `null` removes an optional field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeDeployment {
    pub name: DeploymentName,
    #[serde(default, deserialize_with = "present")]
    pub label: Option<Option<Label>>,
    #[serde(default, deserialize_with = "present")]
    pub origin_prefix: Option<Option<Text<{ limits::PREFIX }>>>,
    /// `null` is refused: a deployment always has an origin.
    #[serde(default, deserialize_with = "present")]
    pub origin: Option<Option<OriginFields>>,
    #[serde(default, deserialize_with = "present")]
    pub download_auth: Option<Option<DownloadAuthFields>>,
}

/// `maxBuilds` bounds [compat].
pub type MaxBuilds = Within<1, 100>;

/// `POST /be/v1/apps`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApp {
    pub name: Name,
    pub label: Label,
    pub max_builds: Option<MaxBuilds>,
    /// Absent, `null` or empty: all of the organization's deployments.
    pub deployments: Option<Vec<DeploymentName>>,
}

/// `PATCH /be/v1/apps`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeApp {
    pub name: Name,
    pub label: Option<Label>,
    pub max_builds: Option<MaxBuilds>,
    /// `null` or `[]`: all of the organization's deployments from now on.
    #[serde(default, deserialize_with = "present")]
    pub deployments: Option<Option<Vec<DeploymentName>>>,
}

/// `webhook` or `slack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionType {
    Webhook,
    Slack,
}

impl SubscriptionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Webhook => "webhook",
            SubscriptionType::Slack => "slack",
        }
    }
}

/// One event a subscription listens to.
#[derive(Clone, Debug, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["dltar", "mkraw", "deploy", "commit", "sync", "mkfast", "prune", "export", "hello"]))]
    pub kind: Text<{ limits::SHORT }>,
    #[schemars(extend("enum" = ["submit", "begin", "end", "error"]))]
    pub event: Text<{ limits::SHORT }>,
}

/// `POST /be/v1/subscriptions`. Slack incoming webhooks are https only.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"type": {"const": "slack"}}},
    "then" = {"properties": {"url": {"pattern": "^https://"}}},
))]
pub struct CreateSubscription {
    pub name: Name,
    #[serde(rename = "type")]
    pub kind: SubscriptionType,
    /// What `resources::subscriptions::validate_url` accepts.
    #[schemars(extend("pattern" = crate::resources::subscriptions::URL_PATTERN))]
    pub url: Text<{ limits::URL }>,
    pub events: Option<Vec<EventFilter>>,
}

/// Where the server downloads a build from: a URL, or a URL with request headers (API.md §8).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BuildUrl {
    Plain(#[schemars(extend("pattern" = crate::resources::subscriptions::URL_PATTERN))] Text<{ limits::URL }>),
    WithHeaders {
        #[schemars(extend("pattern" = crate::resources::subscriptions::URL_PATTERN))]
        url: Text<{ limits::URL }>,
        /// Sent to the build server's host only, never to one a redirect leads to.
        headers: Option<std::collections::BTreeMap<String, Text<{ limits::SECRET }>>>,
    },
}

/// `POST /be/v1/builds`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBuild {
    pub app_name: Name,
    pub build_name: Option<Text<{ limits::SHORT }>>,
    /// Absent: upload mode (a one-time PUT URL).
    pub url: Option<BuildUrl>,
    /// The tar's size in bytes; the import fails when the download differs. At most 2^53: every
    /// such number is exact in JSON (and in a client's double).
    pub size: Option<Within<0, 9_007_199_254_740_992>>,
    /// `false` stages the build: it is processed and published but does not go live until
    /// `POST /be/v1/commit` names it. Default `true`: the import ends by making it current.
    pub commit: Option<bool>,
}

/// `POST /be/v1/commit` [design]: makes a retained, processed build the current one.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Commit {
    pub app_name: Name,
    /// Absent: the newest processed build. An older retained build is a rollback.
    pub build_id: Option<Within<1, 4_294_967_295>>,
}

pub type TaskName = Text<{ limits::SHORT }>;

/// `PATCH /be/v1/tasks`: acknowledge the warnings, or expire a task waiting for an upload or an
/// mkraw that is queued or running (it stops at its next chunk or file).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["ackWarnings"]}, {"required": ["expire"]}]))]
pub struct ChangeTask {
    pub name: TaskName,
    #[schemars(extend("const" = true))]
    pub ack_warnings: Option<bool>,
    #[schemars(extend("const" = true))]
    pub expire: Option<bool>,
}

/// `POST /be/v1/trigger`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", deny_unknown_fields)]
pub enum Trigger {
    /// Re-runs a failed task from its checkpoint.
    #[serde(rename = "retryTask", rename_all = "camelCase")]
    RetryTask { task_name: TaskName },
    /// Builds, publishes and switches to an image of the app's current build ordered by its
    /// start-up traces (task `mkfast`); 409 without traces.
    #[serde(rename = "processTraces", rename_all = "camelCase")]
    ProcessTraces { app_name: Name },
}

/// One read of a start-up trace: `len` bytes at `offset` of the build's file `path`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceRead {
    /// A regular file of the build, as in its image's index.
    pub path: Text<{ limits::PATH }>,
    pub offset: Within<0, 9_007_199_254_740_992>,
    pub len: Within<1, 9_007_199_254_740_992>,
}

/// `POST /be/v1/traces`: what a launcher read while the game started, first access first.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitTrace {
    pub app_name: Name,
    pub build_id: Within<1, 2_147_483_647>,
    pub reads: Items<TraceRead, { crate::resources::traces::MAX_READS }>,
}

// Organization transfers (issue 13) [design].

/// A bundle's passphrase: at least 12 characters (checked by the service), like a password.
pub type Passphrase = Text<{ limits::PASSWORD }>;

/// `POST /be/v1/export`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartExport {
    #[schemars(extend("minLength" = 12))]
    pub passphrase: Passphrase,
    /// Also carry the apps' retained builds (manifests, chunks, published images and patches).
    pub include_builds: Option<bool>,
}

/// `POST /be/v1/import`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartImport {
    #[schemars(extend("minLength" = 12))]
    pub passphrase: Passphrase,
}

/// `POST /adm/v1/commit` ("Commit Export").
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitImport {
    pub import_id: Text<{ limits::SHORT }>,
}
