"""The SQL of :mod:`.bulk`: batch lines in DuckDB, from the input file to the output files.

Tables (in memory), each dropped once done with, since DuckDB keeps the memory of deleted rows:
``{lines}`` (a batch's lines: the custom_id and body of each line DuckDB reads as Python would,
the whole line of any other) and ``{shapes}`` (one body per shape), named for their batch and
put in the statements by :mod:`.bulk`; ``faults`` (the fault kind of the lines being run),
``chunk`` (the result lines being run, with the record of each run) and ``done`` (a batch's
result lines as it finishes), while they are used.
"""

from __future__ import annotations

CHUNK_TABLES = (
    "CREATE OR REPLACE TEMP TABLE faults AS "
    "SELECT unnest(?::BIGINT[]) AS idx, unnest(?::VARCHAR[]) AS kind",
    "CREATE OR REPLACE TEMP TABLE chunk (idx BIGINT, status INTEGER, line VARCHAR, run VARCHAR)",
)
DONE_TABLE = (
    "CREATE OR REPLACE TEMP TABLE done "
    "(line VARCHAR, ok BOOLEAN, sort VARCHAR, prompt BIGINT, completion BIGINT)"
)

# Every line of a file as it is: no quote, no escape, a delimiter JSON never holds unescaped.
LINES = (
    "read_csv($path, columns = {'line': 'VARCHAR'}, delim = chr(0), quote = '', escape = '', "
    "header = false, auto_detect = false, new_line = '\\n', max_line_size = 1073741824)"
)

# A batch input file's lines, numbered as validation.validate numbers them (blank lines are not
# lines). A line is `ok` when Python would read it the same and it passes the line checks: a JSON
# object (without what only DuckDB forgives, a trailing comma), a string custom_id, method POST,
# the batch's url and an object body. `{shape}` is shapes.shape_sql over `body`. In these
# statements, `{name}` is a table's name or SQL that bulk.py puts in.
READ = f"""
CREATE OR REPLACE TEMP TABLE staged AS
WITH numbered AS (
    SELECT row_number() OVER (ORDER BY ordinality) - 1 AS idx, line
    FROM {LINES} WITH ORDINALITY
    WHERE NOT regexp_full_match(coalesce(line, ''), '[ \\t\\n\\r\\x0b\\x0c]*')
), parsed AS (
    SELECT idx, line, try(json_extract(line, ['$.custom_id', '$.method', '$.url', '$.body'])) AS f
    FROM numbered
), checked AS MATERIALIZED (
    SELECT idx, line, f[1]::VARCHAR AS custom_id, f[4]::VARCHAR AS body,
           coalesce(json_type(f[1]) = 'VARCHAR' AND json_type(f[2]) = 'VARCHAR'
                    AND (f[2] ->> '$') = 'POST' AND json_type(f[3]) = 'VARCHAR'
                    AND (f[3] ->> '$') = $endpoint AND json_type(f[4]) = 'OBJECT'
                    AND NOT regexp_matches(line, ',[ \\t\\n\\r]*[\\]}}]'), false) AS ok
    FROM parsed
)
SELECT idx, custom_id, CASE WHEN ok THEN body END AS body, CASE WHEN ok THEN NULL ELSE line END
       AS line, ok, CASE WHEN ok THEN {{shape}} END AS shape
FROM checked
"""
# In steps: DuckDB would compute a shape once for each use of it in one statement.
KEEP = (
    "CREATE TABLE {lines} AS SELECT idx, custom_id, body, line, ok, md5(shape) AS shape "
    "FROM staged",
    "CREATE TABLE {shapes} AS SELECT md5(shape) AS shape, any_value(shape) AS body FROM staged "
    "WHERE ok GROUP BY md5(shape)",
    "DROP TABLE staged",
)
KEEP_PYTHON = (
    "CREATE TABLE {lines} AS SELECT unnest(range(?)) AS idx, NULL::VARCHAR AS custom_id, "
    "NULL::VARCHAR AS body, unnest(?::VARCHAR[]) AS line, false AS ok, NULL::VARCHAR AS shape",
    "CREATE TABLE {shapes} (shape VARCHAR, body VARCHAR)",
)
SUMMARY = """
SELECT count(*), count(*) FILTER (WHERE NOT ok), count(DISTINCT custom_id) FILTER (WHERE ok)
FROM {lines}
"""
FIRST = "SELECT body, line FROM {lines} WHERE idx = 0"
SHAPES = "SELECT shape, body FROM {shapes}"
PLAIN = "ok AND list_contains($plain::VARCHAR[], shape)"
TOKENS = f"SELECT sum({{tokens}}) FROM {{lines}} WHERE {PLAIN}"
NOT_PLAIN = f"SELECT body, line FROM {{lines}} WHERE NOT ({PLAIN})"
FORGET = ("DROP TABLE IF EXISTS {lines}", "DROP TABLE IF EXISTS {shapes}")

# Running lines first to last - 1.
RANGE = "l.idx >= $first AND l.idx < $last"
SHAPES_IN_RANGE = f"""
SELECT DISTINCT l.shape, s.body FROM {{lines}} AS l JOIN {{shapes}} AS s USING (shape)
WHERE {RANGE} AND l.ok
"""
# The lines of one shape, for bulk_replies' columns; `run` is the server's record of each.
SHAPE_LINES = f"""
SELECT *, '{{"batch_id": ' || to_json($batch)::VARCHAR || ', "custom_id": ' || custom_id
          || ', "body_sha256": "' || digest || '"}}' AS run
FROM (
    SELECT l.idx, l.custom_id, l.body, sha256(l.body) AS digest, f.kind
    FROM {{lines}} AS l LEFT JOIN faults AS f USING (idx)
    WHERE {RANGE} AND l.ok AND l.shape = $shape
)
"""
ANSWER = "INSERT INTO chunk SELECT idx, {status}, {line}, run FROM ({select})"
OTHER_LINES = f"""
SELECT l.idx, l.custom_id, l.body, l.line FROM {{lines}} AS l
WHERE {RANGE} AND NOT (l.ok AND list_contains($answered::VARCHAR[], l.shape)) ORDER BY l.idx
"""
CHUNK = (
    "INSERT INTO chunk SELECT unnest(?::BIGINT[]), unnest(?::INTEGER[]), unnest(?::VARCHAR[]), "
    "unnest(?::VARCHAR[])"
)
SUCCEEDED = "SELECT count(*) FILTER (WHERE status = 200), count(*) FROM chunk"
DROP_CHUNK = ("DROP TABLE IF EXISTS faults", "DROP TABLE IF EXISTS chunk")
WRITE = "COPY ({query}) TO $target (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '')"
RESULT_LINES = "SELECT line FROM chunk ORDER BY idx"
RUNS = "SELECT run FROM chunk ORDER BY idx"

# Finishing: the result lines read back, each parsed once; lines that never ran added.
RESULTS = f"""
INSERT INTO done
SELECT line, coalesce(f[1] = '200', false), md5($salt || line),
       coalesce(f[2], f[3], '0')::BIGINT, coalesce(f[4], f[5], '0')::BIGINT
FROM (
    SELECT line, json_extract_string(line, [
        '$.response.status_code', '$.response.body.usage.prompt_tokens',
        '$.response.body.usage.input_tokens', '$.response.body.usage.completion_tokens',
        '$.response.body.usage.output_tokens']) AS f
    FROM {LINES}
)
"""
UNRUN = """
INSERT INTO done SELECT line, false, md5($salt || line), 0, 0 FROM (
    SELECT {line} AS line FROM {lines} WHERE idx >= $first AND ok
)
"""
UNRUN_PYTHON = "SELECT line FROM {lines} WHERE idx >= ? AND NOT ok"
UNRUN_COUNT = "SELECT count(*) FROM {lines} WHERE idx >= ?"
DONE_PYTHON = "INSERT INTO done SELECT line, false, md5(? || line), 0, 0 FROM unnest(?) AS t(line)"
COUNTS = """
SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok),
       coalesce(sum(prompt) FILTER (WHERE ok), 0), coalesce(sum(completion) FILTER (WHERE ok), 0)
FROM done
"""
# Answered lines in a shuffled order (the same for the same lines), less the first `lost`.
ANSWERED = "SELECT line, prompt, completion FROM done WHERE ok ORDER BY sort OFFSET $lost"
OUTPUT = f"SELECT line FROM ({ANSWERED})"
ERRORS = "SELECT line FROM done WHERE NOT ok ORDER BY sort"
DROP_DONE = "DROP TABLE IF EXISTS done"
USAGE = f"SELECT coalesce(sum(prompt), 0), coalesce(sum(completion), 0) FROM ({ANSWERED})"
