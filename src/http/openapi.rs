//! `GET /openapi.json`, generated from the same route table the router is built from.

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use super::{routes, Auth, RouteSpec};

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(build())
}

fn operation(spec: &RouteSpec) -> Value {
    let mut op = json!({
        "summary": spec.summary,
        "tags": [spec.tag],
        "responses": {
            "200": {"description": "success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}},
            "default": {"description": "failure", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    });
    let params: Vec<Value> = spec
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    match spec.auth {
        Auth::None => op["security"] = json!([]),
        Auth::Admin => op["security"] = json!([{"adminToken": []}]),
        Auth::User => {
            op["security"] = json!([{"bearer": []}, {"beauthToken": []}, {"orgName": [], "username": [], "apiKey": []}])
        }
        Auth::Session => op["security"] = json!([{"bearer": []}]),
    }
    if !spec.body.is_empty() {
        let properties: Map<String, Value> =
            spec.body.iter().map(|f| (f.name.to_string(), json!({"type": f.kind}))).collect();
        let required: Vec<&str> = spec.body.iter().filter(|f| f.required).map(|f| f.name).collect();
        op["requestBody"] = json!({
            "required": !required.is_empty(),
            "content": {"application/json": {"schema": {"type": "object", "properties": properties, "required": required}}},
        });
    }
    op
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for spec in routes() {
        let entry = paths.entry(spec.path.to_string()).or_insert_with(|| json!({}));
        entry[spec.method.as_str().to_ascii_lowercase()] = operation(&spec);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "rockit-edge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "ROCKIT Edge Admin API and Backend API (revision 2026-04-22) as implemented by rockit-edge. \
                            Every failure is {\"status\":\"failed\",\"error\":<code>,\"message\":...}.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {"type": "apiKey", "in": "header", "name": super::principal::ADMIN_TOKEN_HEADER,
                               "description": "HS256 JWT signed with the instance's admin secret, payload {\"username\":...}"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "access token (refresh token on /be/v1/refresh and /be/v1/logout)"},
                "beauthToken": {"type": "apiKey", "in": "header", "name": "x-rockit-beauth-token"},
                "orgName": {"type": "apiKey", "in": "header", "name": "x-rockit-orgname"},
                "username": {"type": "apiKey", "in": "header", "name": "x-rockit-username"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-rockit-api-key"},
            },
            "schemas": {
                "Success": {"type": "object", "required": ["status"], "properties": {"status": {"const": "success"}}},
                "Error": {
                    "type": "object",
                    "required": ["status", "error", "message"],
                    "properties": {
                        "status": {"const": "failed"},
                        "error": {"type": "string", "description": "stable kebab-case code"},
                        "message": {"type": "string"},
                        "param": {"type": "string"},
                        "resource": {"type": "string"},
                        "retryAfter": {"type": "string"},
                    },
                },
            },
        },
    })
}
