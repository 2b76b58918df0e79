//! Loads and validates a Crossbar.io-style node configuration (`.crossbar/config.json` or YAML).
//! (work in progress)

pub mod model;
pub use model::*;
