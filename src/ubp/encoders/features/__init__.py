"""The handcrafted `features` block; see `encoder.py`."""

from ubp.encoders.features.encoder import FeaturesEncoder

__all__ = ["FeaturesEncoder"]
