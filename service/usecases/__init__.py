"""Use cases: what the API and the CLI do, on a session and the live guard; no HTTP knowledge here."""
