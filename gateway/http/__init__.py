"""How HTTP looks: the error envelope, route contracts and the OpenAPI document, request bodies, schemas,
security headers, and the one log line per request."""
