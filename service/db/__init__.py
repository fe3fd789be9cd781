"""The database layer: engine and sessions, ORM models, repositories and the decision log's writer."""
