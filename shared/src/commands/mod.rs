//! What each plugin does, from parsed arguments to printed results.

pub mod build;
pub mod dispatch;
pub mod resolve;
mod setup;

pub use setup::Session;
