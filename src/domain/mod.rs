//! Plain types and rules: names, permission bitmasks, validation. No actix, no SQL.

pub mod names;
pub mod origins;
pub mod permissions;
pub mod public_key;
pub mod text;
