"""The batch pipeline: an enrich model's rows → Batch API request files → answers → a typed table.

Read in pipeline order: :mod:`.spec` (a model's config, resolved), :mod:`.request_lines` (rows to
JSONL), :mod:`.lifecycle` (every status a request can have, and the moves between them),
:mod:`.ledger` (run state in DuckDB), :mod:`.client` (the only importer of the openai SDK),
:mod:`.recovery`, :mod:`.submission`, :mod:`.collection`, :mod:`.following` (talking to the API),
:mod:`.answers` (output files to typed rows) and :mod:`.pipeline` (the steps of one build, as data).
It imports :mod:`enrich.warehouse` and nothing of the project core or the local server.
"""
