"""The `lightguard` command line: serve, classify, admin, keys, train (entry point: service.cli.main:app)."""
