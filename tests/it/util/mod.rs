//! Helpers for the end-to-end tests, by concern: where things are ([`paths`]), running our
//! binaries and external tools ([`commands`]), inspecting and running images ([`images`]),
//! and the services the tests need ([`services`]). Everything is re-exported here, so a test
//! module needs only `use crate::util::*;`.
#![allow(dead_code)]

pub mod commands;
pub mod images;
pub mod paths;
pub mod services;

pub use commands::*;
pub use images::*;
pub use paths::*;
pub use services::*;
