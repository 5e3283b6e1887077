"""A synthetic e-commerce world in the raw challenge layout, with the hidden state that generated it.

Modules, in the order the world is built: `params` (sizes per scale), `ids` (scattered int64 ids),
`sampling` (vectorised draws), `catalogue` (topics, categories, SKUs, URLs), `users` (hidden
per-user traits), `activity` (active/dormant days and session counts), `sessions` (ordered
events), `writer` (streamed parquet), `oracle` (the hidden state as an entry), `world` (`generate`).
"""
