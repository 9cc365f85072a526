//! Permission bitmasks of API.md §3: a role grants each resource a mask of Create 1, Read 2,
//! Update 4, Delete 8, eXecute 16, within the resource's allowed bits.

use serde_json::{Map, Value};

use super::{Checked, Refusal};

pub const CREATE: u8 = 1;
pub const READ: u8 = 2;
pub const UPDATE: u8 = 4;
pub const DELETE: u8 = 8;
pub const EXECUTE: u8 = 16;

/// Every resource with its allowed bits [compat].
pub const RESOURCES: [(&str, u8); 12] = [
    ("apps", 15),
    ("beUsers", 15),
    ("bundles", 15),
    ("consumption", 2),
    ("dependencies", 15),
    ("deployments", 15),
    ("keys", 15),
    ("roles", 15),
    ("sources", 15),
    ("subscriptions", 15),
    ("tasks", 31),
    ("trainings", 6),
];

/// The JSON Schema of a request's `{"apps": 15, ...}`: each resource with the masks it allows.
pub fn request_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let properties: serde_json::Map<String, Value> = RESOURCES
        .iter()
        .map(|(name, allowed)| {
            let masks: Vec<u8> = (0..=*allowed).filter(|m| m & !allowed == 0).collect();
            (name.to_string(), serde_json::json!({"type": "integer", "enum": masks}))
        })
        .collect();
    schemars::json_schema!({"type": "object", "properties": properties, "additionalProperties": false})
}

/// [`request_schema`] for an optional field, where `null` counts as absent.
pub fn optional_request_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let object = request_schema(generator);
    schemars::json_schema!({"anyOf": [object, {"type": "null"}]})
}

/// A resource, by its position in [`RESOURCES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource(usize);

impl Resource {
    pub const APPS: Resource = Resource(0);
    pub const BE_USERS: Resource = Resource(1);
    pub const DEPLOYMENTS: Resource = Resource(5);
    pub const ROLES: Resource = Resource(7);
    pub const SUBSCRIPTIONS: Resource = Resource(9);
    pub const TASKS: Resource = Resource(10);
    pub const TRAININGS: Resource = Resource(11);

    pub fn name(self) -> &'static str {
        RESOURCES[self.0].0
    }
}

/// The bits a caller (or a role) holds on every resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permissions([u8; RESOURCES.len()]);

impl Permissions {
    /// Every allowed bit on every resource: what `Administrators` grants.
    pub fn all() -> Self {
        let mut bits = [0; RESOURCES.len()];
        for (i, (_, max)) in RESOURCES.iter().enumerate() {
            bits[i] = *max;
        }
        Permissions(bits)
    }

    pub fn has(&self, resource: Resource, bit: u8) -> bool {
        self.0[resource.0] & bit == bit
    }

    pub fn union(mut self, other: &Permissions) -> Self {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine |= theirs;
        }
        self
    }

    /// Whether every bit of `other` is held here too.
    pub fn covers(&self, other: &Permissions) -> bool {
        self.0.iter().zip(other.0).all(|(mine, theirs)| mine & theirs == theirs)
    }

    /// Parses a request's `{"apps": 15, ...}`; resources not named get no bits.
    pub fn parse(param: &str, value: &Value) -> Checked<Self> {
        let Value::Object(map) = value else {
            return Err(Refusal::invalid(param, format!("`{param}` must be an object of resource: bits")));
        };
        let mut bits = [0; RESOURCES.len()];
        for (resource, mask) in map {
            let Some(i) = RESOURCES.iter().position(|(name, _)| name == resource) else {
                return Err(Refusal::invalid(param, format!("`{resource}` is not a resource")));
            };
            let allowed = RESOURCES[i].1;
            match mask.as_u64() {
                Some(m) if m <= u64::from(allowed) && (m as u8) & !allowed == 0 => bits[i] = m as u8,
                _ => {
                    return Err(Refusal::invalid(
                        param,
                        format!("`{resource}` takes a bitmask within {allowed}, not {mask}"),
                    ))
                }
            }
        }
        Ok(Permissions(bits))
    }

    /// The granted bits only, e.g. `apps=15 tasks=2` (`none` without any): how the audit trail
    /// records what a role grants.
    pub fn summary(&self) -> String {
        let granted: Vec<String> =
            RESOURCES.iter().zip(self.0).filter(|(_, b)| *b != 0).map(|((name, _), b)| format!("{name}={b}")).collect();
        if granted.is_empty() {
            "none".into()
        } else {
            granted.join(" ")
        }
    }

    /// `{"apps": 15, ...}` with every resource present.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> =
            RESOURCES.iter().zip(self.0).map(|((name, _), b)| (name.to_string(), Value::from(b))).collect();
        Value::Object(map)
    }

    /// Stored form (JSON text); unknown or out-of-range stored bits are dropped, never widened.
    pub fn from_stored(text: &str) -> Self {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let mut bits = [0; RESOURCES.len()];
        for (i, (name, allowed)) in RESOURCES.iter().enumerate() {
            bits[i] = value.get(*name).and_then(Value::as_u64).map_or(0, |m| (m as u8) & allowed);
        }
        Permissions(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bits_outside_a_resource_or_unknown_resources_are_refused() {
        assert!(Permissions::parse("permissions", &json!({"apps": 15, "tasks": 31, "trainings": 6})).is_ok());
        for bad in [
            json!({"apps": 16}),
            json!({"consumption": 1}),
            json!({"trainings": 1}),
            json!({"nope": 1}),
            json!({"apps": -1}),
            json!({"apps": "15"}),
            json!([1]),
        ] {
            assert!(Permissions::parse("permissions", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn union_and_cover_work_bitwise() {
        let read = Permissions::parse("p", &json!({"apps": READ})).unwrap();
        let write = Permissions::parse("p", &json!({"apps": UPDATE})).unwrap();
        let both = read.union(&write);
        assert!(both.has(Resource::APPS, READ | UPDATE));
        assert!(both.covers(&read) && !read.covers(&both));
        assert!(Permissions::all().covers(&both));
        assert_eq!(Permissions::from_stored(&both.to_json().to_string()), both);
    }
}
