//! The JSON body extractor: content type (415), size (413), syntax and duplicate keys (400
//! `invalid-json`), then the typed request struct, whose errors name the offending parameter by
//! its path (`missing-param` / `invalid-param`, e.g. `origin.bucket`).

use std::fmt;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A route's own body limit (bytes), as resource app data, for the few bodies that are larger
/// by nature (start-up traces); every other route has the `json_limit` setting.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A request body deserialized into `T` (an empty body counts as `{}`).
#[derive(Debug)]
pub struct Json<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Json<T>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = match req.app_data::<BodyLimit>() {
            Some(route) => route.0,
            None => req.app_data::<actix_web::web::Data<AppState>>().map_or(64 * 1024, |s| s.settings.json_limit),
        };
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            if declared_len.is_some_and(|len| len > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::InvalidJson("the request body could not be read".into())
                }
            })?;
            if bytes.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return parse(b"{}").map(Json);
            }
            if !content_type.as_deref().is_some_and(is_json) {
                return Err(ApiError::UnsupportedMediaType);
            }
            parse(&bytes).map(Json)
        })
    }
}

/// Parses a request body: first the document as a whole (syntax, duplicate keys at any depth —
/// serde_json would silently keep the last one), then the typed request.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice::<NoDuplicates>(bytes)
        .map_err(|e| ApiError::InvalidJson(format!("the request body is not valid JSON: {}", without_position(&e))))?;
    let mut json = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut json).map_err(refusal)
}

/// serde_json appends " at line 1 column 17"; the parameter name says more to a client.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Turns a deserialization error into the API's answer, naming the parameter by its path
/// (`origin.bucket`; list positions are left out: `roles`, not `roles[2]`).
fn refusal(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_path_to_error::Segment;
    let param: Vec<String> = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    let message = without_position(err.inner());
    // The path ends at the struct for a missing field, at the key itself for an unknown one.
    let join = |field: &str| match param.last() {
        Some(last) if last == field => param.join("."),
        _ => param.iter().map(String::as_str).chain([field]).collect::<Vec<_>>().join("."),
    };
    if let Some(field) = quoted_after(&message, "missing field `") {
        return ApiError::missing(&join(field));
    }
    if let Some(field) = quoted_after(&message, "unknown field `") {
        let name = join(field);
        return ApiError::invalid(&name, format!("`{name}` is not a parameter of this request"));
    }
    if let Some(field) = quoted_after(&message, "duplicate field `") {
        return ApiError::InvalidJson(format!("the key `{}` appears twice", join(field)));
    }
    if param.is_empty() {
        return ApiError::InvalidJson(format!("the request body must be a JSON object: {message}"));
    }
    let name = param.join(".");
    if message.starts_with("invalid type: null") {
        // `null` for a required field is the field left out, not a wrong value.
        return ApiError::missing(&name);
    }
    // Our own checks say "must be …"; serde's own messages read better after a colon.
    let separator = if message.starts_with("must ") { " " } else { ": " };
    ApiError::invalid(&name, format!("`{name}`{separator}{message}"))
}

/// `name` out of `<prefix>name` followed by a backquote.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// Accepts any JSON document in which no object repeats a key.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicates)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        // Objects of a request are small: a list beats a hash set here.
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("the key `{key}` appears twice")));
            }
            map.next_value::<NoDuplicates>()?;
            seen.push(key);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::{Name, Text, Within};

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)] // only parsed, never read
    struct Example {
        name: Name,
        #[serde(default)]
        label: Option<Text<5>>,
        #[serde(default)]
        max_builds: Option<Within<1, 100>>,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only parsed, never read
    struct Inner {
        bucket: Text<3>,
    }

    fn refused(body: &str) -> (String, String) {
        let err = parse::<Example>(body.as_bytes()).unwrap_err();
        let envelope = err.body();
        (err.code().to_string(), envelope["param"].as_str().unwrap_or("").to_string())
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn a_valid_body_parses() {
        let ok = parse::<Example>(br#"{"name":"ab","label":"x","maxBuilds":5,"inner":{"bucket":"b"}}"#).unwrap();
        assert_eq!((&*ok.name, ok.max_builds.map(Within::get)), ("ab", Some(5)));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(refused(r#"{"name":"ab","name":"cd"}"#).0, "invalid-json");
        assert_eq!(refused(r#"{"name":"ab","inner":{"bucket":"a","bucket":"b"}}"#).0, "invalid-json");
    }

    #[test]
    fn errors_name_the_parameter_by_its_path() {
        assert_eq!(refused(r#"{}"#), ("missing-param".into(), "name".into()));
        assert_eq!(refused(r#"{"name":"ab","inner":{}}"#), ("missing-param".into(), "inner.bucket".into()));
        assert_eq!(refused(r#"{"name":"ab","maxBuilds":"5"}"#), ("invalid-param".into(), "maxBuilds".into()));
        assert_eq!(refused(r#"{"name":"ab","label":"toolong"}"#), ("invalid-param".into(), "label".into()));
        assert_eq!(refused(r#"{"name":"a-b"}"#), ("invalid-param".into(), "name".into()));
        assert_eq!(
            refused(r#"{"name":"ab","inner":{"bucket":"long"}}"#),
            ("invalid-param".into(), "inner.bucket".into())
        );
        assert_eq!(refused(r#"{"name":"ab","nmae":"x"}"#), ("invalid-param".into(), "nmae".into()));
    }

    #[test]
    fn a_body_that_is_not_an_object_or_not_json_is_invalid_json() {
        assert_eq!(refused("[1]").0, "invalid-json");
        assert_eq!(refused("{\"name\":").0, "invalid-json");
    }
}
