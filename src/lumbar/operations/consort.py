"""CONSORT records: where every person screened stands, for the participant-flow diagram.

The tidy dataset holds randomized participants only; the CONSORT diagram
(Schulz et al., BMJ 2010;340:c332, item 13 and figure 1) starts earlier, with
everyone assessed for eligibility. :meth:`ConsortService.consort_records`
gives one row per person screened at the acting user's sites, in the same
de-identified terms as the dataset: study ids (or screening numbers for people
never enrolled), no names, contact details or dates of birth, and no calendar
dates (days since randomization only). Blinded users get no arm, and nothing
that would tell arms apart: whether an arm plans sessions (usual care does not)
and how many sessions a participant attended are withheld from them.

:func:`lumbar.analysis.consort.consort_counts` turns these records into the
diagram's numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from lumbar.operations.context import Service, Unit
from lumbar.operations.schedule import FOLLOW_UP_ENDS, recorded_questionnaires, visit_statuses
from lumbar.store.schema import (
    Allocation,
    Consent,
    Participant,
    ScreeningReason,
    TreatmentSession,
    Withdrawal,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CONSORT_COLUMNS", "ConsortService"]

CONSORT_COLUMNS = (
    "participant",
    "site",
    "eligibility",
    "reasons",
    "consented",
    "enrolled",
    "randomized",
    "arm",
    "arm_has_sessions",
    "sessions",
    "withdrawal",
    "withdrawal_reason",
    "withdrawal_day",
    "discontinued",
    "discontinued_reason",
)
"""The columns of :meth:`ConsortService.consort_records`, before one ``visit_<id>`` per
follow-up visit."""


class ConsortService(Service):
    """The records behind the CONSORT participant-flow diagram."""

    def consort_records(self, on: dt.date | None = None) -> pd.DataFrame:
        """One row per person screened at your sites, as of ``on`` (today by default).

        Columns (``<NA>`` where a value does not apply):

        - ``participant``: the study id, or the screening number if never enrolled;
        - ``site``: the site code;
        - ``eligibility``: ``eligible``, ``ineligible`` or ``incomplete``;
        - ``reasons``: a list of ``{rule, kind, category, label}``, one per
          eligibility rule the person fails (empty when none);
        - ``consented``, ``enrolled``, ``randomized``: true/false;
        - ``arm``: the arm id; empty if not randomized, and for blinded users;
        - ``arm_has_sessions``: whether the arm plans treatment sessions;
        - ``sessions``: treatment sessions attended (randomized participants);
          both ``<NA>`` for blinded users, whom they would unblind;
        - ``withdrawal``: the withdrawal that ended follow-up
          (``withdrew_consent`` or ``lost_to_follow_up``), else
          ``discontinued_treatment`` if treatment was stopped, else empty;
          ``withdrawal_reason`` its reason, ``withdrawal_day`` its effective day
          counted from randomization;
        - ``discontinued``: treatment was stopped (``discontinued_treatment``
          recorded, even if follow-up later ended), ``discontinued_reason`` why;
        - ``visit_<id>``: each follow-up visit's status on ``on`` (``complete``,
          ``missed``, ``withdrawn``, ``due``, ``overdue``, ``upcoming``).

        Needs the ``dataset`` permission, like :meth:`dataset`.
        """
        with self._unit("dataset", write=False) as unit:
            return self._consort_frame(unit, on or unit.now.date())

    def _consort_frame(self, unit: Unit, today: dt.date) -> pd.DataFrame:
        session = unit.session
        protocol = self.protocol
        visits = [visit.id for visit in protocol.follow_up_visits]
        codes = unit.site_codes()
        reasons: dict[int, list[dict[str, str]]] = {}
        for reason in session.execute(
            select(ScreeningReason).order_by(ScreeningReason.participant_id, ScreeningReason.id)
        ).scalars():
            reasons.setdefault(reason.participant_id, []).append(
                {
                    "rule": reason.rule_id,
                    "kind": reason.kind,
                    "category": reason.category,
                    "label": reason.label,
                }
            )
        consented = set(session.execute(select(Consent.participant_id)).scalars())
        allocations = {
            allocation.participant_id: allocation
            for allocation in session.execute(select(Allocation)).scalars()
        }
        attended: dict[int, int] = {
            participant_id: int(count)
            for participant_id, count in session.execute(
                select(TreatmentSession.participant_id, func.count()).group_by(
                    TreatmentSession.participant_id
                )
            ).all()
        }
        withdrawals: dict[int, list[Withdrawal]] = {}
        for withdrawal in session.execute(select(Withdrawal).order_by(Withdrawal.id)).scalars():
            withdrawals.setdefault(withdrawal.participant_id, []).append(withdrawal)
        recorded = recorded_questionnaires(session)

        unblinded = unit.scope.unblinded
        rows: list[dict[str, Any]] = []
        for participant in session.execute(
            unit.scope.visible(select(Participant).order_by(Participant.screening_number))
        ).scalars():
            allocation = allocations.get(participant.id)
            left = withdrawals.get(participant.id, [])
            ending = next((w for w in left if w.kind in FOLLOW_UP_ENDS), None)
            stopped = next((w for w in left if w.kind == "discontinued_treatment"), None)
            shown = ending or stopped
            row: dict[str, Any] = {
                "participant": participant.study_id or participant.screening_number,
                "site": codes[participant.site_id],
                "eligibility": participant.eligibility,
                "reasons": reasons.get(participant.id, []),
                "consented": participant.id in consented,
                "enrolled": participant.study_id is not None,
                "randomized": allocation is not None,
                "arm": None,
                "arm_has_sessions": None,
                "sessions": None,
                "withdrawal": shown.kind if shown else None,
                "withdrawal_reason": shown.reason if shown else None,
                "withdrawal_day": None,
                "discontinued": stopped is not None,
                "discontinued_reason": stopped.reason if stopped else None,
                **{f"visit_{visit}": None for visit in visits},
            }
            if allocation is not None:
                row["arm"] = self._shown_arm(unit, allocation)
                if unblinded:
                    arm = self._arm(allocation)
                    row["arm_has_sessions"] = protocol.arm(arm).sessions.planned > 0
                    row["sessions"] = attended.get(participant.id, 0)
                if shown is not None:
                    row["withdrawal_day"] = (shown.effective_date - allocation.randomized_on).days
                for status in visit_statuses(
                    protocol,
                    study_id=str(participant.study_id),
                    site=row["site"],
                    randomized_on=allocation.randomized_on,
                    recorded=recorded.get(participant.id, {}),
                    today=today,
                    follow_up_ended_on=ending.effective_date if ending else None,
                ):
                    row[f"visit_{status.visit}"] = status.status
            rows.append(row)
        import pandas as pd  # noqa: PLC0415 - only the analysis side loads pandas

        frame = pd.DataFrame(rows, columns=[*CONSORT_COLUMNS, *(f"visit_{v}" for v in visits)])
        for column in ("consented", "enrolled", "randomized", "discontinued"):
            frame[column] = frame[column].astype(bool)
        frame["arm_has_sessions"] = frame["arm_has_sessions"].astype("boolean")
        for column in ("sessions", "withdrawal_day"):
            frame[column] = frame[column].astype("Int64")
        return frame
