"""Command lines: run a study, write its report, serve the dashboard."""
