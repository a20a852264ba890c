"""The trial report, made and read in the browser.

The report is the same document ``lumbar report`` writes (report.html with its figures and
tables), made as the signed-in member of staff may read the trial: a blinded user's report
pools the arms. Making it runs the whole analysis (multiple imputation included), so it is
a form (POST, with the CSRF token) and not a link; the result is kept on disk, one report
for each member of staff, where every worker process of the server finds it
(``reports_dir`` of :func:`lumbar.web.app.create_app`).

The report is a document of its own, with inline styles and figures: it is served with its
own Content-Security-Policy, which allows those styles and nothing else (no script at all)
and puts it in a sandbox (an opaque origin: even a script that slipped in could not read
the staff pages or their cookies). Each request checks again that the user is signed in,
still holds the permission to read the dataset, and sees arms only if the report was made
for someone who did: a report made before a user's access to arms was withdrawn is no
longer shown to them.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.engine import make_url

from lumbar.errors import LumbarError
from lumbar.web.base import CheckedForm, NotFoundError, Page, SignedIn, form_refusal, render

__all__ = ["REPORT_SECURITY_POLICY", "router"]

router = APIRouter()

REPORT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; sandbox"
)
"""The report's own policy: its inline styles, its figures; no script; a sandbox."""

MAX_IMPUTATIONS = 200
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}\.(svg|png|csv)$")
_MEDIA = {"svg": "image/svg+xml", "png": "image/png", "csv": "text/csv; charset=utf-8"}
_MADE_FOR = "made-for.json"


def reports_dir_for(url: str, given: Path | None) -> Path:
    """Where reports are kept: ``given``; beside a SQLite trial's file; else a folder of
    the system's temporary directory named for the database."""
    if given is not None:
        return given
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(str(parsed.database)).resolve().parent / "reports"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lumbar-reports-{digest}"


def _folder(request: Request, page: Page) -> Path:
    root: Path = request.app.state.reports_dir
    return root / page.user


def _made_for(folder: Path) -> dict[str, object] | None:
    try:
        made: dict[str, object] = json.loads((folder / _MADE_FOR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return made


def _readable(request: Request, page: Page) -> Path:
    """The user's report folder, when they may still read what it holds; a 404 otherwise."""
    page.trial.authorize("dataset")
    folder = _folder(request, page)
    made = _made_for(folder)
    if made is None or (made.get("unblinded") and not page.me.unblinded):
        raise NotFoundError()
    return folder


@router.get("/report")
def report_page(request: Request, page: SignedIn, made: int = 0) -> Response:
    page.trial.authorize("dataset")
    return _page(request, page, made=bool(made))


@router.post("/report")
def make_report(request: Request, form: CheckedForm, page: SignedIn) -> Response:
    text = form.get("imputations", "").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_IMPUTATIONS:
        errors = [
            {
                "where": "imputations",
                "rule": f"must be a whole number from 1 to {MAX_IMPUTATIONS}",
                "hint": "20 is the usual choice; fewer is quicker",
            }
        ]
        return _page(request, page, errors=errors, entered=form, status_code=422)
    from lumbar.analysis.plan import Settings  # noqa: PLC0415 - the analysis loads on demand
    from lumbar.application import published_studies, run_report  # noqa: PLC0415

    page.trial.authorize("dataset")
    folder = _folder(request, page)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    building = Path(tempfile.mkdtemp(prefix=f".{page.user}-", dir=folder.parent))
    try:
        run_report(
            page.trial,
            building,
            settings=Settings(imputations=int(text)),
            studies=published_studies("shipped") if form.get("evidence") == "yes" else None,
        )
        (building / _MADE_FOR).write_text(
            json.dumps(
                {
                    "username": page.user,
                    "unblinded": page.me.unblinded,
                    "made_at": page.trial.clock().isoformat(),
                    "imputations": int(text),
                    "evidence": form.get("evidence") == "yes",
                }
            ),
            encoding="utf-8",
        )
        _replace(folder, building)
    except LumbarError as error:
        shutil.rmtree(building, ignore_errors=True)
        return _page(request, page, errors=form_refusal(error), entered=form, status_code=422)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return RedirectResponse("/report?made=1", status_code=303)


@router.get("/report/view")
def view_report(request: Request, page: SignedIn) -> Response:
    folder = _readable(request, page)
    return FileResponse(
        folder / "report.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_SECURITY_POLICY},
    )


@router.get("/report/{kind}/{name}")
def report_file(kind: str, name: str, request: Request, page: SignedIn) -> Response:
    found = _FILE.match(name)
    if kind not in ("figures", "tables") or found is None:
        raise NotFoundError()
    path = _readable(request, page) / kind / name
    if not path.is_file():
        raise NotFoundError()
    return FileResponse(
        path,
        media_type=_MEDIA[found.group(1)],
        headers={"Content-Security-Policy": REPORT_SECURITY_POLICY},
    )


def _page(
    request: Request,
    page: Page,
    *,
    made: bool = False,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    folder = _folder(request, page)
    kept = _made_for(folder)
    stale = bool(kept and kept.get("unblinded") and not page.me.unblinded)
    tables = sorted(path.name for path in (folder / "tables").glob("*.csv")) if kept else []
    return render(
        request,
        "report.html",
        {
            "title": "Trial report",
            "kept": None if stale else kept,
            "made_at": None
            if not kept or stale
            else dt.datetime.fromisoformat(str(kept["made_at"])).strftime("%Y-%m-%d %H:%M"),
            "tables": [] if stale else tables,
            "made": made,
            "blinded": not page.me.unblinded,
            "errors": errors or [],
            "form": entered or {"imputations": "20"},
            "max_imputations": MAX_IMPUTATIONS,
        },
        page=page,
        status_code=status_code,
    )


def _replace(folder: Path, building: Path) -> None:
    """Put the new report in place of the old (each a whole folder), one at a time: two
    reports of one user finished at once (two tabs, two workers) are swapped in turn."""
    old = folder.with_name(f".{folder.name}-old")
    with open(folder.with_name(f".{folder.name}.lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            folder.rename(old)
        building.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
