{#-
  materialized='enrich': send each row of the model's SELECT to an LLM through the OpenAI Batch API
  and build a typed table of the answers, with the same config keys as an enrich project's models.
  The run state lives in the target database's `_enrich` schema, so a second run sends only what is
  new or changed; with the enrich_ledger var (a DuckDB file, relative to the dbt project), requests
  and answers live in that file instead, shared by every target that names it (dev and prod do
  not pay twice for the same requests).

  The work is done in Python by enrich.hosts.dbt_materialization on this thread's connection; it
  leaves its outcome in the connection's variable `enrich_dbt_outcome`, and this macro reports it
  as dbt does: OK, a warning (failed rows over warn_if_failed), or an error in one line (a mistake,
  or failed rows over error_if_failed; the table is still built with what succeeded).

  Vars: enrich_offline (answer with enrich's local Batch API server in this process),
  enrich_dry_run, enrich_no_wait, enrich_max_cost (USD), enrich_prices ({model: {input, output}}),
  enrich_ledger (a shared ledger file).
-#}
{% materialization enrich, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {{ enrich.enrich_hooks(pre_hooks) }}
  {%- call statement('main', language='python') -%}
    {{- enrich.enrich_python(enrich.enrich_request(target_relation, compiled_code)) -}}
  {%- endcall -%}
  {%- set outcome = fromjson(run_query("SELECT getvariable('enrich_dbt_outcome')").columns[0].values()[0]) -%}
  {%- if outcome.status == 'error' -%}
    {%- do exceptions.raise_database_error(outcome.message) -%}
  {%- elif outcome.status == 'warn' -%}
    {%- do exceptions.warn(outcome.message) -%}
  {%- else -%}
    {%- do log(outcome.message, info=True) -%}
  {%- endif -%}
  {%- if outcome.built -%}
    {%- do persist_docs(target_relation, model) -%}
  {%- endif -%}
  {{ enrich.enrich_hooks(post_hooks) }}
  {%- set response = load_result('main').response -%}
  {%- set said = {'_message': outcome.summary, 'code': outcome.code, 'rows_affected': outcome.rows} -%}
  {%- do store_result('main', response=response.from_dict(said)) -%}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- Hooks run outside any dbt transaction: enrich commits its own steps as it goes. -#}
{% macro enrich_hooks(hooks) %}
  {%- for hook in hooks -%}
    {%- set rendered = render(hook.get('sql')) | trim -%}
    {%- if rendered | length > 0 -%}
      {%- call statement(auto_begin=False) -%}{{ rendered }}{%- endcall -%}
    {%- endif -%}
  {%- endfor -%}
{% endmacro %}


{% macro enrich_request(relation, query) %}
  {%- set names = ['enrich_offline', 'enrich_dry_run', 'enrich_no_wait', 'enrich_max_cost', 'enrich_prices', 'enrich_ledger'] -%}
  {%- set vars = {} -%}
  {%- for name in names -%}
    {%- do vars.update({name: var(name, none)}) -%}
  {%- endfor -%}
  {%- set given = invocation_args_dict.get('vars') -%}
  {{ return({
      'query': query,
      'target': relation.render(),
      'name': model['name'] ~ ('_v' ~ model['version'] if model.get('version') is not none else ''),
      'where': model['original_file_path'],
      'config': model['config'],
      'project_dir': invocation_args_dict.get('project_dir') or '.',
      'target_path': invocation_args_dict.get('target_path') or 'target',
      'full_refresh': should_full_refresh(),
      'empty': invocation_args_dict.get('empty') or false,
      'vars': vars,
      'vars_given': (given.keys() | list) if given is mapping else [],
  }) }}
{% endmacro %}


{#- dbt-duckdb runs this as a Python module: model(dbt, con) with con this thread's connection. -#}
{% macro enrich_python(request) -%}
import json

from enrich.hosts import dbt_materialization


class dbtObj:
    def __init__(self, load_df_function):
        pass


def model(dbt, con):
    dbt_materialization.build(con, json.loads({{ tojson(tojson(request)) }}))
    return con.sql("SELECT 1")  # a relation: dbt-duckdb then opens no cursor of its own for it


def materialize(df, con):
    pass  # build() made the table
{%- endmacro %}
