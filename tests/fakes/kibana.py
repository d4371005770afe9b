"""Fake kibana server for tests (see contract.py)."""
