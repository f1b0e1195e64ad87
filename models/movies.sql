{{ config(materialized='view', tags=['movies']) }}
select
    Series_Title as title,
    Released_Year as year,
    Genre as genre,
    IMDB_Rating as rating,
    Overview as overview
from {{ ref('imdb_top_1000') }}
