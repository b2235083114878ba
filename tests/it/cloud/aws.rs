//! aws: filled in with issue 22.
