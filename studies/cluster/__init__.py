"""The loopback cluster: PostgreSQL, a Ray head, Ray workers and the dashboard as processes."""
