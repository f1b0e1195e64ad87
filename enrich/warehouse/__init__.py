"""DuckDB and SQL text: the warehouse every other layer reads and writes through.

The only importers of duckdb (:mod:`.db`) and sqlglot (:mod:`.sql`).
"""
