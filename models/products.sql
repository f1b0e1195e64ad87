{{ config(materialized='table', tags=['furniture']) }}
-- One row per product: the scraped data repeats some listings.
select asin, any_value(title) as title, any_value(primary_image) as image_url
from {{ ref('amazon_furniture_dataset') }}
group by asin
