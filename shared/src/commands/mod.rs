//! What each plugin does, from parsed arguments to printed results.

pub mod apply;
pub mod build;
pub mod completion;
pub mod delete;
pub mod dispatch;
mod helper_link;
pub mod login;
pub mod logout;
pub mod resolve;
mod setup;

pub use setup::Session;
