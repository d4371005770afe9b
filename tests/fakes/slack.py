"""Fake slack server for tests (see contract.py)."""
