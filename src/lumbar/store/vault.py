"""The vault: authenticated encryption for direct identifiers and the concealed allocation list.

Names, contact details and dates of birth, and every upcoming allocation, are
sealed with AES-256-GCM (``cryptography``). Each sealed value is bound to its
place by associated data (for example ``identity:42:name``), so a ciphertext
copied to another row or field does not open.

The key is 32 random bytes, never stored in the database. lumbar reads it from
the environment variable ``LUMBAR_KEY`` (URL-safe base64), or else from a key
file created at ``lumbar init`` with owner-only permissions (0600). Lose the key
and the identifiers and the unused part of the allocation list cannot be read:
back it up apart from the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lumbar.errors import Problem, StoreError

__all__ = ["KEY_ENV", "Vault", "create_key_file", "load_key"]

KEY_ENV = "LUMBAR_KEY"
"""Environment variable holding the vault key (URL-safe base64 of 32 bytes)."""

_KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT = b"\x01"  # first byte of every sealed value: the sealing scheme's version
_KEY_CHECK = "lumbar vault key check"


class Vault:
    """Seals and opens short texts with one key."""

    def __init__(self, key: bytes):
        if len(key) != _KEY_BYTES:
            raise StoreError(
                "the vault key is not valid",
                [Problem("key", f"must be {_KEY_BYTES} bytes", f"{len(key)} bytes")],
            )
        self._aead = AESGCM(key)
        self._mac_key = hashlib.sha256(b"lumbar-mac" + key).digest()

    def seal(self, text: str, context: str) -> bytes:
        """Encrypt and authenticate ``text``, bound to ``context``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, text.encode("utf-8"), context.encode("utf-8"))
        return _FORMAT + nonce + sealed

    def open(self, sealed: bytes, context: str) -> str:
        """Decrypt a value sealed for ``context``; StoreError if it was altered or moved."""
        if not sealed.startswith(_FORMAT) or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise _cannot_open(context)
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise _cannot_open(context) from None

    def key_check(self) -> bytes:
        """A sealed constant stored with the trial, to tell the right key from a wrong one."""
        return self.seal(_KEY_CHECK, "key-check")

    def confirm(self, key_check: bytes) -> None:
        """Raise StoreError unless this vault's key is the one the trial was created with."""
        try:
            ok = self.open(key_check, "key-check") == _KEY_CHECK
        except StoreError:
            ok = False
        if not ok:
            raise StoreError(
                "the vault key does not belong to this trial",
                [
                    Problem(
                        "key",
                        "does not open this trial's sealed data",
                        hint=f"use the key file made by 'lumbar init' for this database, or set "
                        f"{KEY_ENV} to the trial's key",
                    )
                ],
            )

    def code(self, text: str) -> str:
        """A keyed, stable code for ``text`` (HMAC-SHA256), revealing nothing without the key."""
        return hmac.new(self._mac_key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _cannot_open(context: str) -> StoreError:
    return StoreError(
        "a sealed value cannot be opened",
        [
            Problem(
                context,
                "was altered, moved from another place, or sealed with another key",
                hint="restore the database from a backup and check the key",
            )
        ],
    )


def create_key_file(path: Path) -> bytes:
    """Write a new random key to ``path`` (mode 0600, refusing to overwrite); return it."""
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StoreError(
            "a key file already exists",
            [
                Problem(
                    "key file",
                    "is never overwritten: it may be the only key of another trial",
                    str(path),
                    "choose another key file, or move the old file away deliberately",
                )
            ],
        ) from None
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(base64.urlsafe_b64encode(key).decode("ascii") + "\n")
    return key


def load_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> bytes:
    """The vault key: from ``LUMBAR_KEY`` when set, else from ``key_file``.

    A key file readable by group or others is refused.
    """
    environment = os.environ if environ is None else environ
    if environment.get(KEY_ENV):
        return _decode(environment[KEY_ENV], KEY_ENV)
    if key_file is None:
        raise StoreError(
            "no vault key",
            [
                Problem(
                    "key", f"set {KEY_ENV} or give the key file", hint="see 'lumbar init --help'"
                )
            ],
        )
    try:
        mode = key_file.stat().st_mode
        text = key_file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "is not a key file (not text)"
        raise StoreError(
            "cannot read the vault key file",
            [
                Problem(
                    "key file",
                    reason or str(error),
                    str(key_file),
                    f"give the key file, or set {KEY_ENV}",
                )
            ],
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreError(
            "the vault key file is readable by others",
            [
                Problem(
                    "key file",
                    "must be readable by its owner only",
                    oct(mode & 0o777),
                    f"chmod 600 {key_file}",
                )
            ],
        )
    return _decode(text.strip(), str(key_file))


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise StoreError(
            "the vault key is not valid",
            [
                Problem(
                    where,
                    f"must be URL-safe base64 of {_KEY_BYTES} random bytes",
                    hint="use the key file 'lumbar init' created",
                )
            ],
        )
    return key
