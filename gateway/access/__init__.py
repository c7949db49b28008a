"""Who may call: credentials, the Vault-backed identity and its cache, the JWT check, rate limits, and the route
decorators that declare who may call each route."""
