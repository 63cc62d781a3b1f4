"""Benchmarks: runners that measure pgembed inside PostgreSQL and report figures with their parameters."""
