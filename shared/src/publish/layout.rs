//! The OCI layout sink (`--oci-layout-path`, the local store) is the layout medium's.

pub use crate::media::layout::Layout;
