"""Benchmarks that print side-by-side figures; ``python -m bench`` runs them all."""
