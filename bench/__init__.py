"""Benchmarks that report figures; tests assert behaviour (see CONVENTIONS.md). Run from the repo root."""
