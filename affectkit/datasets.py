"""Build a dataset from its config through the registry, with caching."""

from __future__ import annotations

from .cache import cache_key, load_cached, store
from .config import DatasetConfig
from .data import EmotionDataset
from .interfaces import DatasetReader
from .plugins import get_registry
from .registry import ComponentConfig


def make_reader(config: ComponentConfig) -> DatasetReader:
    data_dir = getattr(config, "data_dir", None)
    return get_registry().get("dataset", config.name).build(config, data_dir=data_dir)


def load_dataset(config: ComponentConfig, *, use_cache: bool = True) -> EmotionDataset:
    reader = make_reader(config)
    cache = use_cache and reader.cacheable and getattr(config, "cache", True)
    if cache:
        params = config.model_dump(mode="json", exclude={"cache"})
        files = reader.source_files()
        key = cache_key(config.name, type(reader).version, params, files)
        hit = load_cached(key)
        if hit is not None:
            return hit
    data = reader.load()
    if cache:
        store(key, data)
    return data


__all__ = ["DatasetConfig", "load_dataset", "make_reader"]
