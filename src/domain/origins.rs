//! Publish targets (API.md §7): a local directory (`fs`) or an S3-compatible bucket (`s3`), an
//! optional CDN download-auth key and an optional prefix. Parsing and validation only.

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};

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

fn text<'a>(obj: &'a Map<String, Value>, field: &str, param: &str) -> ApiResult<&'a str> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ApiError::missing(&format!("{param}.{field}"))),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(_) => {
            Err(ApiError::invalid(&format!("{param}.{field}"), format!("`{param}.{field}` must be a non-empty string")))
        }
    }
}

fn object<'a>(value: &'a Value, param: &str) -> ApiResult<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be an object")))
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
fn check_endpoint(endpoint: &str, bucket: &str) -> ApiResult<()> {
    let host = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://")).unwrap_or(endpoint);
    let host_only = host.split(':').next().unwrap_or("");
    let plausible = !host_only.is_empty()
        && !host.contains('/')
        && host_only.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !plausible {
        return Err(ApiError::invalid(
            "origin.endpoint",
            "`origin.endpoint` must be a host name such as s3.us-east-1.amazonaws.com",
        ));
    }
    if let Some(why) = super::outbound::refused_host(host) {
        return Err(ApiError::invalid("origin.endpoint", format!("`origin.endpoint` must not point at {why}")));
    }
    if host_only.split('.').any(|label| label == bucket) || host_only.starts_with(&format!("{bucket}.")) {
        return Err(ApiError::invalid(
            "origin.endpoint",
            "`origin.endpoint` must not contain the bucket; give it in `origin.bucket`",
        ));
    }
    Ok(())
}

impl Origin {
    pub fn parse(value: &Value) -> ApiResult<Origin> {
        let obj = object(value, "origin")?;
        match text(obj, "type", "origin")? {
            "fs" => {
                let path = text(obj, "path", "origin")?;
                if !path.starts_with('/') || path.split('/').any(|seg| seg == "..") {
                    return Err(ApiError::invalid(
                        "origin.path",
                        "`origin.path` must be an absolute path without `..`",
                    ));
                }
                // A newline or other control character in a path only serves to confuse logs,
                // scripts and people reading directory listings.
                if path.chars().any(char::is_control) {
                    return Err(ApiError::invalid("origin.path", "`origin.path` must not contain control characters"));
                }
                Ok(Origin::Fs { path: path.trim_end_matches('/').to_string() }.normalized())
            }
            "s3" => {
                let bucket = text(obj, "bucket", "origin")?;
                if !valid_bucket(bucket) {
                    return Err(ApiError::invalid("origin.bucket", "`origin.bucket` is not a valid S3 bucket name"));
                }
                let endpoint = text(obj, "endpoint", "origin")?;
                check_endpoint(endpoint, bucket)?;
                let path_style = match obj.get("pathStyle") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(ApiError::invalid("origin.pathStyle", "`origin.pathStyle` must be true or false"))
                    }
                };
                Ok(Origin::S3 {
                    endpoint: endpoint.to_string(),
                    region: text(obj, "region", "origin")?.to_string(),
                    bucket: bucket.to_string(),
                    access_key_id: text(obj, "accessKeyId", "origin")?.to_string(),
                    secret_access_key: text(obj, "secretAccessKey", "origin")?.to_string(),
                    path_style,
                })
            }
            _ => Err(ApiError::invalid("origin.type", "`origin.type` must be fs or s3")),
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
    pub fn from_stored(public: &Value, secret: Option<String>) -> ApiResult<Origin> {
        let mut full = public.clone();
        if let Some(secret) = secret {
            full["secretAccessKey"] = json!(secret);
        }
        Origin::parse(&full)
    }

    /// As the API shows it: secrets masked.
    pub fn to_json(&self) -> Value {
        let mut shown = self.public_fields();
        if self.secret().is_some() {
            shown["secretAccessKey"] = json!(MASK);
        }
        shown
    }

    /// With every secret in clear, for merging a PATCH.
    pub fn to_json_with_secrets(&self) -> Value {
        let mut full = self.public_fields();
        if let Some(secret) = self.secret() {
            full["secretAccessKey"] = json!(secret);
        }
        full
    }
}

impl DownloadAuth {
    pub fn parse(value: &Value) -> ApiResult<DownloadAuth> {
        let obj = object(value, "downloadAuth")?;
        let kind = text(obj, "type", "downloadAuth")?;
        if kind != "akamai" && kind != "gcore" {
            return Err(ApiError::invalid("downloadAuth.type", "`downloadAuth.type` must be akamai or gcore"));
        }
        Ok(DownloadAuth { kind: kind.to_string(), key: text(obj, "key", "downloadAuth")?.to_string() })
    }

    pub fn to_json(&self) -> Value {
        json!({"type": self.kind, "key": MASK})
    }

    pub fn to_json_with_secrets(&self) -> Value {
        json!({"type": self.kind, "key": self.key})
    }
}

/// `originPrefix`: relative path segments of letters, digits, `_`, `-` and `.`, never `..`.
pub fn validate_prefix(prefix: &str) -> ApiResult<()> {
    let ok = prefix.len() <= 200
        && !prefix.starts_with('/')
        && prefix.split('/').filter(|s| !s.is_empty()).all(|seg| {
            seg != ".." && seg != "." && seg.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("originPrefix", "`originPrefix` must be a relative path of letters, digits, _, - and ."))
    }
}

/// Merges a PATCH of an object field: a different `type` replaces it whole, else fields merge.
pub fn merge(current: &Value, patch: &Value) -> Value {
    match (current, patch) {
        (Value::Object(cur), Value::Object(new)) if new.get("type").is_none_or(|t| cur.get("type") == Some(t)) => {
            let mut merged = cur.clone();
            for (k, v) in new {
                merged.insert(k.clone(), v.clone());
            }
            Value::Object(merged)
        }
        _ => patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_endpoint_must_not_hold_the_bucket() {
        let mut s3 = json!({"type": "s3", "endpoint": "s3.us-east-1.amazonaws.com", "region": "us-east-1",
                            "bucket": "games", "accessKeyId": "AKIA", "secretAccessKey": "x"});
        assert!(Origin::parse(&s3).is_ok());
        s3["endpoint"] = json!("games.s3.us-east-1.amazonaws.com");
        assert!(Origin::parse(&s3).is_err());
        s3["endpoint"] = json!("s3.amazonaws.com/games");
        assert!(Origin::parse(&s3).is_err());
    }

    #[test]
    fn secrets_are_masked_when_shown() {
        let s3 = Origin::parse(&json!({"type": "s3", "endpoint": "minio.local:9000", "region": "r", "bucket": "b-1",
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
        let cur = json!({"type": "s3", "bucket": "b", "secretAccessKey": "old"});
        assert_eq!(merge(&cur, &json!({"secretAccessKey": "new"}))["bucket"], "b");
        assert_eq!(merge(&cur, &json!({"type": "fs", "path": "/x"})), json!({"type": "fs", "path": "/x"}));
    }
}
