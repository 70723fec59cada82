"""The package version, read by hatch at build time and sent as ``$ai_lib_version``."""

__version__ = "0.1.0"
