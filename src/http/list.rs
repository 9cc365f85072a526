//! One list convention for every list endpoint (API.md §1.4): `offset`, `limit`, `order[]`
//! (`-name` and `[-name]`), `fields[]` (repeatable or comma-separated), the list's own filters,
//! `total`, and a stable order (ties broken by name). Unknown parameters are refused, so a
//! mistyped filter never silently matches everything.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::store::{Listed, Page};

/// What one list endpoint offers.
pub struct ListSpec {
    /// The fields `order[]` takes, from the store (which alone knows their columns).
    pub sort: crate::store::SortColumns,
    /// Every field an item has, for `fields[]`.
    pub fields: &'static [&'static str],
    /// Filter parameters this list accepts.
    pub filters: &'static [&'static str],
    /// Filters that take one of a fixed set of values (anything else is a 400).
    pub choices: &'static [(&'static str, &'static [&'static str])],
    /// Filters that take an RFC 3339 time (anything else is a 400).
    pub times: &'static [&'static str],
}

/// An RFC 3339 time filter in the stored form (UTC, milliseconds), so that comparing it with
/// stored times as text is comparing times, whatever offset or precision the client used.
fn stored_time(param: &str, value: &str) -> ApiResult<String> {
    let at = chrono::DateTime::parse_from_rfc3339(value).map_err(|_| {
        ApiError::invalid(param, format!("`{param}` must be an RFC 3339 time, e.g. 2026-04-22T10:00:00Z"))
    })?;
    Ok(at.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 1000;
/// Longest filter value: names are at most 50 characters, so this only keeps junk out.
pub const MAX_FILTER: usize = 255;

/// A parsed list request.
#[derive(Debug)]
pub struct ListQuery {
    pub page: Page,
    fields: Option<Vec<String>>,
    filters: HashMap<String, String>,
}

fn strip_brackets(value: &str) -> &str {
    value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value)
}

impl ListQuery {
    pub fn parse(query: &str, spec: &ListSpec) -> ApiResult<ListQuery> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::invalid("query", "the query string is malformed"))?;
        let mut offset = 0;
        let mut limit = DEFAULT_LIMIT;
        let mut order = Vec::new();
        let mut fields: Option<Vec<String>> = None;
        let mut filters = HashMap::new();
        for (key, value) in pairs {
            match key.as_str() {
                "offset" => {
                    offset = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| ApiError::invalid("offset", "`offset` must be a whole number ≥ 0"))?
                }
                "limit" => {
                    limit =
                        value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                            ApiError::invalid("limit", format!("`limit` must be from 1 to {MAX_LIMIT}"))
                        })?
                }
                "order[]" | "order" => {
                    for item in value.split(',').map(|v| strip_brackets(v.trim())).filter(|v| !v.is_empty()) {
                        // A `+` in a query string arrives as a space, which trim() removed.
                        let (descending, field) = match item.strip_prefix('-') {
                            Some(field) => (true, field),
                            None => (false, item.strip_prefix('+').unwrap_or(item)),
                        };
                        if !Page::sortable(spec.sort, field) {
                            return Err(ApiError::invalid("order[]", format!("cannot sort by `{field}`")));
                        }
                        order.push((field.to_string(), descending));
                    }
                }
                "fields[]" | "fields" => {
                    let chosen = fields.get_or_insert_with(Vec::new);
                    for field in value.split(',').map(|v| strip_brackets(v.trim())).filter(|v| !v.is_empty()) {
                        if !spec.fields.contains(&field) {
                            return Err(ApiError::invalid("fields[]", format!("there is no field `{field}`")));
                        }
                        chosen.push(field.to_string());
                    }
                }
                other if spec.filters.contains(&other) => {
                    let allowed = spec.choices.iter().find(|(name, _)| *name == other).map(|(_, values)| *values);
                    if let Some(values) =
                        allowed.filter(|values| !value.is_empty() && !values.contains(&value.as_str()))
                    {
                        return Err(ApiError::invalid(
                            other,
                            format!("`{other}` must be one of {}", values.join(", ")),
                        ));
                    }
                    if value.chars().count() > MAX_FILTER {
                        return Err(ApiError::invalid(
                            other,
                            format!("`{other}` must be at most {MAX_FILTER} characters"),
                        ));
                    }
                    // Unlike a name filter, an empty time is no time at all: refused, not ignored.
                    let value = match spec.times.contains(&other) {
                        true => stored_time(other, &value)?,
                        false => value,
                    };
                    filters.insert(other.to_string(), value);
                }
                other => return Err(ApiError::invalid(other, format!("unknown list parameter `{other}`"))),
            }
        }
        let order: Vec<(&str, bool)> = order.iter().map(|(field, desc)| (field.as_str(), *desc)).collect();
        let page = Page::new(offset, limit, spec.sort, &order)
            .map_err(|field| ApiError::invalid("order[]", format!("cannot sort by `{field}`")))?;
        Ok(ListQuery { page, fields, filters })
    }

    /// The list answer `{"status":"success", <plural>: [...], "total", "offset", "limit"}`,
    /// serialized. Items are serialized straight from their views; only `fields[]` goes through
    /// JSON values.
    pub fn render<T: Serialize>(&self, plural: &str, items: &[T], total: i64) -> serde_json::Result<Vec<u8>> {
        // Sized for the page up front: growing from empty cost a run of reallocations.
        let mut body = Vec::with_capacity(256 + 512 * items.len());
        match &self.fields {
            None => serde_json::to_writer(&mut body, &ListAnswer { plural, items, total, page: &self.page })?,
            Some(fields) => {
                let chosen = items
                    .iter()
                    .map(|item| {
                        Ok(match serde_json::to_value(item)? {
                            Value::Object(map) => Value::Object(
                                map.into_iter().filter(|(k, _)| fields.contains(k)).collect::<Map<_, _>>(),
                            ),
                            other => other,
                        })
                    })
                    .collect::<serde_json::Result<Vec<Value>>>()?;
                serde_json::to_writer(&mut body, &ListAnswer { plural, items: &chosen, total, page: &self.page })?
            }
        }
        Ok(body)
    }
}

/// A rendered list as the answer.
pub fn json_body(body: serde_json::Result<Vec<u8>>) -> ApiResult<HttpResponse> {
    let body = body.map_err(|e| ApiError::internal(format!("cannot serialize a list: {e}")))?;
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// The filter values of a list request, for the service.
pub struct Filters(HashMap<String, String>);

impl Filters {
    /// A filter's value; an empty one counts as absent.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// The list pipeline every list endpoint shares: parse the query against the list's spec, let
/// the service (`read`) read one page with the filters, render it with `render`, and answer the
/// bytes. Rendering happens here, on the async worker, not on the reader thread: the service no
/// longer calls back into the handler, and a benchmark found the reader-thread placement did
/// not pay (bench/results/2026-11-26T2350-render-placement.md).
pub async fn respond<T, Fut>(
    req: &HttpRequest,
    spec: &ListSpec,
    render: fn(&ListQuery, Listed<T>) -> serde_json::Result<Vec<u8>>,
    read: impl FnOnce(Filters, Page) -> Fut,
) -> ApiResult<HttpResponse>
where
    Fut: std::future::Future<Output = ApiResult<Listed<T>>>,
{
    let mut query = ListQuery::parse(req.query_string(), spec)?;
    let (filters, page) = (Filters(std::mem::take(&mut query.filters)), query.page.clone());
    let listed = read(filters, page).await?;
    json_body(render(&query, listed))
}

/// The list envelope, with the list under its resource's name.
struct ListAnswer<'a, T> {
    plural: &'a str,
    items: &'a [T],
    total: i64,
    page: &'a Page,
}

impl<T: Serialize> Serialize for ListAnswer<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("status", "success")?;
        map.serialize_entry(self.plural, self.items)?;
        map.serialize_entry("total", &self.total)?;
        map.serialize_entry("offset", &self.page.offset)?;
        map.serialize_entry("limit", &self.page.limit)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        sort: &[("name", "t.name"), ("created", "t.created")],
        fields: &["name", "created"],
        filters: &["name"],
        choices: &[],
        times: &[],
    };

    #[test]
    fn order_accepts_plain_signed_and_bracketed_fields() {
        let q = ListQuery::parse("order[]=[-created]&order[]=%2Bname", &SPEC).unwrap();
        assert_eq!(q.page.order_by, "t.created DESC, t.name ASC");
        let q = ListQuery::parse("order[]=-name", &SPEC).unwrap();
        assert_eq!(q.page.order_by, "t.name DESC");
        let q = ListQuery::parse("", &SPEC).unwrap();
        assert_eq!((q.page.offset, q.page.limit, q.page.order_by.as_str()), (0, 10, "t.name ASC"));
    }

    #[test]
    fn ties_are_broken_by_name_in_the_direction_of_the_last_field() {
        let q = ListQuery::parse("order[]=-created", &SPEC).unwrap();
        assert_eq!(q.page.order_by, "t.created DESC, t.name DESC");
        let q = ListQuery::parse("order[]=created", &SPEC).unwrap();
        assert_eq!(q.page.order_by, "t.created ASC, t.name ASC");
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, param) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("offset=-1", "offset"),
            ("order[]=secret", "order[]"),
            ("fields[]=hash", "fields[]"),
            ("nmae=x", "nmae"),
        ] {
            match ListQuery::parse(query, &SPEC) {
                Err(ApiError::InvalidParam { param: p, .. }) => assert_eq!(p, param, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
