"""Hide the passwords that DVR URLs carry (rtsp://user:password@host/...).

Used wherever a URL can reach a person: admin lists, log lines, error messages.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "****"

# scheme://user:password@  — the password may contain anything but '@' and whitespace.
_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s]*)(?=@)")


def mask_url(url: str) -> str:
    """Return the URL with its password replaced by ****; the user name stays, it helps installers."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def mask_text(text: str) -> str:
    """Mask every URL password inside free text (log messages, exception strings)."""
    return _CREDENTIALS.sub(lambda m: m.group("head") + MASK, text)


class MaskedPasswordError(ValueError):
    """A URL still holds the mask where its stored password cannot be put back."""


def unmask_url(submitted: str, stored: str) -> str:
    """Put the stored password back into a URL that was edited in its masked form.

    The admin shows `rtsp://admin:****@host/...`; an operator who changes the path but not
    the password submits the mask, and must not overwrite the real password with it. The
    password goes back only to the same scheme, user, host and port: otherwise anyone who may
    edit the camera could send the DVR's password to a host of their choosing.
    """
    try:
        new = urlsplit(submitted)
        old = urlsplit(stored) if stored else None
        if new.password != MASK:
            return submitted
        same_endpoint = old is not None and old.password is not None and (
            (new.scheme.lower(), new.username, (new.hostname or "").lower(), new.port)
            == (old.scheme.lower(), old.username, (old.hostname or "").lower(), old.port)
        )
    except ValueError:  # a bad port: the URL validator names the problem
        return submitted
    if not same_endpoint:
        raise MaskedPasswordError(
            f"The password is hidden as {MASK}, and the stored one is kept only for the same scheme, user, host "
            "and port. Type the camera's password again in the URL."
        )
    assert old is not None and old.password is not None
    return submitted.replace(f":{MASK}@", f":{old.password}@", 1)
