"""Global configuration (:data:`configuration`) and the per-client settings built from it.

:data:`configuration` is a plain dict, as in 2.x. It is read **once** when a client is created
(a snapshot is taken, so later changes, from any thread, never affect existing clients); the OAuth
helpers read it on every call. Keys and defaults:

``base_url``
    ``http://localhost:8002`` (the local server), or the ``KLOUDLESS_BASE_URL`` environment
    variable.
``api_version``
    ``'1'``.
``timeout``
    ``(10, 60)``: seconds to connect and to read. A single number sets both; ``None`` waits forever.
``max_retries``
    ``3``: retries after the first attempt (``0`` disables retries).
``backoff_factor``
    ``0.5``: the n-th retry waits ``backoff_factor * 2 ** (n - 1)`` seconds (plus jitter).
``backoff_max``
    ``30``: the longest backoff, in seconds.
``backoff_jitter``
    ``0.5``: a random ``0..backoff_jitter`` seconds added to each backoff (spreads retries out).
``retry_after_max``
    ``60``: the longest ``Retry-After`` wait honoured, in seconds (longer values are capped).

Unknown keys are ignored; a deleted key falls back to its default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

__all__ = ["DEFAULTS", "Settings", "TimeoutValue", "configuration", "get_config", "get_settings"]

#: A requests-style timeout: ``None`` (no limit), one number, or ``(connect, read)``.
TimeoutValue = Union[None, float, tuple[Optional[float], Optional[float]]]

#: The built-in defaults of every configuration key.
DEFAULTS: dict[str, Any] = {
    "base_url": "http://localhost:8002",
    "api_version": "1",
    "timeout": (10, 60),
    "max_retries": 3,
    "backoff_factor": 0.5,
    "backoff_max": 30.0,
    "backoff_jitter": 0.5,
    "retry_after_max": 60.0,
}

#: The global configuration dict; change it in place (``configuration['base_url'] = ...``).
configuration: dict[str, Any] = dict(DEFAULTS)
configuration["base_url"] = os.environ.get("KLOUDLESS_BASE_URL") or DEFAULTS["base_url"]


def get_config(name: str, overwrite: Any = None) -> Any:
    """Return ``overwrite`` unless it is ``None``, else ``configuration[name]`` (or its default).

    :param name: a configuration key.
    :param overwrite: a value that takes precedence.
    :returns: the value.
    """
    if overwrite is not None:
        return overwrite
    value = configuration.get(name)
    return DEFAULTS.get(name) if value is None and name != "timeout" else value


@dataclass(frozen=True)
class Settings:
    """An immutable snapshot of the settings one client uses (see the module docstring)."""

    base_url: str
    api_version: str
    timeout: TimeoutValue
    max_retries: int
    backoff_factor: float
    backoff_max: float
    backoff_jitter: float
    retry_after_max: float


def _non_negative(name: str, value: Any, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or number < 0:
        from .exceptions import InvalidParameter

        raise InvalidParameter(f"{name} must be a non-negative number, not {value!r}.")
    return number


def get_settings(**overrides: Any) -> Settings:
    """Snapshot :data:`configuration` (with ``overrides`` applied) into a :class:`Settings`.

    ``dict(configuration)`` is one atomic copy, so a concurrent change is seen entirely or not at
    all. Overrides whose value is ``None`` are ignored, except ``timeout`` (``None`` disables it).

    :param overrides: per-client values for any configuration key.
    :returns: the settings.
    :raises kloudless.exceptions.InvalidParameter: for negative or non-numeric retry settings.
    """
    snapshot = dict(DEFAULTS)
    snapshot.update(
        {k: v for k, v in dict(configuration).items() if v is not None or k == "timeout"}
    )
    for key, value in overrides.items():
        if value is not None or key == "timeout":
            snapshot[key] = value
    return Settings(
        base_url=str(snapshot["base_url"]).rstrip("/") or DEFAULTS["base_url"],
        api_version=str(snapshot["api_version"]),
        timeout=snapshot["timeout"],
        max_retries=_non_negative("max_retries", snapshot["max_retries"], int),
        backoff_factor=_non_negative("backoff_factor", snapshot["backoff_factor"], float),
        backoff_max=_non_negative("backoff_max", snapshot["backoff_max"], float),
        backoff_jitter=_non_negative("backoff_jitter", snapshot["backoff_jitter"], float),
        retry_after_max=_non_negative("retry_after_max", snapshot["retry_after_max"], float),
    )
