"""A third-party affectkit plugin: the ``csv-windows`` dataset and the ``gated-mean`` fusion.

``csv-windows`` reads one CSV file per subject (layout in :mod:`.reader`); ``gated-mean``
is a fusion that any method composing registered fusions can use, e.g.
``affectkit bench --method mpcl --set method.fusion.name=gated-mean``.
"""

from __future__ import annotations

from affectkit import Registry, hookimpl

from .fusion import GatedMeanConfig, build_gated_mean
from .reader import CsvWindowsConfig, CsvWindowsReader


@hookimpl
def affectkit_register(registry: Registry) -> None:
    registry.register(
        "dataset",
        "csv-windows",
        CsvWindowsReader,
        CsvWindowsConfig,
        tags={"files", "example"},
        description="windows from one CSV per subject: subject,trial,window,<mod>.<feature>,"
        "rating.<emotion>",
    )
    registry.register(
        "fusion",
        "gated-mean",
        build_gated_mean,
        GatedMeanConfig,
        tags={"example"},
        description="primary tokens + per-token gated mean of each auxiliary modality",
    )
