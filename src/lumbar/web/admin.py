"""Administration pages: one's own account, the staff and sites, the audit trail, exports.

Like every page, each calls operations as the signed-in member of staff and renders what
they return; the operations decide who may (administration needs ``manage_staff`` or
``manage_sites``, the audit trail ``audit``, the dataset ``dataset``) and refuse the
rest, which the application answers with a 403 page.

Secrets are shown once: a new API token and a new second factor's secret are rendered
on the page that answers the form that made them (a POST, never cached), and no page
shows them again; lumbar keeps only a digest of the token and the sealed secret.

Changing one's own password asks for the current one (and the second factor's code, for
those who use one), although :meth:`~lumbar.operations.credentials.CredentialService.set_password`
does not: a browser left signed in should not let a passer-by take the account over
(OWASP ASVS 2.1.6). The check is a sign-in, so failures count towards the lock-out. The
change ends every session of the account, this one included, so the page then signs out.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.operations.audit import AuditRecords
from lumbar.operations.authentication import authenticate_password
from lumbar.operations.credentials import MAX_TOKEN_DAYS
from lumbar.operations.vocabulary import GRANTS, PERMISSIONS, ROLES, WHAT
from lumbar.web.base import (
    CheckedForm,
    NotFoundError,
    Page,
    SignedIn,
    context_of,
    form_refusal,
    render,
    sign_out,
)

__all__ = ["router"]

router = APIRouter()

AUDIT_PAGE = 50
"""Audit records on one page of the trail."""


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _flag(form: dict[str, str], prefix: str) -> list[str]:
    """The ticked boxes named ``prefix.VALUE`` (a box a value, so a plain form dict holds them)."""
    return [key.removeprefix(prefix + ".") for key in form if key.startswith(prefix + ".")]


# ---------------------------------------------------------------------- own account


def _account(
    request: Request,
    page: Page,
    *,
    failed: str | None = None,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    me = page.me
    return render(
        request,
        "admin_account.html",
        {
            "me": me,
            "tokens": page.trial.tokens(),
            "permissions": [name for name, roles in PERMISSIONS.items() if me.role in roles],
            "what": WHAT,
            "max_days": MAX_TOKEN_DAYS,
            "failed": failed,
            "errors": errors or [],
            "entered": entered or {},
            "done": request.query_params.get("done"),
        },
        page=page,
        status_code=status_code,
    )


@router.get("/account")
def account(request: Request, page: SignedIn) -> Response:
    return _account(request, page)


@router.post("/account/password")
def change_own_password(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    password = form.get("password", "")
    problems = []
    if password != form.get("confirm", ""):
        problems.append(
            {"where": "confirm", "rule": "is not the same as the new password", "hint": ""}
        )
    if not problems:
        try:
            authenticate_password(
                context_of(request), page.user, form.get("current", ""), form.get("code") or None
            )
        except AccessError as error:
            problems = [
                {
                    "where": "current",
                    "rule": error.problems[0].rule if error.problems else error.summary,
                    "hint": "type the password you signed in with (and a new code)",
                }
            ]
    if not problems:
        try:
            page.trial.set_password(password)
        except OperationError as error:
            problems = form_refusal(error)
    if problems:
        return _account(request, page, failed="password", errors=problems, status_code=422)
    return sign_out(request)  # every session of the account ends with the old password


@router.post("/account/totp")
def enrol_second_factor(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    try:
        enrolment = page.trial.enrol_totp()
    except OperationError as error:
        return _account(request, page, failed="totp", errors=form_refusal(error), status_code=422)
    return render(
        request,
        "admin_totp.html",
        {"enrolment": enrolment, "errors": [], "failed": None},
        page=page,
    )


@router.post("/account/totp/confirm")
def confirm_second_factor(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    try:
        page.trial.confirm_totp(form.get("code", "").strip())
    except OperationError as error:
        return _account(
            request, page, failed="confirm", errors=form_refusal(error), status_code=422
        )
    return _redirect("/account?done=totp")


@router.post("/account/tokens")
def create_token(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    days_text = form.get("days", "").strip()
    try:
        if not days_text.isdigit():
            raise OperationError(
                "the token is not created",
                [
                    Problem(
                        "expires_in_days", "must be a whole number of days", days_text, "e.g. 90"
                    )
                ],
            )
        token = page.trial.create_token(
            form.get("name", ""), _flag(form, "permission"), int(days_text)
        )
    except OperationError as error:
        return _account(
            request,
            page,
            failed="token",
            errors=form_refusal(error),
            entered=form,
            status_code=422,
        )
    return render(request, "admin_token.html", {"token": token}, page=page)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_own_token(
    token_id: int, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    try:
        page.trial.revoke_token(token_id)
    except OperationError as error:
        return _account(request, page, failed="revoke", errors=form_refusal(error), status_code=422)
    return _redirect("/account?done=revoked")


# ---------------------------------------------------------------------- sites


def _sites(
    request: Request,
    page: Page,
    *,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, str] | None = None,
) -> Response:
    page.trial.authorize("manage_sites")
    return render(
        request,
        "admin_sites.html",
        {
            "sites": page.trial.sites(),
            "errors": errors or [],
            "failed": "site" if errors else None,
            "entered": entered or {},
        },
        page=page,
        status_code=422 if errors else 200,
    )


@router.get("/admin/sites")
def sites(request: Request, page: SignedIn) -> Response:
    return _sites(request, page)


@router.post("/admin/sites")
def add_site(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    try:
        page.trial.add_site(form.get("code", "").strip(), form.get("name", ""))
    except OperationError as error:
        return _sites(request, page, errors=form_refusal(error), entered=form)
    return _redirect("/admin/sites")


# ---------------------------------------------------------------------- staff


def _staff(
    request: Request,
    page: Page,
    *,
    failed: str | None = None,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, str] | None = None,
) -> Response:
    trial = page.trial
    return render(
        request,
        "admin_staff.html",
        {
            "staff": trial.staff(),
            "grants": trial.grants(),
            "sites": trial.sites(),
            "roles": ROLES,
            "failed": failed,
            "errors": errors or [],
            "entered": entered or {},
        },
        page=page,
        status_code=422 if errors else 200,
    )


@router.get("/admin/staff")
def staff(request: Request, page: SignedIn) -> Response:
    return _staff(request, page)


@router.post("/admin/staff")
def add_staff(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    blinding = form.get("unblinded", "")
    username = form.get("username", "").strip()
    try:
        page.trial.add_staff(
            username,
            form.get("role", ""),
            _flag(form, "site"),
            all_sites=form.get("all_sites") == "1",
            unblinded={"yes": True, "no": False}.get(blinding),
            reason=form.get("reason") or None,
        )
    except OperationError as error:
        return _staff(request, page, failed="add", errors=form_refusal(error), entered=form)
    return _redirect(f"/admin/staff/{username}")


@router.post("/admin/grants/{grant_id}/countersign")
def countersign(grant_id: int, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    try:
        page.trial.countersign(grant_id)
    except OperationError as error:
        return _staff(request, page, failed="countersign", errors=form_refusal(error))
    return _redirect("/admin/staff")


def _member(
    request: Request,
    page: Page,
    username: str,
    *,
    failed: str | None = None,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    trial = page.trial
    found = [member for member in trial.staff() if member.username == username]
    if not found:
        raise NotFoundError()
    return render(
        request,
        "admin_member.html",
        {
            "member": found[0],
            "grants": [grant for grant in trial.grants() if grant.username == username],
            "tokens": trial.tokens(username),
            "kinds": GRANTS,
            "failed": failed,
            "errors": errors or [],
            "entered": entered or {},
            "done": done or request.query_params.get("done"),
        },
        page=page,
        status_code=422 if errors else 200,
    )


@router.get("/admin/staff/{username}")
def member(username: str, request: Request, page: SignedIn) -> Response:
    return _member(request, page, username)


def _act(
    request: Request,
    page: Page,
    username: str,
    form: dict[str, str],
    name: str,
    action: Any,
) -> Response:
    """Do one administrative action on a member of staff; back to their page, or the form
    again with the operation's messages beside it."""
    try:
        action()
    except OperationError as error:
        return _member(
            request, page, username, failed=name, errors=form_refusal(error), entered=form
        )
    return _redirect(f"/admin/staff/{username}?done={name}")


@router.post("/admin/staff/{username}/active")
def set_active(username: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    return _act(
        request,
        page,
        username,
        form,
        "active",
        lambda: page.trial.set_active(username, form.get("active") == "1", form.get("reason", "")),
    )


@router.post("/admin/staff/{username}/password")
def set_password(username: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    return _act(
        request,
        page,
        username,
        {},  # a password is never sent back in a page
        "password",
        lambda: page.trial.set_password(form.get("password", ""), username),
    )


@router.post("/admin/staff/{username}/totp-reset")
def reset_second_factor(
    username: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    return _act(
        request,
        page,
        username,
        form,
        "totp",
        lambda: page.trial.reset_totp(username, form.get("reason", "")),
    )


@router.post("/admin/staff/{username}/sessions-end")
def end_sessions(username: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    return _act(
        request,
        page,
        username,
        form,
        "sessions",
        lambda: page.trial.end_sessions(username, form.get("reason", "")),
    )


@router.post("/admin/staff/{username}/grant")
def grant(username: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    return _act(
        request,
        page,
        username,
        form,
        "grant",
        lambda: page.trial.grant(username, form.get("kind", ""), form.get("reason", "")),
    )


@router.post("/admin/staff/{username}/revoke")
def revoke(username: str, request: Request, form: CheckedForm, page: SignedIn) -> Response:
    return _act(
        request,
        page,
        username,
        form,
        "revoke",
        lambda: page.trial.revoke(username, form.get("kind", ""), form.get("reason", "")),
    )


@router.post("/admin/staff/{username}/tokens/{token_id}/revoke")
def revoke_token(
    username: str, token_id: int, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    return _act(request, page, username, form, "token", lambda: page.trial.revoke_token(token_id))


# ---------------------------------------------------------------------- audit trail


AUDIT_FILTERS = ("actor", "action", "since", "until", "participant")


@router.get("/audit")
def audit(request: Request, page: SignedIn) -> Response:
    query = request.query_params
    entered = {name: query.get(name, "").strip() for name in AUDIT_FILTERS}
    errors: list[dict[str, str]] = []
    dates: dict[str, dt.date | None] = {}
    for name in ("since", "until"):
        try:
            dates[name] = dt.date.fromisoformat(entered[name]) if entered[name] else None
        except ValueError:
            dates[name] = None
            errors.append(
                {"where": name, "rule": "is not a date", "hint": "YYYY-MM-DD, e.g. 2026-01-31"}
            )
    number = query.get("page", "1")
    # a page past the millionth is no page (and no offset too large for the database)
    page_number = int(number) if number.isdigit() and 1 <= int(number) <= 10**6 else 1
    found: AuditRecords | None = None
    if not errors:
        try:
            found = page.trial.audit_records(
                actor=entered["actor"] or None,
                action=entered["action"] or None,
                since=dates["since"],
                until=dates["until"],
                participant=entered["participant"] or None,
                offset=(page_number - 1) * AUDIT_PAGE,
                limit=AUDIT_PAGE,
            )
        except OperationError as error:
            errors = form_refusal(error)
    else:
        page.trial.authorize("audit")  # a role that may not read the trail learns nothing
    report = page.trial.verify_audit() if query.get("verify") == "1" else None
    kept = {name: value for name, value in entered.items() if value}
    return render(
        request,
        "admin_audit.html",
        {
            "found": found,
            "report": report,
            "entered": entered,
            "kept": kept,
            "page_number": page_number,
            "errors": errors,
            "failed": "filters" if errors else None,
        },
        page=page,
        status_code=422 if errors else 200,
    )


# ---------------------------------------------------------------------- exports


@router.get("/exports")
def exports(request: Request, page: SignedIn) -> Response:
    page.trial.authorize("dataset")
    return render(request, "admin_exports.html", {}, page=page)


@router.post("/exports/dataset")
def export_dataset(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    """The de-identified dataset as a CSV download (the export is audited).

    A POST, so the audited export needs the form's CSRF token and no link can start it.
    """
    trial = page.trial
    synthetic = context_of(request).synthetic
    with tempfile.TemporaryDirectory(prefix="lumbar-export-") as folder:
        path = Path(folder) / "dataset.csv"
        trial.export(path, "csv")
        content = path.read_bytes()
    label = "-synthetic" if synthetic else ""
    trial_name = re.sub(r"[^A-Za-z0-9._-]", "_", trial.protocol.id)
    name = f"{trial_name}{label}-dataset-{trial.clock().date().isoformat()}.csv"
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
