"""Fake xpanse server for tests (see contract.py)."""
