"""enrich run by other tools: dbt's ``materialized='enrich'`` (a dbt package shipped with enrich,
and the Python it calls on dbt-duckdb's connection)."""
