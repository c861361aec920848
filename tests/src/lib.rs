//! End-to-end tests across Vigil's crates live in `tests/tests/`.
