//! The JSON body extractor: content type (415), size (413), syntax (400 `invalid-json`), and
//! typed field access that names the offending parameter (`missing-param` / `invalid-param`).

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A request body that is a JSON object (an empty body counts as `{}`).
#[derive(Debug, Default)]
pub struct JsonBody(pub Map<String, Value>);

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<JsonBody>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<actix_web::web::Data<AppState>>().map_or(64 * 1024, |s| s.settings.json_limit);
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
                return Ok(JsonBody::default());
            }
            if !content_type.as_deref().is_some_and(is_json) {
                return Err(ApiError::UnsupportedMediaType);
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Ok(JsonBody(map)),
                Ok(_) => Err(ApiError::InvalidJson("the request body must be a JSON object".into())),
                Err(e) => Err(ApiError::InvalidJson(format!("the request body is not valid JSON: {e}"))),
            }
        })
    }
}

impl JsonBody {
    /// The field's value unless absent or `null`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// Whether the field was sent at all (even as `null`), for PATCH semantics.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn required_str(&self, name: &str) -> ApiResult<&str> {
        self.optional_str(name)?.ok_or_else(|| ApiError::missing(name))
    }

    pub fn optional_str(&self, name: &str) -> ApiResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a string"))),
        }
    }

    pub fn required_bool(&self, name: &str) -> ApiResult<bool> {
        self.optional_bool(name)?.ok_or_else(|| ApiError::missing(name))
    }

    pub fn optional_bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be true or false"))),
        }
    }

    /// An integer within `min..=max`; a numeric string is accepted too (some clients send them).
    pub fn optional_int(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        let value = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(name, format!("`{name}` must be a whole number from {min} to {max}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
