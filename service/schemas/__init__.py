"""HTTP request and response schemas (pydantic), one module per resource family."""
