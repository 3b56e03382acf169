"""Configuration: typed models, the embedded default, and the loader."""

from .loader import DEFAULT_CONFIG_PATH, PROJECT_ROOT, config_from_dict, load_config
from .models import (
    AppConfig,
    GpiozeroOutputConfig,
    GpiozeroTriggerConfig,
    InspectionConfig,
    JetsonOutputConfig,
    JetsonTriggerConfig,
    LineConfig,
    ModelConfig,
    OpenCVSourceConfig,
    OutputsConfig,
    Picamera2SourceConfig,
    RegionConfig,
    ReplaySourceConfig,
    SimulatedOutputConfig,
    SoftwareTriggerConfig,
    TriggerConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "PROJECT_ROOT",
    "AppConfig",
    "GpiozeroOutputConfig",
    "GpiozeroTriggerConfig",
    "InspectionConfig",
    "JetsonOutputConfig",
    "JetsonTriggerConfig",
    "LineConfig",
    "ModelConfig",
    "OpenCVSourceConfig",
    "OutputsConfig",
    "Picamera2SourceConfig",
    "RegionConfig",
    "ReplaySourceConfig",
    "SimulatedOutputConfig",
    "SoftwareTriggerConfig",
    "TriggerConfig",
    "config_from_dict",
    "load_config",
]
