"""Sequential encoder: a causal Transformer over each user's event stream (docs/methods.md §A)."""
