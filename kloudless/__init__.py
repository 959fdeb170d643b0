"""Kloudless-compatible Python SDK (drop-in for the Kloudless SDK 2.x, with fixes)."""

from .account import Account, get_verified_account
from .application import get_authorization_url, get_token_from_code, verify_token
from .client import Client
from .config import configuration
from .version import VERSION

__version__ = VERSION

__all__ = [
    "VERSION",
    "Account",
    "Client",
    "__version__",
    "configuration",
    "get_authorization_url",
    "get_token_from_code",
    "get_verified_account",
    "verify_token",
]
