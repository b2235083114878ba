//! What each plugin does, from parsed arguments to printed results.

pub mod build;
pub mod dispatch;
mod helper_link;
pub mod login;
pub mod logout;
mod setup;

pub use setup::Session;
