"""One TOML file configures every rvz process; every key has a default.

The file is read and validated once, into frozen dataclasses that are handed down explicitly
(``settings``); each setting is declared once there, with its default, range and help, and read
the same way from the file (``toml``), the environment and the command line (``overrides``,
``cli``). A bad value raises ``ConfigError`` naming the source and the key, so the CLI can print
one line and exit 2.
"""

from rvz.config.settings import (
    DEFAULT_USE_CASE,
    DEMO_MODELS,
    ROLES,
    SECTIONS,
    Config,
    DriftConfig,
    FrontendConfig,
    GrpcOverflow,
    LimitsConfig,
    LogConfig,
    MetricsConfig,
    MetricsExporter,
    ModelConfig,
    OnTimeout,
    OutputKind,
    RendezvousConfig,
    Role,
    SecurityConfig,
    StreamsConfig,
    TlsConfig,
    TraceExporter,
    TracingConfig,
    UseCaseConfig,
    Window,
    demo_config,
)
from rvz.config.toml import config_from_json, config_to_json, load_config, parse_config, parse_model, parse_policy

__all__ = [
    "DEFAULT_USE_CASE",
    "DEMO_MODELS",
    "ROLES",
    "SECTIONS",
    "Config",
    "DriftConfig",
    "FrontendConfig",
    "GrpcOverflow",
    "LimitsConfig",
    "LogConfig",
    "MetricsConfig",
    "MetricsExporter",
    "ModelConfig",
    "OnTimeout",
    "OutputKind",
    "RendezvousConfig",
    "Role",
    "SecurityConfig",
    "StreamsConfig",
    "TlsConfig",
    "TraceExporter",
    "TracingConfig",
    "UseCaseConfig",
    "Window",
    "config_from_json",
    "config_to_json",
    "demo_config",
    "load_config",
    "parse_config",
    "parse_model",
    "parse_policy",
]
