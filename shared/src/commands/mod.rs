//! What each plugin does, from parsed arguments to printed results.

pub mod build;
pub mod completion;
pub mod dispatch;
mod setup;

pub use setup::Session;
