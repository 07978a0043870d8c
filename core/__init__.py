"""The plain core of crmhub: settings, configuration, the ledger, signatures, errors.

Nothing here imports app/, workers/ or connectors/ (tests/test_architecture.py enforces it).
"""
