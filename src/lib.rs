//! rockit-edge: a self-contained ROCKIT Edge server. The binary (`main.rs`) is a thin CLI over
//! these modules; data flows HTTP → handler → service → store.

pub mod auth;
pub mod commands;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod http;
pub mod identity;
pub mod instance;
pub mod logging;
pub mod outbound;
pub mod resources;
pub mod server;
pub mod state;
pub mod store;
pub mod systemd;
pub mod tasks;
pub mod workers;
