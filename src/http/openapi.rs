//! `GET /openapi.json`, generated from the same route table the router is built from: request
//! bodies from the request types (schemars), path parameters with their name patterns, the list
//! parameters from each list's spec, the answer's envelope, and the failures each route can give.

use actix_web::HttpResponse;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::list::{ListSpec, DEFAULT_LIMIT, MAX_FILTER, MAX_LIMIT};
use super::{routes, Answer, Auth, RouteSpec};
use crate::domain::text::{limits, DEPLOYMENT_NAME_PATTERN, NAME_PATTERN};

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(build())
}

/// The schema of a path parameter: names follow API.md §1.3, other ids are bounded text.
fn path_parameter(name: &str) -> Value {
    let schema = match name {
        "name" => json!({"type": "string", "pattern": DEPLOYMENT_NAME_PATTERN}),
        "orgName" | "username" | "roleName" | "appName" | "subscriptionName" => {
            json!({"type": "string", "pattern": NAME_PATTERN})
        }
        _ => json!({"type": "string", "minLength": 1, "maxLength": limits::SHORT}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn query_parameter(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// `offset`, `limit`, `order[]`, `fields[]` and the list's filters (API.md §1.4).
fn list_parameters(list: &ListSpec) -> Vec<Value> {
    let sortable: Vec<String> =
        list.sort.iter().flat_map(|(field, _)| [field.to_string(), format!("-{field}")]).collect();
    let mut params = vec![
        query_parameter(
            "offset",
            json!({"type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0}),
            "first item of the page",
        ),
        query_parameter(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
            "items per page",
        ),
        query_parameter(
            "order[]",
            json!({"type": "array", "items": {"type": "string", "enum": sortable}}),
            "sort fields, `-` for descending; ties by name, in the direction of the last field",
        ),
        query_parameter(
            "fields[]",
            json!({"type": "array", "items": {"type": "string", "enum": list.fields}}),
            "only these fields of each item",
        ),
    ];
    for filter in list.filters {
        let schema = match list.choices.iter().find(|(name, _)| name == filter) {
            Some((_, values)) => json!({"type": "string", "enum": values}),
            None if list.times.contains(filter) => json!({"type": "string", "format": "date-time"}),
            None => json!({"type": "string", "maxLength": MAX_FILTER}),
        };
        params.push(query_parameter(filter, schema, "filter (partial names match case-insensitively)"));
    }
    params
}

/// The schema of the thing an answer holds under `key`, from the view type the handler
/// serializes (`views`), or `None` where the answer has no view type yet.
fn view_schema(key: &str, generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
    use super::views::*;
    Some(match key {
        "org" | "orgs" => generator.subschema_for::<OrgView>(),
        "user" | "users" => generator.subschema_for::<UserView>(),
        "role" | "roles" => generator.subschema_for::<RoleView>(),
        "apikeys" => generator.subschema_for::<ApiKeyView>(),
        "deployment" | "deployments" => generator.subschema_for::<DeploymentView>(),
        "app" | "apps" => generator.subschema_for::<AppView>(),
        "subscription" | "subscriptions" => generator.subschema_for::<SubscriptionView>(),
        "task" => generator.subschema_for::<TaskView>(),
        "session" => generator.subschema_for::<SessionView>(),
        "sessions" => generator.subschema_for::<LiveSessionView>(),
        "audit" => generator.subschema_for::<AuditEntryView>(),
        "import" => generator.subschema_for::<super::transfers::ImportView>(),
        _ => return None,
    })
}

/// A list item: the view without `required`, since `fields[]` may choose any subset.
fn list_item_schema(key: &str, generator: &mut schemars::SchemaGenerator) -> Value {
    let Some(schema) = view_schema(key, generator) else { return json!({"type": "object"}) };
    let name = schema.as_value().get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next());
    let mut item = name.and_then(|name| generator.definitions().get(name).cloned()).unwrap_or(schema.to_value());
    if let Some(object) = item.as_object_mut() {
        object.remove("required");
    }
    item
}

/// The success envelope of an answer.
fn answer_schema(answer: Answer, generator: &mut schemars::SchemaGenerator) -> Value {
    match answer {
        Answer::Status => json!({"$ref": "#/components/schemas/Success"}),
        Answer::Text(_) => json!({"type": "string"}),
        Answer::One(key) => json!({
            "type": "object",
            "required": ["status", key],
            "properties": {
                "status": {"const": "success"},
                key: view_schema(key, generator).map_or(json!({}), schemars::Schema::to_value),
            },
        }),
        Answer::List(key, _) => json!({
            "type": "object",
            "required": ["status", key, "total", "offset", "limit"],
            "properties": {
                "status": {"const": "success"},
                key: {"type": "array", "items": list_item_schema(key, generator)},
                "total": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
        }),
    }
}

/// Every failure a route can answer, by status, with the codes of API.md §1.2.
fn failures(spec: &RouteSpec) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let has_path_params = spec.path.contains('{');
    let is_list = matches!(spec.answer, Answer::List(..));
    if spec.body.is_some() || has_path_params || is_list || spec.auth != Auth::None {
        out.push(("400", "missing-param, invalid-param, invalid-json, conflicting-credentials"));
    }
    if spec.auth != Auth::None || spec.path == "/be/v1/login" {
        out.push((
            "401",
            "token-missing, token-invalid, token-expired, token-revoked, invalid-credentials, invalid-api-key",
        ));
    }
    if matches!(spec.auth, Auth::User) {
        out.push(("403", "permission-denied"));
    }
    if has_path_params || spec.body.is_some() {
        out.push(("404", "not-found"));
    }
    out.push(("405", "method-not-allowed (with Allow)"));
    if spec.body.is_some() || spec.method == actix_web::http::Method::DELETE {
        out.push(("409", "already-exists, in-use, busy, conflict"));
    }
    if spec.body.is_some() {
        out.push(("413", "payload-too-large"));
        out.push(("415", "unsupported-media-type"));
    }
    // Password checks are rate limited: logins, and a password change (PATCH /be/v1/users).
    if spec.path == "/be/v1/login" || spec.path == "/be/v1/users" && spec.method == actix_web::http::Method::PATCH {
        out.push(("429", "rate-limited (with Retry-After)"));
    }
    out.push(("500", "internal"));
    out.push(("503", "maintenance, unavailable (with Retry-After)"));
    out
}

/// JSON for every answer but plain text ones; the media type without its parameters.
fn success_media_type(answer: Answer) -> &'static str {
    match answer {
        Answer::Text(media_type) => media_type.split(';').next().unwrap_or(media_type),
        _ => "application/json",
    }
}

fn operation(spec: &RouteSpec, generator: &mut schemars::SchemaGenerator) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "success", "content": {success_media_type(spec.answer): {"schema": answer_schema(spec.answer, generator)}}}),
    );
    for (status, codes) in failures(spec) {
        responses.insert(
            status.into(),
            json!({"description": codes, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let mut op = json!({"summary": spec.summary, "tags": [spec.tag], "responses": responses});
    let mut params: Vec<Value> = spec
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(path_parameter)
        .collect();
    if let Answer::List(_, list) = spec.answer {
        params.extend(list_parameters(list));
    }
    if spec.path.starts_with("/adm/v1/orgs/") && spec.method == actix_web::http::Method::DELETE
        || spec.path == "/be/v1/orgs/{orgName}"
    {
        params.push(query_parameter("prune", json!({"type": "boolean"}), "also remove the published files"));
    }
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    op["security"] = match spec.auth {
        Auth::None => json!([]),
        Auth::Admin => json!([{"adminToken": []}]),
        Auth::User => json!([{"bearer": []}, {"beauthToken": []}, {"orgName": [], "username": [], "apiKey": []}]),
        Auth::Session => json!([{"bearer": []}]),
    };
    if let Some(body) = spec.body {
        let schema = body(generator);
        // An empty body counts as `{}`: it is only optional when `{}` is a valid request, i.e.
        // when no field is required, neither always nor in every alternative (`anyOf`, or the
        // `oneOf` of a tagged enum such as the trigger's actions).
        let required = schema
            .as_value()
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| generator.definitions().get(name))
            .is_some_and(|definition| {
                let requires = |d: &Value| d.get("required").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
                requires(definition)
                    || ["anyOf", "oneOf"].iter().any(|combinator| {
                        definition
                            .get(*combinator)
                            .and_then(Value::as_array)
                            .is_some_and(|alts| alts.iter().all(requires))
                    })
            });
        op["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": schema}}});
    }
    op
}

/// The whole document.
pub fn build() -> Value {
    let mut generator =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    let mut paths = Map::new();
    for spec in routes() {
        let entry = paths.entry(spec.path.to_string()).or_insert_with(|| json!({}));
        entry[spec.method.as_str().to_ascii_lowercase()] = operation(&spec, &mut generator);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Success".into(),
        json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "success"}}}),
    );
    schemas.insert(
        "Error".into(),
        json!({
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
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "rockit-edge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "ROCKIT Edge Admin API and Backend API (revision 2026-04-22) as implemented by rockit-edge. \
                            Every failure is {\"status\":\"failed\",\"error\":<code>,\"message\":...}. \
                            An empty request body counts as {}. \
                            On any path, a request that is not valid HTTP/1.1 (request line, method, version, \
                            a header, or HTTP/1.1 without Host) is answered 400 malformed-request, and a request \
                            head over 128 KiB or 96 headers 431 request-head-too-large; the connection then closes \
                            after the answers to the requests sent before it.",
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
            "schemas": schemas,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_carry_their_limits_and_patterns() {
        let doc = build();
        let schemas = &doc["components"]["schemas"];
        let app = &schemas["CreateApp"];
        assert_eq!(app["properties"]["label"]["maxLength"], limits::LABEL, "{app}");
        assert_eq!(app["properties"]["name"]["pattern"], NAME_PATTERN, "{app}");
        assert_eq!(app["additionalProperties"], false, "{app}");
        assert_eq!(app["required"], json!(["name", "label"]), "{app}");
        let body = &doc["paths"]["/be/v1/apps"]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/CreateApp");
        // Optional fields stay optional, also where the schema is written by hand.
        assert_eq!(schemas["ChangeRole"]["required"], json!(["name"]), "{}", schemas["ChangeRole"]);
    }

    #[test]
    fn a_body_whose_every_alternative_requires_a_field_is_required() {
        let doc = build();
        // The trigger is a tagged enum (`oneOf`); `{}` (an empty body) is no valid trigger.
        assert_eq!(doc["paths"]["/be/v1/trigger"]["post"]["requestBody"]["required"], true);
        assert_eq!(doc["paths"]["/be/v1/tasks"]["patch"]["requestBody"]["required"], true);
    }

    #[test]
    fn time_filters_are_date_times() {
        let doc = build();
        let params = doc["paths"]["/be/v1/tasks"]["get"]["parameters"].as_array().unwrap();
        let created_after = params.iter().find(|p| p["name"] == "createdAfter").unwrap();
        assert_eq!(created_after["schema"]["format"], "date-time");
    }

    #[test]
    fn rules_beyond_types_are_stated_where_a_schema_can_state_them() {
        let doc = build();
        let schemas = &doc["components"]["schemas"];
        // `{}` is no valid login (every alternative requires a field), so the body is required.
        assert_eq!(doc["paths"]["/be/v1/login"]["post"]["requestBody"]["required"], true);
        assert_eq!(schemas["Login"]["properties"]["username"]["type"], "string", "{}", schemas["Login"]);
        let user = &schemas["CreateUser"];
        assert_eq!(user["then"]["properties"]["password"]["type"], "null", "{user}");
        assert_eq!(user["else"]["required"], json!(["email", "firstname", "surname"]), "{user}");
        assert_eq!(schemas["ChangeUser"]["dependentRequired"]["newPW"], json!(["oldPW"]));
        let subscription = &schemas["CreateSubscription"];
        assert_eq!(subscription["then"]["properties"]["url"]["pattern"], "^https://", "{subscription}");
        assert!(subscription["properties"]["url"]["pattern"].is_string(), "{subscription}");
        assert_eq!(schemas["CreateOrg"]["properties"]["publicKey"]["format"], "rsa-public-key-pem");
        // Password changes are rate limited, so PATCH /be/v1/users documents 429.
        assert!(doc["paths"]["/be/v1/users"]["patch"]["responses"]["429"].is_object());
    }

    #[test]
    fn answers_carry_the_view_types_fields_and_list_items_may_be_partial() {
        let doc = build();
        let schemas = &doc["components"]["schemas"];
        let one = &doc["paths"]["/be/v1/users/{username}"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["properties"]["user"];
        assert_eq!(one["$ref"], "#/components/schemas/UserView", "{one}");
        let user = &schemas["UserView"];
        assert!(user["required"].as_array().is_some_and(|r| r.contains(&json!("username"))), "{user}");
        assert_eq!(user["properties"]["type"]["enum"], json!(["user", "machine"]), "{user}");
        let answer = |path: &str, method: &str, key: &str| {
            doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]["properties"][key]
                ["$ref"]
                .clone()
        };
        assert_eq!(answer("/be/v1/refresh", "post", "session"), "#/components/schemas/SessionView");
        assert_eq!(answer("/srv/v1/tasks/{taskName}", "get", "task"), "#/components/schemas/TaskView");
        for (path, key, field) in
            [("/be/v1/apps", "apps", "maxBuilds"), ("/be/v1/deployments", "deployments", "origin")]
        {
            let items = &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["properties"][key]["items"];
            assert!(items["properties"][field].is_object(), "{path}: {items}");
            // `fields[]` may leave any field out.
            assert!(items.get("required").is_none(), "{path}: {items}");
        }
    }

    #[test]
    fn the_description_names_the_protocol_level_answers() {
        let description = build()["info"]["description"].as_str().unwrap().to_string();
        use crate::error::ApiError;
        for code in [ApiError::MalformedRequest("x").code(), ApiError::HeadTooLarge.code()] {
            assert!(description.contains(code), "{code} in {description}");
        }
    }

    #[test]
    fn every_path_parameter_has_a_pattern_or_a_bound() {
        let doc = build();
        let mut seen = 0;
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, op) in operations.as_object().unwrap() {
                for param in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path") {
                    seen += 1;
                    let schema = &param["schema"];
                    assert!(schema["pattern"].is_string() || schema["maxLength"].is_number(), "{method} {path}");
                }
            }
        }
        assert!(seen >= 13, "{seen} path parameters");
    }

    #[test]
    fn every_list_operation_documents_its_query_parameters() {
        let doc = build();
        let lists: Vec<&str> = ["/adm/v1/orgs", "/be/v1/users", "/be/v1/apikeys", "/be/v1/roles", "/be/v1/deployments"]
            .into_iter()
            .chain(["/be/v1/apps", "/be/v1/subscriptions"])
            .collect();
        for path in lists {
            let names: Vec<&str> = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{path} has no parameters"))
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for must in ["offset", "limit", "order[]", "fields[]"] {
                assert!(names.contains(&must), "{path} lacks {must}: {names:?}");
            }
        }
    }
}
