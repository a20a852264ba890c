"""The consent documents a protocol declares for electronic consent.

Each version of the consent document is declared by its label, the day it takes
effect, the file it is kept in, the SHA-256 of that file's bytes, and the questions
the participant answers yes or no before confirming with their typed name (some
must be answered yes). The document's text is the trial's own file: lumbar reads it
from the consent documents folder it is given (``lumbar serve --consent-documents
DIR``) and shows it only when its bytes match the declared digest, so what a
participant agreed to is exactly the file the protocol names.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from lumbar._declared import Flag, Frozen, Identifier, Text, refuse

__all__ = ["ConsentDocument", "ConsentPlan", "ConsentQuestion"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def _check_sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise refuse(
            "must be the SHA-256 of the document file: 64 lowercase hexadecimal digits",
            "compute it with 'sha256sum FILE'",
        )
    return value


def _check_file(value: str) -> str:
    if not _FILE.fullmatch(value) or ".." in value:
        raise refuse(
            "must be a plain file name (letters, digits, '.', '_', '-'), no folder",
            "put the file in the consent documents folder and name it here, e.g. consent-1.0.md",
        )
    return value


def _check_version(value: str) -> str:
    if not _VERSION.fullmatch(value):
        raise refuse(
            "must be a short version label (letters, digits, '.', '_', '-')",
            "for example 1.0 or 2024-03",
        )
    return value


class ConsentQuestion(Frozen):
    """A yes/no question the participant answers when consenting."""

    id: Identifier = Field(description="the answer's key in the consent record")
    text: Text = Field(description="the question as the participant reads it")
    required: Flag = Field(
        default=False,
        description="must be answered yes to consent (a 'no' refuses the consent)",
    )


class ConsentDocument(Frozen):
    """One version of the consent document."""

    version: Annotated[str, AfterValidator(_check_version)] = Field(
        description="the version label staff and participants see"
    )
    effective: dt.date = Field(
        description="from this day the version is the one to consent to; those who "
        "consented to an earlier one are asked to consent again"
    )
    file: Annotated[str, AfterValidator(_check_file)] = Field(
        description="the document's file name in the consent documents folder"
    )
    sha256: Annotated[str, AfterValidator(_check_sha256)] = Field(
        description="SHA-256 of the file's bytes, in lowercase hex"
    )
    questions: tuple[ConsentQuestion, ...] = Field(
        default=(), description="yes/no questions answered with the consent"
    )

    @model_validator(mode="after")
    def _unique_questions(self) -> ConsentDocument:
        ids = [question.id for question in self.questions]
        if len(ids) != len(set(ids)):
            raise refuse("question ids must be unique within a version", "rename the repeat")
        return self


class ConsentPlan(Frozen):
    """The consent documents of the trial, oldest first."""

    documents: tuple[ConsentDocument, ...] = Field(
        min_length=1, description="each version of the consent document, oldest first"
    )
    note: str = Field(
        default="",
        description="why electronic consent is used, or how it departs from the published design",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ConsentPlan:
        versions = [document.version for document in self.documents]
        if len(versions) != len(set(versions)):
            raise refuse("each version is declared once", "give each version its own label")
        days = [document.effective for document in self.documents]
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise refuse(
                "versions are listed oldest first, each effective after the one before",
                "order the versions by their effective dates",
            )
        return self

    def document(self, version: str) -> ConsentDocument | None:
        """The declared version ``version``; None when the protocol declares no such version."""
        return next((doc for doc in self.documents if doc.version == version), None)

    def current(self, today: dt.date) -> ConsentDocument | None:
        """The version in effect on ``today`` (the newest whose effective day has come)."""
        in_effect = [doc for doc in self.documents if doc.effective <= today]
        return in_effect[-1] if in_effect else None

    def versions(self) -> tuple[str, ...]:
        return tuple(document.version for document in self.documents)
