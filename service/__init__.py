"""lightguard's HTTP service: settings, database, repositories, use cases, API routers and the admin CLI."""
