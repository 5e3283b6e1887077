"""Sequential encoder: a causal Transformer over each user's event stream (methods.md §A)."""
