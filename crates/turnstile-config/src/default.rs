//! The built-in default configuration: what `turnstile init` writes to
//! `.crossbar/config.json`, and what the router runs without a configuration file.

use std::path::Path;

use crate::load::{absolute, load_with_base, Format};
use crate::model::NodeConfig;

/// The default configuration as JSON text: realm `realm1` whose role `anonymous` may do
/// everything, session statistics on with their defaults, a `web` transport on
/// 127.0.0.1:8080 with a WebSocket service at `/ws`, and a `rawsocket` transport on
/// 127.0.0.1:8081, both with all three serializers.
pub const DEFAULT_CONFIG_JSON: &str = include_str!("default_config.json");

/// What `turnstile init` writes: [`DEFAULT_CONFIG_JSON`] with the usage ledger on, in
/// `usage.sqlite` next to the configuration (the router worker's `ledger`). The embedded
/// default has no ledger: without a node directory the router writes no files.
pub const INIT_CONFIG_JSON: &str = include_str!("init_config.json");

/// The name the default configuration has in messages.
const ORIGIN: &str = "<built-in default configuration>";

/// [`DEFAULT_CONFIG_JSON`], loaded. Relative paths (it has none today) resolve against the
/// current directory.
pub fn default_config() -> NodeConfig {
    load_with_base(
        DEFAULT_CONFIG_JSON,
        Format::Json,
        Path::new(ORIGIN),
        &absolute(Path::new(".")),
        // It names no environment variables.
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("the built-in default configuration is invalid: {e}"))
}
