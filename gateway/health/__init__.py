"""Is it healthy: the breakers in front of Redis and Vault, the Redis clients behind them, /health's
readiness probes, queue depth and age, and the Prometheus metrics."""
