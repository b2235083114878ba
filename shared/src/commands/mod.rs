//! What each plugin does, from parsed arguments to printed results.

pub mod apply;
pub mod build;
pub mod delete;
pub mod dispatch;
pub mod resolve;
mod setup;

pub use setup::Session;
