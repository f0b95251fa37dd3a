"""Reporting: the one record of a benchmark's result (`record`), and what is rendered from it."""
