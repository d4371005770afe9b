"""Fake datadog server for tests (see contract.py)."""
