//! One list convention for every list endpoint (API.md §1.4): `offset`, `limit`, `order[]`
//! (`-name` and `[-name]`), `fields[]` (repeatable or comma-separated), the list's own filters,
//! `total`, and a stable order (ties broken by name). Unknown parameters are refused, so a
//! mistyped filter never silently matches everything.

use std::collections::HashMap;

use actix_web::HttpResponse;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::store::Page;

/// What one list endpoint offers.
pub struct ListSpec {
    /// API field → SQL column, for `order[]`. The first entry breaks ties (the name).
    pub sort: &'static [(&'static str, &'static str)],
    /// Every field an item has, for `fields[]`.
    pub fields: &'static [&'static str],
    /// Filter parameters this list accepts.
    pub filters: &'static [&'static str],
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
                        let column = spec
                            .sort
                            .iter()
                            .find(|(name, _)| *name == field)
                            .map(|(_, column)| *column)
                            .ok_or_else(|| ApiError::invalid("order[]", format!("cannot sort by `{field}`")))?;
                        order.push((column, descending));
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
                    if value.chars().count() > MAX_FILTER {
                        return Err(ApiError::invalid(
                            other,
                            format!("`{other}` must be at most {MAX_FILTER} characters"),
                        ));
                    }
                    filters.insert(other.to_string(), value);
                }
                other => return Err(ApiError::invalid(other, format!("unknown list parameter `{other}`"))),
            }
        }
        let tiebreak = spec.sort[0].1;
        let mut order_by: Vec<String> =
            order.iter().map(|(column, desc)| format!("{column} {}", if *desc { "DESC" } else { "ASC" })).collect();
        if !order.iter().any(|(column, _)| *column == tiebreak) {
            order_by.push(format!("{tiebreak} ASC"));
        }
        Ok(ListQuery { page: Page { offset, limit, order_by: order_by.join(", ") }, fields, filters })
    }

    /// A filter's value; an empty one counts as absent.
    pub fn filter(&self, name: &str) -> Option<String> {
        self.filters.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// The list answer `{"status":"success", <plural>: [...], "total", "offset", "limit"}`,
    /// serialized. Services call it on the reader thread with the page they read, so the rows
    /// never cross threads. Items are serialized straight from their views; only `fields[]`
    /// goes through JSON values.
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
