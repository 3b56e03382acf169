"""edge-inspect: an open edge defect-inspection appliance."""

__version__ = "0.1.0"
