"""Compatibility layers for code written for other job managers (PyEDB)."""
