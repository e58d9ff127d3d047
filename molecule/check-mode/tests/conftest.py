"""Fixtures and failure diagnostics shared by every scenario's verifier."""

pytest_plugins = ["tests.integration.fixtures"]
