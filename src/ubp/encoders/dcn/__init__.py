"""The `dcn` block: DCN-v2 over piecewise-linear encoded features, trained on an inner split (docs/methods.md §E)."""
