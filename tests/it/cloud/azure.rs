//! azure: filled in with issue 22.
