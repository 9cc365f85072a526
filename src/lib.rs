//! rockit-edge: a self-contained ROCKIT Edge server. The binary (`main.rs`) is a thin CLI over
//! these modules; data flows HTTP → handler → service → store.

pub mod api_load;
pub mod auth;
pub mod backups;
pub mod bundle;
pub mod commands;
pub mod config;
pub mod connections;
pub mod domain;
pub mod engine;
pub mod error;
pub mod http;
pub mod identity;
pub mod instance;
pub mod limits;
pub mod logging;
pub mod malloc;
pub mod metrics;
pub mod outbound;
pub mod protocol;
pub mod publish;
pub mod resources;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod system_settings;
pub mod systemd;
pub mod tasks;
pub mod tls;
pub mod workers;
