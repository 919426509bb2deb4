"""The core's own components (protocols and metrics), registered like any plugin."""

from __future__ import annotations

from .hookspecs import hookimpl
from .metrics import METRICS
from .protocols import (
    SampleRandom,
    SampleRandomConfig,
    SubjectCalibrated,
    SubjectCalibratedConfig,
    SubjectDependent,
    SubjectDependentConfig,
    SubjectIndependent,
    SubjectIndependentConfig,
)
from .registry import ComponentConfig, Registry


class MetricConfig(ComponentConfig):
    pass


@hookimpl
def affectkit_register(registry: Registry) -> None:
    registry.register(
        "protocol", "subject-independent", SubjectIndependent, SubjectIndependentConfig
    )
    registry.register("protocol", "subject-dependent", SubjectDependent, SubjectDependentConfig)
    registry.register("protocol", "sample-random", SampleRandom, SampleRandomConfig, tags={"leaky"})
    registry.register("protocol", "subject-calibrated", SubjectCalibrated, SubjectCalibratedConfig)
    for name, metric in METRICS.items():
        registry.register(
            "metric",
            name,
            lambda _cfg, _m=metric: _m,
            MetricConfig,
            tags={"higher" if metric.higher_is_better else "lower"},
            description=metric.description,
        )
