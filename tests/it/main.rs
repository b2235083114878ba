//! End-to-end tests: the real binaries against the real Go toolchain, a real registry started
//! by scripts/test.sh, and images checked with skopeo and run with umoci + runc.

mod apply;
mod auth;
mod bad_input;
mod build;
mod build_errors;
mod cloud;
mod debug;
mod dispatch;
mod fault_proxy;
mod faults;
mod first_hour;
mod gocache;
mod image_options;
mod interop;
mod interrupts;
mod kodata;
mod krew;
mod layers;
mod layout_base;
mod limits;
mod local;
mod output_files;
mod package;
mod parity;
mod platforms;
mod registries;
mod release;
mod resolve;
mod sbom;
mod shared_builds;
mod sign;
mod token_server;
mod util;
mod watch;
mod windows;
