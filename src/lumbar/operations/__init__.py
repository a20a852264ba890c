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
"""

from lumbar.operations.allocation import Slot, generate_allocation_list, read_allocation_csv
from lumbar.operations.authentication import (
    SurveyPrincipal,
    authenticate_password,
    authenticate_survey,
    authenticate_token,
)
from lumbar.operations.backup import Restored, backup, restore
from lumbar.operations.consort import CONSORT_COLUMNS
from lumbar.operations.context import Context, Principal, read_protocol
from lumbar.operations.credentials import NewToken, TokenView, TotpEnrolment
from lumbar.operations.dataset import EXPORT_FORMATS
from lumbar.operations.enrolment import (
    WITHDRAWAL_KINDS,
    IdentityView,
    ParticipantView,
    ScreeningView,
)
from lumbar.operations.people import GrantView, SiteView, StaffView
from lumbar.operations.randomization import Assignment, RandomizationReport
from lumbar.operations.responses import SOURCES, QuestionnaireView
from lumbar.operations.safety import OUTCOMES, RELATEDNESS, SEVERITIES, AdverseEventView
from lumbar.operations.schedule import VisitStatus, visit_statuses
from lumbar.operations.scope import GRANTS, PERMISSIONS, ROLES, Scope
from lumbar.operations.survey import NewSurveyToken, Survey, SurveyDue
from lumbar.operations.treatment import Adherence, TreatmentPlan
from lumbar.operations.trial import Trial, TrialCreated, TrialInfo, create_trial
from lumbar.store.audit import AuditFinding, AuditReport

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
    "Context",
    "GrantView",
    "IdentityView",
    "NewSurveyToken",
    "NewToken",
    "ParticipantView",
    "Principal",
    "QuestionnaireView",
    "RandomizationReport",
    "Restored",
    "Scope",
    "ScreeningView",
    "SiteView",
    "Slot",
    "StaffView",
    "Survey",
    "SurveyDue",
    "SurveyPrincipal",
    "TokenView",
    "TotpEnrolment",
    "TreatmentPlan",
    "Trial",
    "TrialCreated",
    "TrialInfo",
    "VisitStatus",
    "authenticate_password",
    "authenticate_survey",
    "authenticate_token",
    "backup",
    "create_trial",
    "generate_allocation_list",
    "read_allocation_csv",
    "read_protocol",
    "restore",
    "visit_statuses",
]
