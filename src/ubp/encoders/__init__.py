"""Profile blocks. `REGISTRY` maps a block name to its encoder class."""

from ubp.encoders.registry import REGISTRY, create

__all__ = ["REGISTRY", "create"]
