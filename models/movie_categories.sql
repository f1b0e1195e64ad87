{{ config(
    materialized='enrich',
    tags=['movies'],
    unique_key=['title', 'year'],
    model='gpt-4o-mini',
    temperature=0.1,
    system_prompt_file='prompts/categorize_movie.md',
    output={'categories': 'VARCHAR[]', 'summary': 'VARCHAR'},
) }}
-- The cookbook's first example: categories and a one-sentence summary from each overview.
select title, year, overview as prompt
from {{ ref('movies') }}
