//! google: filled in with issue 22.
