//! Publish targets (API.md §7): a local directory (`fs`) or an S3-compatible bucket (`s3`), an
//! optional CDN download-auth key and an optional prefix. Parsing and validation only.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::text::{limits, Text};
use super::{Checked, Refusal};

/// Where published files go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Fs {
        path: String,
    },
    S3 {
        endpoint: String,
        region: String,
        bucket: String,
        access_key_id: String,
        secret_access_key: String,
        path_style: bool,
    },
}

/// The CDN's download authentication key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadAuth {
    pub kind: String,
    pub key: String,
}

/// Shown in place of every secret.
pub const MASK: &str = "****";

/// The fields of an origin as a request sends them: which ones are needed depends on `type`, and
/// a PATCH may send only some, so all are optional here and [`Origin::from_fields`] checks the whole.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginFields {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["fs", "s3"]))]
    pub kind: Option<Text<{ limits::SHORT }>>,
    pub path: Option<Text<{ limits::PATH }>>,
    pub endpoint: Option<Text<{ limits::SHORT }>>,
    pub region: Option<Text<{ limits::SHORT }>>,
    pub bucket: Option<Text<{ limits::SHORT }>>,
    pub access_key_id: Option<Text<{ limits::SHORT }>>,
    #[serde(skip_serializing)]
    pub secret_access_key: Option<Text<{ limits::SECRET }>>,
    pub path_style: Option<bool>,
}

/// The CDN download-auth key as a request sends it.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadAuthFields {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["akamai", "gcore"]))]
    pub kind: Option<Text<{ limits::SHORT }>>,
    pub key: Option<Text<{ limits::SECRET }>>,
}

/// A PATCH of an object field: a different `type` replaces it whole, else the fields sent
/// replace the current ones one by one (so a secret can be rotated alone).
macro_rules! merge_fields {
    ($patch:expr, $current:expr, $($field:ident),*) => {{
        let (patch, current) = ($patch, $current);
        if patch.kind.as_ref().is_some_and(|k| Some(k) != current.kind.as_ref()) {
            patch
        } else {
            Self { $($field: patch.$field.or(current.$field),)* }
        }
    }};
}

impl OriginFields {
    pub fn merged_onto(self, current: OriginFields) -> OriginFields {
        merge_fields!(self, current, kind, path, endpoint, region, bucket, access_key_id, secret_access_key, path_style)
    }
}

impl DownloadAuthFields {
    pub fn merged_onto(self, current: DownloadAuthFields) -> DownloadAuthFields {
        merge_fields!(self, current, kind, key)
    }
}

/// A field that must be there and not blank, trimmed.
fn text<'a, const N: usize>(value: &'a Option<Text<N>>, param: &str, field: &str) -> Checked<&'a str> {
    match value.as_deref().map(str::trim) {
        None => Err(Refusal::missing(&format!("{param}.{field}"))),
        Some("") => {
            Err(Refusal::invalid(&format!("{param}.{field}"), format!("`{param}.{field}` must be a non-empty string")))
        }
        Some(s) => Ok(s),
    }
}

/// S3 bucket names: 3–63 of lowercase letters, digits, `.` and `-`, starting and ending alphanumeric.
fn valid_bucket(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// An endpoint is a host name (optionally `https://` and a port), without a path and — the
/// compat rule — without the bucket in it.
fn check_endpoint(endpoint: &str, bucket: &str) -> Checked<()> {
    let host = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://")).unwrap_or(endpoint);
    let host_only = host.split(':').next().unwrap_or("");
    let plausible = !host_only.is_empty()
        && !host.contains('/')
        && host_only.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !plausible {
        return Err(Refusal::invalid(
            "origin.endpoint",
            "`origin.endpoint` must be a host name such as s3.us-east-1.amazonaws.com",
        ));
    }
    if host_only.split('.').any(|label| label == bucket) || host_only.starts_with(&format!("{bucket}.")) {
        return Err(Refusal::invalid(
            "origin.endpoint",
            "`origin.endpoint` must not contain the bucket; give it in `origin.bucket`",
        ));
    }
    Ok(())
}

impl Origin {
    pub fn from_fields(fields: &OriginFields) -> Checked<Origin> {
        let f = fields;
        let kind = text(&f.kind, "origin", "type")?;
        // A field of the other type is a mistake, not something to ignore.
        let foreign = match kind {
            "fs" => [
                ("endpoint", f.endpoint.is_some()),
                ("region", f.region.is_some()),
                ("bucket", f.bucket.is_some()),
                ("accessKeyId", f.access_key_id.is_some()),
                ("secretAccessKey", f.secret_access_key.is_some()),
                ("pathStyle", f.path_style.is_some()),
            ]
            .into_iter()
            .find(|(_, sent)| *sent),
            "s3" => f.path.is_some().then_some(("path", true)),
            _ => return Err(Refusal::invalid("origin.type", "`origin.type` must be fs or s3")),
        };
        if let Some((field, _)) = foreign {
            let param = format!("origin.{field}");
            return Err(Refusal::invalid(&param, format!("`{param}` is not a field of an origin of type {kind}")));
        }
        match kind {
            "fs" => {
                let path = text(&f.path, "origin", "path")?;
                if !path.starts_with('/') || path.split('/').any(|seg| seg == "..") {
                    return Err(Refusal::invalid("origin.path", "`origin.path` must be an absolute path without `..`"));
                }
                Ok(Origin::Fs { path: path.trim_end_matches('/').to_string() }.normalized())
            }
            "s3" => {
                let bucket = text(&f.bucket, "origin", "bucket")?;
                if !valid_bucket(bucket) {
                    return Err(Refusal::invalid("origin.bucket", "`origin.bucket` is not a valid S3 bucket name"));
                }
                let endpoint = text(&f.endpoint, "origin", "endpoint")?;
                check_endpoint(endpoint, bucket)?;
                Ok(Origin::S3 {
                    endpoint: endpoint.to_string(),
                    region: text(&f.region, "origin", "region")?.to_string(),
                    bucket: bucket.to_string(),
                    access_key_id: text(&f.access_key_id, "origin", "accessKeyId")?.to_string(),
                    secret_access_key: text(&f.secret_access_key, "origin", "secretAccessKey")?.to_string(),
                    path_style: f.path_style.unwrap_or(false),
                })
            }
            _ => Err(Refusal::invalid("origin.type", "`origin.type` must be fs or s3")),
        }
    }

    /// The origin as request fields, secret included — in memory only, for merging a PATCH.
    pub fn to_fields(&self) -> OriginFields {
        match self {
            Origin::Fs { path } => {
                OriginFields { kind: Some(Text::trusted("fs")), path: Some(Text::trusted(path)), ..Default::default() }
            }
            Origin::S3 { endpoint, region, bucket, access_key_id, secret_access_key, path_style } => OriginFields {
                kind: Some(Text::trusted("s3")),
                endpoint: Some(Text::trusted(endpoint)),
                region: Some(Text::trusted(region)),
                bucket: Some(Text::trusted(bucket)),
                access_key_id: Some(Text::trusted(access_key_id)),
                secret_access_key: Some(Text::trusted(secret_access_key)),
                path_style: Some(*path_style),
                path: None,
            },
        }
    }

    fn normalized(self) -> Self {
        match self {
            Origin::Fs { path } if path.is_empty() => Origin::Fs { path: "/".into() },
            other => other,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Fs { .. } => "fs",
            Origin::S3 { .. } => "s3",
        }
    }

    /// The secret to seal, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Origin::S3 { secret_access_key, .. } => Some(secret_access_key),
            Origin::Fs { .. } => None,
        }
    }

    /// Everything but the secret, as stored in clear.
    pub fn public_fields(&self) -> Value {
        match self {
            Origin::Fs { path } => json!({"type": "fs", "path": path}),
            Origin::S3 { endpoint, region, bucket, access_key_id, path_style, .. } => json!({
                "type": "s3", "endpoint": endpoint, "region": region, "bucket": bucket,
                "accessKeyId": access_key_id, "pathStyle": path_style,
            }),
        }
    }

    /// Rebuilds an origin from its stored clear fields and its opened secret.
    pub fn from_stored(public: &Value, secret: Option<String>) -> Checked<Origin> {
        let mut fields: OriginFields =
            serde_json::from_value(public.clone()).map_err(|e| Refusal::Damaged(format!("deployment origin: {e}")))?;
        fields.secret_access_key = secret.as_deref().map(Text::trusted);
        Origin::from_fields(&fields)
    }

    /// As the API shows it: secrets masked.
    pub fn to_json(&self) -> Value {
        let mut shown = self.public_fields();
        if self.secret().is_some() {
            shown["secretAccessKey"] = json!(MASK);
        }
        shown
    }
}

impl DownloadAuth {
    pub fn from_fields(fields: &DownloadAuthFields) -> Checked<DownloadAuth> {
        let kind = text(&fields.kind, "downloadAuth", "type")?;
        if kind != "akamai" && kind != "gcore" {
            return Err(Refusal::invalid("downloadAuth.type", "`downloadAuth.type` must be akamai or gcore"));
        }
        Ok(DownloadAuth { kind: kind.to_string(), key: text(&fields.key, "downloadAuth", "key")?.to_string() })
    }

    /// As request fields, key included — in memory only, for merging a PATCH.
    pub fn to_fields(&self) -> DownloadAuthFields {
        DownloadAuthFields { kind: Some(Text::trusted(&self.kind)), key: Some(Text::trusted(&self.key)) }
    }

    pub fn to_json(&self) -> Value {
        json!({"type": self.kind, "key": MASK})
    }
}

/// `originPrefix`: relative path segments of letters, digits, `_`, `-` and `.`, never `..`.
pub fn validate_prefix(prefix: &str) -> Checked<()> {
    let ok = prefix.len() <= 200
        && !prefix.starts_with('/')
        && prefix.split('/').filter(|s| !s.is_empty()).all(|seg| {
            seg != ".." && seg != "." && seg.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(Refusal::invalid("originPrefix", "`originPrefix` must be a relative path of letters, digits, _, - and ."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &Value) -> Checked<Origin> {
        Origin::from_fields(&serde_json::from_value(value.clone()).unwrap())
    }

    #[test]
    fn an_s3_endpoint_must_not_hold_the_bucket() {
        let mut s3 = json!({"type": "s3", "endpoint": "s3.us-east-1.amazonaws.com", "region": "us-east-1",
                            "bucket": "games", "accessKeyId": "AKIA", "secretAccessKey": "x"});
        assert!(parse(&s3).is_ok());
        s3["endpoint"] = json!("games.s3.us-east-1.amazonaws.com");
        assert!(parse(&s3).is_err());
        s3["endpoint"] = json!("s3.amazonaws.com/games");
        assert!(parse(&s3).is_err());
    }

    #[test]
    fn secrets_are_masked_when_shown() {
        let s3 = parse(&json!({"type": "s3", "endpoint": "minio.local:9000", "region": "r", "bucket": "b-1",
                                       "accessKeyId": "AK", "secretAccessKey": "very-secret"}))
        .unwrap();
        assert_eq!(s3.to_json()["secretAccessKey"], MASK);
        assert!(!s3.public_fields().to_string().contains("very-secret"));
    }

    #[test]
    fn prefixes_stay_relative() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("cdn/v1").is_ok());
        for bad in ["/abs", "a/../b", "sp ace", "./x"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_merges_fields_of_the_same_type_and_replaces_another_type() {
        let fields = |v: Value| serde_json::from_value::<OriginFields>(v).unwrap();
        let cur = fields(json!({"type": "s3", "bucket": "b", "secretAccessKey": "old"}));
        let merged = fields(json!({"secretAccessKey": "new"})).merged_onto(cur.clone());
        assert_eq!((merged.bucket.as_deref(), merged.secret_access_key.as_deref()), (Some("b"), Some("new")));
        let replaced = fields(json!({"type": "fs", "path": "/x"})).merged_onto(cur);
        assert_eq!((replaced.bucket, replaced.path.as_deref()), (None, Some("/x")));
    }

    #[test]
    fn shown_fields_never_carry_the_secret() {
        let s3 = parse(&json!({"type": "s3", "endpoint": "minio.local", "region": "r", "bucket": "b-1",
                               "accessKeyId": "AK", "secretAccessKey": "very-secret"}))
        .unwrap();
        assert!(!serde_json::to_string(&s3.to_fields()).unwrap().contains("very-secret"));
    }
}
