"""Connectors: one module per target system, each translating its errors once, at its edge."""
