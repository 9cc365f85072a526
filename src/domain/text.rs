//! The value types of request fields. Each one checks itself while it is deserialized, so a
//! request struct made of them is valid once it exists, and the error names the field's path.
//!
//! Every text field has a maximum length: without one a single client can make every list answer
//! as large as the body limit times the number of rows.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// The documented maximum lengths (in characters) of text fields.
pub mod limits {
    /// Labels of organizations, roles, apps, deployments and machine accounts.
    pub const LABEL: usize = 200;
    /// E-mail addresses (RFC 5321 path limit).
    pub const EMAIL: usize = 254;
    /// First names, surnames and titles.
    pub const PERSON: usize = 100;
    /// Passwords (PBKDF2 would hash any length; the bound keeps a login cheap to refuse).
    pub const PASSWORD: usize = 1024;
    /// URLs of subscriptions.
    pub const URL: usize = 2048;
    /// Free-text messages (ping, hello, maintenance).
    pub const MESSAGE: usize = 1000;
    /// Usernames and organization names as typed into a login (checked against stored names).
    pub const LOGIN_NAME: usize = 50;
    /// An RSA public key in PEM (4096-bit keys are about 800 characters).
    pub const PUBLIC_KEY: usize = 8192;
    /// Paths of `fs` origins.
    pub const PATH: usize = 1024;
    /// `originPrefix` of a deployment.
    pub const PREFIX: usize = 200;
    /// Short identifiers: types, S3 regions, endpoints, buckets, access key ids.
    pub const SHORT: usize = 255;
    /// Secrets to seal: S3 secret keys, CDN download-auth keys.
    pub const SECRET: usize = 1024;
}

/// A string of at most `MAX` characters.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// A value that does not come from a request (stored, or built by the server): not checked.
    pub fn trusted(value: &str) -> Self {
        Text(value.to_string())
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> Deref for Text<MAX> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Never prints the value: a text field may be a password or a secret key.
impl<const MAX: usize> fmt::Debug for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({} chars)", self.0.chars().count())
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.chars().count() > MAX {
            return Err(de::Error::custom(format!("must be at most {MAX} characters")));
        }
        Ok(Text(text))
    }
}

fn name_ok(value: &str, extra: &[char]) -> bool {
    (2..=50).contains(&value.chars().count())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
}

/// Why a name was refused, as the API says it.
pub const NAME_RULE: &str = "must be 2 to 50 letters, digits and _";
pub const DEPLOYMENT_NAME_RULE: &str = "must be 2 to 50 letters, digits, _, [ and ]";
/// The patterns of API.md §1.3, for the OpenAPI document.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_]{2,50}$";
pub const DEPLOYMENT_NAME_PATTERN: &str = r"^[A-Za-z0-9_\[\]]{2,50}$";

/// An organization, user, role, app or subscription name: `^[A-Za-z0-9_]{2,50}$`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// A deployment name: `^[A-Za-z0-9_\[\]]{2,50}$`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DeploymentName(String);

macro_rules! name_type {
    ($ty:ident, $extra:expr, $rule:expr) => {
        impl $ty {
            /// Checks a name that did not come through deserialization (a path segment).
            pub fn parse(value: &str) -> Result<Self, &'static str> {
                if name_ok(value, $extra) {
                    Ok($ty(value.to_string()))
                } else {
                    Err($rule)
                }
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $ty::parse(&text).map_err(de::Error::custom)
            }
        }
    };
}

name_type!(Name, &[], NAME_RULE);
name_type!(DeploymentName, &['[', ']'], DEPLOYMENT_NAME_RULE);

/// A plausible e-mail address of at most 254 characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let e = String::deserialize(d)?;
        let plausible = e.chars().count() <= limits::EMAIL
            && !e.chars().any(char::is_whitespace)
            && e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
        if !plausible {
            return Err(de::Error::custom("must be an email address"));
        }
        Ok(Email(e))
    }
}

/// A whole number within `MIN..=MAX`. Only a JSON number: `"5"` is a wrong type, not a 5; `5.0`
/// is a 5, as JSON Schema's `integer` says (a number with a zero fractional part).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Within<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> Within<MIN, MAX> {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Within<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WithinVisitor::<MIN, MAX>)
    }
}

struct WithinVisitor<const MIN: i64, const MAX: i64>;

impl<const MIN: i64, const MAX: i64> WithinVisitor<MIN, MAX> {
    fn out_of_range<E: de::Error>() -> E {
        E::custom(format!("must be a whole number from {MIN} to {MAX}"))
    }
}

impl<const MIN: i64, const MAX: i64> de::Visitor<'_> for WithinVisitor<MIN, MAX> {
    type Value = Within<MIN, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number from {MIN} to {MAX}")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        if (MIN..=MAX).contains(&n) {
            Ok(Within(n))
        } else {
            Err(Self::out_of_range())
        }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        i64::try_from(n).map_err(|_| Self::out_of_range()).and_then(|n| self.visit_i64(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        // Both bounds are small, so a whole f64 within them converts exactly.
        if n.fract() == 0.0 && (MIN as f64..=MAX as f64).contains(&n) {
            Ok(Within(n as i64))
        } else {
            Err(Self::out_of_range())
        }
    }
}

/// A list of 1 to `MAX` items. Deserializing stops at item `MAX + 1`, so an oversized list costs
/// no more memory than an accepted one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Items<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> Items<T, MAX> {
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Deref for Items<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Items<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemsVisitor<T, const MAX: usize>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const MAX: usize> de::Visitor<'de> for ItemsVisitor<T, MAX> {
            type Value = Items<T, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of 1 to {MAX} items")
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX).min(1024));
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(de::Error::custom(format!("must have at most {MAX} items")));
                    }
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("must have at least one item"));
                }
                Ok(Items(items))
            }
        }

        d.deserialize_seq(ItemsVisitor::<T, MAX>(std::marker::PhantomData))
    }
}

impl<T: JsonSchema, const MAX: usize> JsonSchema for Items<T, MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Items{MAX}_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let items = generator.subschema_for::<T>();
        json_schema!({"type": "array", "items": items, "minItems": 1, "maxItems": MAX})
    }
}

// The JSON Schemas of these types carry their limits, so the OpenAPI document states exactly what
// the deserializer enforces.

/// An inline JSON Schema for a value type: `inline_schema!(Type, "Name", {schema})`.
macro_rules! inline_schema {
    ($ty:ty, $name:expr, $schema:tt) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

impl<const MAX: usize> JsonSchema for Text<MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Text{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "maxLength": MAX})
    }
}

impl<const MIN: i64, const MAX: i64> JsonSchema for Within<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Within{MIN}To{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }
}

/// What [`Email`] accepts, as a pattern (a `format: email` would promise more than is checked).
pub const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]*\.[^@\s]*$";

inline_schema!(Name, "Name", {"type": "string", "pattern": NAME_PATTERN});
inline_schema!(DeploymentName, "DeploymentName", {"type": "string", "pattern": DEPLOYMENT_NAME_PATTERN});
inline_schema!(Email, "Email", {"type": "string", "maxLength": limits::EMAIL, "pattern": EMAIL_PATTERN});

/// For PATCH fields where `null` means "remove": absent is `None`, `null` is `Some(None)`. Use
/// with `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// For optional fields where `null` means nothing: absent is `None`, `null` is refused like any
/// other wrong type, so the document can say `"type": "string"` and mean it. Use with
/// `#[serde(default, deserialize_with = "not_null")]` and `#[schemars(with = "T")]`.
pub fn not_null<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_patterns() {
        for good in ["ab", "acme_games", "A1", &"x".repeat(50)] {
            assert!(Name::parse(good).is_ok(), "{good}");
        }
        for bad in ["a", "", "with space", "dash-name", "ünïcode", &"x".repeat(51), "br[ack]et"] {
            assert!(Name::parse(bad).is_err(), "{bad}");
        }
        assert!(DeploymentName::parse("cdn[eu]").is_ok());
        assert!(DeploymentName::parse("cdn-eu").is_err());
    }

    #[test]
    fn text_longer_than_its_limit_is_refused() {
        assert!(serde_json::from_str::<Text<3>>("\"abc\"").is_ok());
        assert!(serde_json::from_str::<Text<3>>("\"äöü\"").is_ok(), "characters, not bytes");
        let err = serde_json::from_str::<Text<3>>("\"abcd\"").unwrap_err();
        assert!(err.to_string().starts_with("must be at most 3 characters"), "{err}");
    }

    #[test]
    fn numbers_must_be_numbers_within_range() {
        assert_eq!(serde_json::from_str::<Within<1, 100>>("5").unwrap().get(), 5);
        assert!(serde_json::from_str::<Within<1, 100>>("\"5\"").is_err());
        assert!(serde_json::from_str::<Within<1, 100>>("0").is_err());
        assert!(serde_json::from_str::<Within<1, 100>>("5.5").is_err());
    }
}
