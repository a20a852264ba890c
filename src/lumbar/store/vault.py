"""The trial's keys: sealing and keyed digests, with the keys kept outside the database.

A trial has three keys, each 32 random bytes, each guarding one thing, so losing or
lending one costs only what it guards:

- **identity**: names, contact details, dates of birth and staff second-factor (TOTP)
  secrets are sealed with it. Lose it and those cannot be read; everything else works.
- **randomization**: the allocation list (every slot's arm, the seed it was generated
  from, its fingerprint) and every assigned arm are sealed with it. Lose it and nobody
  can be randomized or unblinded and no arm can be shown; blinded work goes on.
- **audit**: the audit chain's links, its head and the row images that tie every
  data table to the trail are keyed with it (HMAC-SHA256). Every write needs it; lose
  it and the trial is read-only and the chain can no longer be verified.

Sealing is AES-256-GCM (``cryptography``); each sealed value is bound to its place by
associated data (for example ``identity:42:name``), so a ciphertext copied to another
row or field does not open. Keyed digests are HMAC-SHA256 with a key derived from the
same 32 bytes.

The keys live in one key file, created at ``lumbar init`` with owner-only permissions
(0600), one ``name: value`` line each (URL-safe base64); or in the environment variable
``LUMBAR_KEY`` in the same form (lines or spaces between the pairs). A copy of the
file without some lines gives someone only the other keys: a statistician's copy
needs no identity key. A key file readable by group or others is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lumbar.errors import Problem, StoreError

__all__ = ["KEY_ENV", "KEY_NAMES", "Keys", "Vault", "create_key_file", "load_keys"]

KEY_ENV = "LUMBAR_KEY"
"""Environment variable holding the keys (``identity: ... randomization: ... audit: ...``)."""

KEY_NAMES = ("identity", "randomization", "audit")
"""The trial's keys, in the order a key file lists them."""

KEY_USES = {
    "identity": "names, contact details, dates of birth and second-factor secrets",
    "randomization": "the allocation list and every assigned arm",
    "audit": "the audit chain and the row images that tie the data to it",
}
"""What each key guards (for messages)."""

_KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT = b"\x01"  # first byte of every sealed value: the sealing scheme's version
_KEY_CHECK = "lumbar vault key check"
_PAIR = re.compile(r"([a-z]+)\s*:\s*(\S+)")


class Vault:
    """Seals and opens short texts, and makes keyed codes, with one key."""

    def __init__(self, key: bytes, name: str = "identity"):
        if len(key) != _KEY_BYTES:
            raise StoreError(
                f"the {name} key is not valid",
                [Problem("key", f"must be {_KEY_BYTES} bytes", f"{len(key)} bytes")],
            )
        self.name = name
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
        return self.seal(_KEY_CHECK, f"key-check:{self.name}")

    def confirm(self, key_check: bytes) -> None:
        """Raise StoreError unless this vault's key is the one the trial was created with."""
        try:
            ok = self.open(key_check, f"key-check:{self.name}") == _KEY_CHECK
        except StoreError:
            ok = False
        if not ok:
            raise StoreError(
                f"the {self.name} key does not belong to this trial",
                [
                    Problem(
                        f"key {self.name}",
                        "does not open this trial's sealed data",
                        hint=f"use the key file made by 'lumbar init' for this database, or set "
                        f"{KEY_ENV} to the trial's keys",
                    )
                ],
            )

    def code(self, text: str) -> str:
        """A keyed, stable code for ``text`` (HMAC-SHA256), revealing nothing without the key."""
        return self.mac(text.encode("utf-8"))

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` under this key, as hex."""
        return hmac.new(self._mac_key, data, hashlib.sha256).hexdigest()

    def short_mac(self, data: bytes) -> str:
        """A 64-bit keyed digest of ``data`` (BLAKE2b in its keyed mode), as 16 hex digits:
        for the many small values of row images, where HMAC-SHA256 would be slow."""
        return hashlib.blake2b(data, key=self._mac_key, digest_size=8).hexdigest()

    def short_mac_of(self, prefix: bytes) -> Callable[[bytes], str]:
        """``short_mac`` of ``prefix`` followed by each data it is given: the keyed state
        after ``prefix`` is computed once (for the columns of one row)."""
        start = hashlib.blake2b(prefix, key=self._mac_key, digest_size=8)

        def digest(data: bytes) -> str:
            state = start.copy()
            state.update(data)
            return state.hexdigest()

        return digest


@dataclass(frozen=True)
class Keys:
    """The keys at hand: each may be missing (a copy of the key file without its line)."""

    identity: bytes | None = None
    randomization: bytes | None = None
    audit: bytes | None = None

    @classmethod
    def new(cls) -> Keys:
        """Three new random keys."""
        return cls(*(secrets.token_bytes(_KEY_BYTES) for _ in KEY_NAMES))

    def vault(self, name: str) -> Vault | None:
        """The vault of key ``name``, or None when that key is not at hand."""
        key: bytes | None = getattr(self, name)
        return None if key is None else Vault(key, name)

    def confirm(self, record: Any) -> None:
        """Refuse (StoreError) unless each key at hand is the trial's: ``record`` is its
        trial row (or a row of its ``key_check``, ``randomization_key_check`` and
        ``audit_key_check``). A key not at hand is not checked."""
        checks = {
            "identity": record.key_check,
            "randomization": record.randomization_key_check,
            "audit": record.audit_key_check,
        }
        for name, check in checks.items():
            vault = self.vault(name)
            if vault is not None:
                vault.confirm(check)

    def text(self) -> str:
        """The keys as a key file holds them."""
        lines = ["# lumbar trial keys: keep owner-only, and back up apart from the database"]
        for name in KEY_NAMES:
            key: bytes | None = getattr(self, name)
            if key is not None:
                lines.append(f"{name}: {base64.urlsafe_b64encode(key).decode('ascii')}")
        return "\n".join(lines) + "\n"


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


def create_key_file(path: Path, keys: Keys | None = None) -> Keys:
    """Write new random keys (or ``keys``) to ``path`` (mode 0600, never overwriting);
    return them."""
    keys = Keys.new() if keys is None else keys
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
        handle.write(keys.text())
    return keys


def load_keys(key_file: Path | None, environ: Mapping[str, str] | None = None) -> Keys:
    """The trial's keys: from ``LUMBAR_KEY`` when set, else from ``key_file``.

    A key file readable by group or others is refused.
    """
    environment = os.environ if environ is None else environ
    if environment.get(KEY_ENV):
        return _parse(environment[KEY_ENV], KEY_ENV)
    if key_file is None:
        raise StoreError(
            "no keys",
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
            "cannot read the key file",
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
            "the key file is readable by others",
            [
                Problem(
                    "key file",
                    "must be readable by its owner only",
                    oct(mode & 0o777),
                    f"chmod 600 {key_file}",
                )
            ],
        )
    return _parse(text, str(key_file))


def _parse(text: str, where: str) -> Keys:
    found: dict[str, bytes] = {}
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    pairs = _PAIR.findall(body)
    leftover = _PAIR.sub("", body).strip()
    if leftover or not pairs:
        raise _not_keys(
            where, "must hold lines 'identity: ...', 'randomization: ...', 'audit: ...'"
        )
    for name, value in pairs:
        if name not in KEY_NAMES:
            raise _not_keys(where, f"names an unknown key {name!r}; keys: {', '.join(KEY_NAMES)}")
        if name in found:
            raise _not_keys(where, f"gives the {name} key twice")
        found[name] = _decode(value, f"{where} ({name})")
    return Keys(**found)


def _not_keys(where: str, rule: str) -> StoreError:
    return StoreError(
        "not a lumbar key file",
        [Problem(where, rule, hint="use the key file 'lumbar init' created")],
    )


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise StoreError(
            "a key is not valid",
            [
                Problem(
                    where,
                    f"must be URL-safe base64 of {_KEY_BYTES} random bytes",
                    hint="use the key file 'lumbar init' created",
                )
            ],
        )
    return key
