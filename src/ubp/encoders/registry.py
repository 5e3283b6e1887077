"""Block name → encoder class. Adding a block is one module plus one line here."""

from __future__ import annotations

import importlib
from typing import Any

# name: "module:Class" (imported lazily so the CLI starts fast and torch loads only when needed)
_ENTRIES: dict[str, str] = {
    "random": "ubp.encoders.random:RandomEncoder",
    "oracle": "ubp.encoders.oracle:OracleEncoder",
    "baseline": "ubp.encoders.baseline:BaselineEncoder",
    "counts": "ubp.encoders.counts:CountsEncoder",
    "features": "ubp.encoders.features:FeaturesEncoder",
    "autoencoder": "ubp.encoders.autoencoder.encoder:AutoencoderEncoder",
    "graph": "ubp.encoders.graph.encoder:GraphEncoder",
    "emde": "ubp.encoders.emde.encoder:EmdeEncoder",
    "sequence": "ubp.encoders.sequence.encoder:SequenceEncoder",
    "dcn": "ubp.encoders.dcn.encoder:DcnEncoder",
}


class _Registry(dict):
    def __missing__(self, name: str) -> Any:
        if name not in _ENTRIES:
            raise KeyError(f"unknown block {name!r}; known blocks: {', '.join(sorted(_ENTRIES))}")
        module, cls = _ENTRIES[name].split(":")
        value = getattr(importlib.import_module(module), cls)
        self[name] = value
        return value

    def names(self) -> list[str]:
        return list(_ENTRIES)


REGISTRY = _Registry()


def create(name: str, **options: Any) -> Any:
    """An unfitted encoder of block `name` with its options (unknown options are an error)."""
    return REGISTRY[name](**options)
