"""The one exception root of edge-inspect.

Every error the appliance raises on purpose derives from :class:`EdgeInspectError`; the CLI turns
those into one clear line and a non-zero exit, never a traceback. Subclasses also inherit the matching
built-in (as gpiozero does) so callers may catch either.
"""

from __future__ import annotations


class EdgeInspectError(Exception):
    """Root of every error edge-inspect raises on purpose."""


class ConfigError(EdgeInspectError, ValueError):
    """The configuration is invalid: names the key and the problem."""


class ModelError(EdgeInspectError, ValueError):
    """A model file is missing, corrupt, lacks metadata, or fails its self-test."""


class CameraError(EdgeInspectError, RuntimeError):
    """A frame source cannot open or stopped delivering frames."""


class OutputError(EdgeInspectError, RuntimeError):
    """A reject/ready/alarm output cannot be set up or written."""


class TriggerError(EdgeInspectError, RuntimeError):
    """A trigger input cannot be set up."""


class ImageError(EdgeInspectError, ValueError):
    """An image file cannot be read or decoded."""


class DataError(EdgeInspectError, ValueError):
    """A training/evaluation data folder is unusable (empty, one class, unreadable)."""


class FieldbusError(EdgeInspectError, RuntimeError):
    """A PLC interface (Modbus TCP, OPC UA server) cannot start or serve."""


class EncoderError(EdgeInspectError, RuntimeError):
    """A belt encoder input cannot be set up."""


class DefectLogError(EdgeInspectError, RuntimeError):
    """The QA defect log's writer could not be started or asked (its process did not come up)."""
