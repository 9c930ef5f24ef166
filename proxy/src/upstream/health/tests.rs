//! Health-check tests.
