"""First-party dataset readers, registered through the public ``affectkit`` entry point."""

from __future__ import annotations

from affectkit import Registry, hookimpl

from .dmer import DmerConfig, DmerReader
from .dmer_raw import DmerRawConfig, DmerRawReader
from .e4 import E4Config, E4Reader
from .synthetic import SyntheticConfig, SyntheticReader
from .wesad import WesadConfig, WesadReader


@hookimpl
def affectkit_register(registry: Registry) -> None:
    registry.register("dataset", "synthetic", SyntheticReader, SyntheticConfig, tags={"embedded"})
    registry.register("dataset", "dmer", DmerReader, DmerConfig, tags={"files", "real"})
    registry.register("dataset", "dmer-raw", DmerRawReader, DmerRawConfig, tags={"files", "real"})
    registry.register("dataset", "wesad", WesadReader, WesadConfig, tags={"files", "real"})
    registry.register("dataset", "e4", E4Reader, E4Config, tags={"files", "real", "stream"})
