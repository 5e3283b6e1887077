"""Block name → encoder class, options dataclass and one-line description.

Adding a block is one module, one options dataclass (`ubp.encoders.options`) and one line here.
Encoder classes are imported lazily (torch loads only when a neural block is used); the options
classes are light, so a recipe's options are checked before any data or model is touched.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ubp.config import ConfigError, from_dict
from ubp.encoders.options import (
    AutoencoderOptions, BaselineOptions, CountsOptions, DcnOptions, EmdeOptions, FeaturesOptions, GraphOptions,
    NoHistoryOptions, OracleOptions, RandomOptions,
)
from ubp.encoders.sequence.config import SequenceConfig, sequence_options


@dataclass(frozen=True)
class BlockEntry:
    encoder: str  # "module:Class"
    options: type  # frozen dataclass of the block's options
    description: str
    build: Callable[[dict, str], Any] | None = None  # options from a recipe table, when not plain from_dict


_ENTRIES: dict[str, BlockEntry] = {
    "random": BlockEntry("ubp.encoders.random:RandomEncoder", RandomOptions,
                         "Gaussian noise per client id (the floor)"),
    "oracle": BlockEntry("ubp.encoders.oracle:OracleEncoder", OracleOptions,
                         "the synthetic world's hidden user state (a ceiling; generated worlds only)"),
    "baseline": BlockEntry("ubp.encoders.baseline:BaselineEncoder", BaselineOptions,
                           "the organisers' aggregated-features baseline"),
    "counts": BlockEntry("ubp.encoders.counts:CountsEncoder", CountsOptions,
                         "plain counts over top categories, SKUs and price buckets, recency and frequency"),
    "features": BlockEntry("ubp.encoders.features:FeaturesEncoder", FeaturesOptions,
                           "~1.1k handcrafted and engineered behaviour features"),
    "autoencoder": BlockEntry("ubp.encoders.autoencoder.encoder:AutoencoderEncoder", AutoencoderOptions,
                              "residual denoising autoencoder over another block"),
    "graph": BlockEntry("ubp.encoders.graph.encoder:GraphEncoder", GraphOptions,
                        "TwHIN user-item graph embedding (cart and purchase relations)"),
    "emde": BlockEntry("ubp.encoders.emde.encoder:EmdeEncoder", EmdeOptions,
                       "EMDE density sketches over Cleora item vectors, compressed by SVD"),
    "sequence": BlockEntry("ubp.encoders.sequence.encoder:SequenceEncoder", SequenceConfig,
                           "causal Transformer over the event sequence (NIP / NUP / NETP / TDP objectives)",
                           build=sequence_options),
    "no_history": BlockEntry("ubp.encoders.no_history:NoHistoryEncoder", NoHistoryOptions,
                             "1 for a client with no event in the window (added by the profile when some have none)"),
    "dcn": BlockEntry("ubp.encoders.dcn.encoder:DcnEncoder", DcnOptions,
                      "DCN-v2 over another block's columns, trained on open-task labels of an inner split"),
}


class _Registry(dict):
    def __missing__(self, name: str) -> Any:
        if name not in _ENTRIES:
            raise ConfigError(f"unknown block {name!r}; known blocks: {', '.join(sorted(_ENTRIES))}")
        module, cls = _ENTRIES[name].encoder.split(":")
        value = getattr(importlib.import_module(module), cls)
        self[name] = value
        return value

    def names(self) -> list[str]:
        return list(_ENTRIES)


REGISTRY = _Registry()


def entry(name: str) -> BlockEntry:
    if name not in _ENTRIES:
        raise ConfigError(f"unknown block {name!r}; known blocks: {', '.join(sorted(_ENTRIES))}")
    return _ENTRIES[name]


def block_options(name: str, options: dict[str, Any], where: str | None = None) -> Any:
    """The options dataclass of block `name` from a recipe's table; any bad name, type or value is a ConfigError.

    A block registered at run time without an entry here (a test stand-in) takes no options."""
    where = where or f"block {name!r}"
    if name not in _ENTRIES and name in REGISTRY:
        if options:
            raise ConfigError(f"{where}: block {name!r} takes no options, got {sorted(options)}")
        return None
    block = entry(name)
    return block.build(options, where) if block.build else from_dict(block.options, options, where)


def create(name: str, **options: Any) -> Any:
    """An unfitted encoder of block `name` with its options (checked as a recipe's are)."""
    built = block_options(name, options)
    return REGISTRY[name]() if built is None else REGISTRY[name](built)


def describe_blocks() -> list[str]:
    """`ubp blocks`: each block, its description and its options (type, default, help)."""
    lines = []
    for name, block in _ENTRIES.items():
        lines.append(f"{name}: {block.description}")
        for f in dataclasses.fields(block.options):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            lines.append(f"    {f.name} ({kind}, default {default!r}): {f.metadata.get('help', '')}")
    return lines
