//! Helpers live in it/ ; this crate exists only for its integration tests.
