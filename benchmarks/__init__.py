"""Load benchmarks for ringback (not part of the installed package)."""
