//! What each plugin does, from parsed arguments to printed results.

pub mod apply;
pub mod build;
mod compat;
pub mod completion;
pub mod create;
pub mod delete;
pub mod dispatch;
pub mod gocache;
mod helper_link;
pub mod kubectl;
pub mod login;
pub mod logout;
pub mod resolve;
pub mod run;
mod setup;
mod signing;
mod watch;

pub use setup::Session;
