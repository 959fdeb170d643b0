"""Response wrappers (re-exported from :mod:`kloudless.resources.base`)."""

from .base import Resource, ResourceList, Response, ResponseJson

__all__ = ["Resource", "ResourceList", "Response", "ResponseJson"]
