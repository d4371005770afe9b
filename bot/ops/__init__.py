"""Operator tools: check, mappings import/export/verify, the shell."""
