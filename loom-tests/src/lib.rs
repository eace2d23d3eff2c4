//! Loom models of the shmlane protocols live in `tests/`; this crate has no code of its own.
