"""Universal Behavioral Profiles: one dense vector per user from e-commerce event logs."""

__version__ = "0.1.0"
