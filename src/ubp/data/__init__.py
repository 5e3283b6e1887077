"""Data stages: raw validation, the prepared store, the time split and the input window."""
