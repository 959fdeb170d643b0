"""Safe local file names for names that come from a server.

A file's ``name`` is chosen by whoever uploaded it, so it can hold anything: ``../../.bashrc``,
``/etc/passwd``, ``C:\\Windows\\win.ini``, control characters, or a Windows device name such as
``CON``. :func:`safe_filename` turns such a name into one plain file name that is valid on
Linux, macOS and Windows alike, and :func:`safe_join` places it inside a folder with a
guarantee that the result cannot escape that folder. The download helper
(:func:`kloudless.transfer.download_resource`) uses both when it is given a folder as the
destination.
"""

from __future__ import annotations

import os
import re
import unicodedata

__all__ = ["MAX_NAME_BYTES", "safe_filename", "safe_join"]

#: The longest file name most file systems accept (ext4, APFS, NTFS in UTF-16 is larger), in bytes.
MAX_NAME_BYTES = 255

# Extensions longer than this are not worth keeping when a name must be shortened: a "suffix" of
# that size is more likely part of the name itself than a real extension.
_MAX_EXT_BYTES = 32

# Device names Windows reserves in every folder, with or without an extension ("con.txt" too).
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"]
)

# Characters Windows refuses in names; replaced everywhere so a name means the same on every OS.
_WINDOWS_INVALID = re.compile(r'[<>:"|?*]')
# A DOS drive prefix such as "C:" left at the start of a name ("C:evil.txt").
_DRIVE = re.compile(r"^[A-Za-z]:")
# Bidirectional overrides can disguise an extension ("txt.exe" displayed as "exe.txt").
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _drop_unsafe_chars(text: str) -> str:
    """Remove control characters (NUL included) and bidirectional overrides."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc" and ch not in _BIDI)


def _truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _shorten(name: str) -> str:
    """Fit ``name`` into :data:`MAX_NAME_BYTES`, keeping a short extension intact."""
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len((dot + ext).encode("utf-8")) <= _MAX_EXT_BYTES:
        suffix = dot + ext
        stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8")))
        return stem.rstrip(". ") + suffix
    return _truncate_utf8(name, MAX_NAME_BYTES).rstrip(". ")


def _clean(name: str) -> str:
    """Apply every rule of :func:`safe_filename`; may return an empty string."""
    name = unicodedata.normalize("NFC", name)
    name = _drop_unsafe_chars(name)
    # Keep only the last real path component, whichever separator the sender used.
    parts = [p for p in name.replace("\\", "/").split("/") if p.strip(" .")]
    name = parts[-1] if parts else ""
    name = _DRIVE.sub("", name)
    name = _WINDOWS_INVALID.sub("_", name)
    # Windows drops trailing dots and spaces, so "a.txt." would silently become "a.txt".
    name = name.strip(" ").rstrip(". ")
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        name = "_" + name
    return _shorten(name)


def safe_filename(name: str | None, *, default: str = "download") -> str:
    """Turn a name chosen by someone else into one safe file name.

    The result is a single path component that is valid on Linux, macOS and Windows:

    * directory parts are dropped: ``../../x``, ``/etc/passwd``, ``a\\..\\b`` and
      ``C:\\Windows\\x.ini`` keep only their last component (``x``, ``passwd``, ``b``, ``x.ini``);
    * a drive prefix (``C:evil``) is removed, and the other characters Windows refuses
      (``< > : " | ? *``) become ``_``;
    * NUL, all other control characters and bidirectional-override characters are removed;
    * leading spaces and trailing dots and spaces are removed;
    * Windows device names (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
      ``LPT0``-``LPT9``, also with an extension such as ``nul.txt``) get a ``_`` prefix;
    * names longer than 255 bytes of UTF-8 are shortened, keeping the extension;
    * a name that ends up empty (``""``, ``..``, ``///``, ``None``) becomes ``default``.

    The text is normalised to Unicode NFC. Applying the function twice gives the same result as
    applying it once.

    :param name: the name to clean, typically a file's ``name`` from the API; ``None`` is allowed.
    :param default: the name used when nothing usable is left; it is cleaned the same way.
    :returns: a non-empty file name without any directory part.
    :raises TypeError: if ``name`` is neither a string nor ``None``.
    :raises ValueError: if ``default`` itself cleans to an empty name.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {type(name).__name__}")
    cleaned = _clean(name) if name else ""
    if cleaned:
        return cleaned
    fallback = _clean(default)
    if not fallback:
        raise ValueError(f"default name {default!r} is not a usable file name")
    return fallback


def safe_join(
    folder: str | os.PathLike[str], name: str | None, *, default: str = "download"
) -> str:
    """Join a folder and a name chosen by someone else, never leaving the folder.

    The name goes through :func:`safe_filename`, so the result is always a direct child of
    ``folder``. Nothing is created on disk. A symbolic link already present under that name is not
    followed by the download helper, which replaces the link itself.

    :param folder: the folder the file must land in.
    :param name: the untrusted name.
    :param default: passed to :func:`safe_filename`.
    :returns: the joined path, made absolute.
    :raises ValueError: if the joined path would not be directly inside ``folder``.
    """
    base = os.path.abspath(os.fspath(folder))
    path = os.path.join(base, safe_filename(name, default=default))
    # Belt and braces: the cleaned name has no separator, but check the guarantee itself.
    if os.path.dirname(os.path.abspath(path)) != base or os.path.basename(path) in ("", ".", ".."):
        raise ValueError(f"refusing a file name that leaves the folder: {name!r}")
    return path
