"""Trial operations: the only layer that writes to a trial database.

:func:`create_trial` makes a trial database from a protocol; :class:`Trial`
opens one on behalf of a member of staff and carries every operation
(screening, consent, enrolment, questionnaires, randomization, schedule,
sessions, adverse events, withdrawals, the tidy dataset, CONSORT records).
Every write is validated first, fails whole, and appends to the hash-chained
audit trail in the same transaction.
"""

from lumbar.operations.access import ROLES, Actor
from lumbar.operations.allocation import Slot, generate_allocation_list, read_allocation_csv
from lumbar.operations.backup import backup, restore
from lumbar.operations.consort import CONSORT_COLUMNS, ConsortOperations
from lumbar.operations.dataset import EXPORT_FORMATS
from lumbar.operations.enrolment import IdentityView, ScreeningView
from lumbar.operations.people import SiteView, StaffView
from lumbar.operations.randomization import Assignment, RandomizationReport
from lumbar.operations.responses import SOURCES, QuestionnaireView
from lumbar.operations.schedule import VisitStatus, visit_statuses
from lumbar.operations.treatment import (
    OUTCOMES,
    RELATEDNESS,
    SEVERITIES,
    WITHDRAWAL_KINDS,
    Adherence,
    AdverseEventView,
)
from lumbar.operations.trial import ParticipantView, Trial, TrialCreated, TrialInfo, create_trial

__all__ = [
    "CONSORT_COLUMNS",
    "EXPORT_FORMATS",
    "OUTCOMES",
    "RELATEDNESS",
    "ROLES",
    "SEVERITIES",
    "SOURCES",
    "WITHDRAWAL_KINDS",
    "Actor",
    "Adherence",
    "AdverseEventView",
    "Assignment",
    "ConsortOperations",
    "IdentityView",
    "ParticipantView",
    "QuestionnaireView",
    "RandomizationReport",
    "ScreeningView",
    "SiteView",
    "Slot",
    "StaffView",
    "Trial",
    "TrialCreated",
    "TrialInfo",
    "VisitStatus",
    "backup",
    "create_trial",
    "generate_allocation_list",
    "read_allocation_csv",
    "restore",
    "visit_statuses",
]
