"""Kloudless-compatible Python SDK (placeholder until the SDK core lands)."""

from .version import VERSION

__version__ = VERSION
