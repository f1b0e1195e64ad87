{{ config(materialized='view', tags=['movies']) }}
-- Every movie with its categories and summary; a movie not enriched yet has NULLs there.
select m.Series_Title as title, m.Released_Year as year, m.Genre as genre,
       m.IMDB_Rating as rating, c.categories, c.summary
from {{ ref('imdb_top_1000') }} as m
left join {{ ref('movie_categories') }} as c
    on c.title = m.Series_Title and c.year = m.Released_Year
