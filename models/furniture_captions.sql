{{ config(
    materialized='enrich',
    tags=['furniture'],
    unique_key='asin',
    model='gpt-4o-mini',
    temperature=0.2,
    max_tokens=300,
    system_prompt_file='prompts/caption_product.md',
    output_column='caption',
) }}
-- The cookbook's second example: a caption from each product's image and title (vision).
select asin, title as prompt, image_url
from {{ ref('products') }}
