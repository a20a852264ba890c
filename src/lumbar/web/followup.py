"""Following participants up: the follow-up dashboard, and a participant's survey links.

- ``/follow-up``: completion of each follow-up visit (complete of due, due once its window
  has opened) overall, by site and, for an unblinded user only, by arm; and whom to call
  (open windows closing soon, or with every reminder used up). The numbers come from one
  operation (``Trial.follow_up``); this page only renders them, and names no contact.
- A participant's survey link is issued (or issued again, replacing the one before) and
  revoked by a form post on the participant page. A new link is shown once, on the page
  the post answers: it is in no URL, no log and no later page (lumbar keeps only its
  digest). Revoking asks first, on its own page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from lumbar.errors import LumbarError
from lumbar.operations.survey import SurveyLink
from lumbar.web.base import CheckedForm, Page, SignedIn, form_refusal, found, render
from lumbar.web.pages import ONE_DAY, participant_page

__all__ = ["router"]

router = APIRouter()

MAX_WITHIN = 90
"""The longest look-ahead the follow-up page takes (days)."""


@router.get("/follow-up")
def follow_up(
    request: Request,
    page: SignedIn,
    within: Annotated[int | None, Query(ge=0, le=MAX_WITHIN)] = None,
) -> Response:
    trial = page.trial
    board = trial.follow_up() if within is None else trial.follow_up(closing_within=within)
    return render(
        request,
        "follow_up.html",
        {
            "board": board,
            "me": page.me,
            "visits": {visit.id: visit.label for visit in trial.protocol.follow_up_visits},
            "max_within": MAX_WITHIN,
        },
        page=page,
    )


@router.post("/participants/{reference}/invitations/{visit}")
def issue_invitation(
    reference: str, visit: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    del form
    try:
        link = page.trial.issue_survey_token(reference, visit)
    except LumbarError as error:
        return participant_page(
            request,
            page,
            reference,
            errors=form_refusal(error),
            failed=f"invite-{visit}",
            status_code=422,
        )
    return render(
        request,
        "participant_invitation.html",
        {
            "link": link,
            "url": str(request.base_url).rstrip("/") + "/survey/" + link.token,
            "last_day": (link.expires_at - ONE_DAY).date(),
        },
        page=page,
    )


@router.get("/participants/{reference}/invitations/{visit}/revoke")
def revoke_invitation_page(
    reference: str, visit: str, request: Request, page: SignedIn
) -> Response:
    with found():
        links = [link for link in page.trial.survey_links(reference) if link.visit == visit]
    return _revoke_page(request, page, reference, visit, links, [])


@router.post("/participants/{reference}/invitations/{visit}/revoke")
def revoke_invitation(
    reference: str, visit: str, request: Request, form: CheckedForm, page: SignedIn
) -> Response:
    del form
    try:
        page.trial.revoke_survey_token(reference, visit)
    except LumbarError as error:
        errors = form_refusal(error)
        with found():
            links = [link for link in page.trial.survey_links(reference) if link.visit == visit]
        return _revoke_page(request, page, reference, visit, links, errors, status_code=422)
    return RedirectResponse(f"/participants/{reference}?revoked={visit}", status_code=303)


def _revoke_page(
    request: Request,
    page: Page,
    reference: str,
    visit: str,
    links: list[SurveyLink],
    errors: list[dict[str, str]],
    *,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "participant_revoke.html",
        {
            "reference": reference,
            "visit": visit,
            "live": [link for link in links if link.live],
            "errors": errors,
        },
        page=page,
        status_code=status_code,
    )
