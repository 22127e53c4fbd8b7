"""The bus runtime: broker, topics, policy, router, timers, metrics and the CLI."""
