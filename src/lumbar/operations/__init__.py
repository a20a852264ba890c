"""Trial operations: the only layer that writes to a trial database.

:func:`create_trial` makes a trial database from a protocol; :class:`Trial`
opens one on behalf of a principal and carries every operation (screening,
consent, enrolment, questionnaires, randomization, schedule, sessions, adverse
events, withdrawals, the tidy dataset, CONSORT records). Each area is a service
over one shared :class:`Context`; :mod:`lumbar.operations.scope` alone decides
who sees and does what, and :mod:`lumbar.operations.authentication` alone checks
who someone is (a password with an optional second factor, an API token, or a
participant's survey link). Every write is validated first, fails whole, and
appends to the hash-chained audit trail in the same transaction.

The package loads lazily: ``from lumbar.operations import ROLES`` reads only the
vocabulary, and a module (with SQLAlchemy behind it) is imported when one of its
names is first used, so commands that need no database start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lumbar.operations.allocation import Slot, generate_allocation_list, read_allocation_csv
    from lumbar.operations.authentication import (
        RatingPrincipal,
        SurveyLinkRefusedError,
        SurveyPrincipal,
        authenticate_password,
        authenticate_rating_link,
        authenticate_survey,
        authenticate_token,
    )
    from lumbar.operations.backups import Restored, backup, restore
    from lumbar.operations.consent import ConsentRecord, NewConsentToken, ReconsentDue
    from lumbar.operations.consent_link import ConsentLink, authenticate_consent
    from lumbar.operations.consort import CONSORT_COLUMNS
    from lumbar.operations.context import Context, Principal, read_protocol
    from lumbar.operations.credentials import NewToken, TokenView, TotpEnrolment
    from lumbar.operations.enrolment import IdentityView, ParticipantView, ScreeningView
    from lumbar.operations.followup import Completion, FollowUp, ToCall
    from lumbar.operations.people import GrantView, SiteView, StaffView
    from lumbar.operations.randomization import Assignment, RandomizationReport
    from lumbar.operations.ratings import (
        GivenRatingView,
        NewRatingLink,
        RatingLink,
        RatingToday,
        SessionRatingForm,
    )
    from lumbar.operations.responses import QuestionnaireView
    from lumbar.operations.safety import AdverseEventView
    from lumbar.operations.schedule import VisitStatus, visit_statuses
    from lumbar.operations.scope import Scope
    from lumbar.operations.survey import NewSurveyToken, Survey, SurveyDue, SurveyLink
    from lumbar.operations.treatment import Adherence, TreatmentPlan
    from lumbar.operations.trial import Trial, TrialCreated, TrialInfo, create_trial
    from lumbar.operations.upgrades import Upgraded, upgrade
    from lumbar.operations.vocabulary import (
        EXPORT_FORMATS,
        GRANTS,
        OUTCOMES,
        PERMISSIONS,
        RELATEDNESS,
        ROLES,
        SEVERITIES,
        SOURCES,
        WITHDRAWAL_KINDS,
    )
    from lumbar.store.audit import AuditFinding, AuditReport

_WHERE = {
    "Adherence": "lumbar.operations.treatment",
    "AdverseEventView": "lumbar.operations.safety",
    "Assignment": "lumbar.operations.randomization",
    "AuditFinding": "lumbar.store.audit",
    "AuditReport": "lumbar.store.audit",
    "CONSORT_COLUMNS": "lumbar.operations.consort",
    "Completion": "lumbar.operations.followup",
    "Context": "lumbar.operations.context",
    "EXPORT_FORMATS": "lumbar.operations.vocabulary",
    "FollowUp": "lumbar.operations.followup",
    "GRANTS": "lumbar.operations.vocabulary",
    "GivenRatingView": "lumbar.operations.ratings",
    "GrantView": "lumbar.operations.people",
    "IdentityView": "lumbar.operations.enrolment",
    "NewRatingLink": "lumbar.operations.ratings",
    "NewSurveyToken": "lumbar.operations.survey",
    "ConsentLink": "lumbar.operations.consent_link",
    "ConsentRecord": "lumbar.operations.consent",
    "NewConsentToken": "lumbar.operations.consent",
    "ReconsentDue": "lumbar.operations.consent",
    "authenticate_consent": "lumbar.operations.consent_link",
    "NewToken": "lumbar.operations.credentials",
    "OUTCOMES": "lumbar.operations.vocabulary",
    "PERMISSIONS": "lumbar.operations.vocabulary",
    "ParticipantView": "lumbar.operations.enrolment",
    "Principal": "lumbar.operations.context",
    "QuestionnaireView": "lumbar.operations.responses",
    "RELATEDNESS": "lumbar.operations.vocabulary",
    "RatingLink": "lumbar.operations.ratings",
    "RatingToday": "lumbar.operations.ratings",
    "ROLES": "lumbar.operations.vocabulary",
    "RandomizationReport": "lumbar.operations.randomization",
    "Restored": "lumbar.operations.backups",
    "SEVERITIES": "lumbar.operations.vocabulary",
    "SOURCES": "lumbar.operations.vocabulary",
    "RatingPrincipal": "lumbar.operations.authentication",
    "Scope": "lumbar.operations.scope",
    "ScreeningView": "lumbar.operations.enrolment",
    "SessionRatingForm": "lumbar.operations.ratings",
    "SiteView": "lumbar.operations.people",
    "Slot": "lumbar.operations.allocation",
    "StaffView": "lumbar.operations.people",
    "Survey": "lumbar.operations.survey",
    "SurveyDue": "lumbar.operations.survey",
    "SurveyLink": "lumbar.operations.survey",
    "SurveyLinkRefusedError": "lumbar.operations.authentication",
    "SurveyPrincipal": "lumbar.operations.authentication",
    "ToCall": "lumbar.operations.followup",
    "TokenView": "lumbar.operations.credentials",
    "TotpEnrolment": "lumbar.operations.credentials",
    "TreatmentPlan": "lumbar.operations.treatment",
    "Trial": "lumbar.operations.trial",
    "TrialCreated": "lumbar.operations.trial",
    "TrialInfo": "lumbar.operations.trial",
    "Upgraded": "lumbar.operations.upgrades",
    "VisitStatus": "lumbar.operations.schedule",
    "WITHDRAWAL_KINDS": "lumbar.operations.vocabulary",
    "authenticate_password": "lumbar.operations.authentication",
    "authenticate_rating_link": "lumbar.operations.authentication",
    "authenticate_survey": "lumbar.operations.authentication",
    "authenticate_token": "lumbar.operations.authentication",
    "backup": "lumbar.operations.backups",
    "create_trial": "lumbar.operations.trial",
    "generate_allocation_list": "lumbar.operations.allocation",
    "read_allocation_csv": "lumbar.operations.allocation",
    "read_protocol": "lumbar.operations.context",
    "restore": "lumbar.operations.backups",
    "upgrade": "lumbar.operations.upgrades",
    "visit_statuses": "lumbar.operations.schedule",
}
"""Each public name and the module that defines it."""

__all__ = [
    "CONSORT_COLUMNS",
    "EXPORT_FORMATS",
    "GRANTS",
    "OUTCOMES",
    "PERMISSIONS",
    "RELATEDNESS",
    "ROLES",
    "SEVERITIES",
    "SOURCES",
    "WITHDRAWAL_KINDS",
    "Adherence",
    "AdverseEventView",
    "Assignment",
    "AuditFinding",
    "AuditReport",
    "Completion",
    "ConsentLink",
    "ConsentRecord",
    "Context",
    "FollowUp",
    "GivenRatingView",
    "GrantView",
    "IdentityView",
    "NewConsentToken",
    "NewRatingLink",
    "NewSurveyToken",
    "NewToken",
    "ParticipantView",
    "Principal",
    "QuestionnaireView",
    "RandomizationReport",
    "RatingLink",
    "RatingPrincipal",
    "RatingToday",
    "ReconsentDue",
    "Restored",
    "Scope",
    "ScreeningView",
    "SessionRatingForm",
    "SiteView",
    "Slot",
    "StaffView",
    "Survey",
    "SurveyDue",
    "SurveyLink",
    "SurveyLinkRefusedError",
    "SurveyPrincipal",
    "ToCall",
    "TokenView",
    "TotpEnrolment",
    "TreatmentPlan",
    "Trial",
    "TrialCreated",
    "TrialInfo",
    "Upgraded",
    "VisitStatus",
    "authenticate_consent",
    "authenticate_password",
    "authenticate_rating_link",
    "authenticate_survey",
    "authenticate_token",
    "backup",
    "create_trial",
    "generate_allocation_list",
    "read_allocation_csv",
    "read_protocol",
    "restore",
    "upgrade",
    "visit_statuses",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lumbar.operations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
