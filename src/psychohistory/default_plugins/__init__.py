"""The built-in matchers, rewards and backends, registered through the same hooks as plugins."""
