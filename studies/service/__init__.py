"""The study service: what the named studies search (catalogue, budgets), how their trials run
(the Ray trainable, the Optuna searcher, the supervised baseline) and how a driver keeps the
record right (reconciliation, the lease, progress)."""
