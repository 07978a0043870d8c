"""Configuration: sources, connections and mappings from YAML, validated with marshmallow."""

from core.config.loader import load_config
from core.config.model import (
    Config,
    ConnectionConfig,
    FieldSpec,
    MappingConfig,
    MatchSpec,
    RateLimit,
    RetryPolicy,
    SourceConfig,
    WhenSpec,
)

__all__ = [
    "Config",
    "ConnectionConfig",
    "FieldSpec",
    "MappingConfig",
    "MatchSpec",
    "RateLimit",
    "RetryPolicy",
    "SourceConfig",
    "WhenSpec",
    "load_config",
]
