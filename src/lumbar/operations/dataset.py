"""The tidy dataset: the seam between collecting data and analysing it.

One row per randomized participant and visit (baseline included), in the
schema documented in ``docs/dataset.md``. It holds study ids, never names or
contact details, and days since randomization, never calendar dates. A blinded
user's dataset has no arm at all (the ``arm`` column is empty): they can describe
the trial as a whole, never compare its arms.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lumbar.errors import OperationError, Problem
from lumbar.instruments import INSTRUMENTS
from lumbar.operations.context import Service, Unit
from lumbar.operations.schedule import FOLLOW_UP_ENDS, visit_statuses
from lumbar.operations.vocabulary import EXPORT_FORMATS
from lumbar.store.schema import (
    Allocation,
    Participant,
    Questionnaire,
    QuestionnaireScore,
    Withdrawal,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DatasetService", "score_columns"]


def score_columns(protocol_instruments: list[str]) -> list[str]:
    """The score columns for these instruments: ``<instrument>_<score>``."""
    return [
        f"{name}_{score.id}"
        for name in protocol_instruments
        for score in INSTRUMENTS.get(name).scores
    ]


class DatasetService(Service):
    """Building and exporting the tidy dataset."""

    def dataset(self, on: dt.date | None = None) -> pd.DataFrame:
        """The tidy dataset as of ``on`` (today by default); see docs/dataset.md."""
        with self._unit("dataset", write=False) as unit:
            return self._build(unit, on or unit.now.date())

    def export(self, path: Path, file_format: str = "csv") -> int:
        """Write the de-identified dataset to ``path``; return the number of rows (audited)."""
        if file_format not in EXPORT_FORMATS:
            raise OperationError(
                "unknown format",
                [Problem("format", "is not supported", file_format, "use csv or parquet")],
            )
        with self._unit("dataset") as unit:
            frame = self._build(unit, unit.now.date())
            if file_format == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            unit.audit(
                "dataset.export",
                "dataset",
                file_format,
                new={"rows": len(frame), "columns": len(frame.columns), "file": path.name},
            )
            return len(frame)

    def _build(self, unit: Unit, today: dt.date) -> pd.DataFrame:
        session = unit.session
        protocol = self.protocol
        instruments = [instrument.name for instrument in protocol.instruments()]
        columns = score_columns(instruments)
        baseline_columns = score_columns(list(protocol.baseline.instruments))
        codes = unit.site_codes()
        factors = [factor.id for factor in protocol.randomization.strata]
        rows: list[dict[str, Any]] = []
        participants = session.execute(
            unit.scope.visible(
                select(Participant, Allocation)
                .join(Allocation, Allocation.participant_id == Participant.id)
                .order_by(Participant.study_id)
            )
        ).all()
        all_scores, all_completed = self._scores(unit)
        endings = dict(
            session.execute(
                select(Withdrawal.participant_id, Withdrawal.effective_date).where(
                    Withdrawal.kind.in_(FOLLOW_UP_ENDS)
                )
            ).all()
        )
        for participant, allocation in participants:
            scores = all_scores.get(participant.id, {})
            completed = all_completed.get(participant.id, {})
            ended = endings.get(participant.id)
            recorded = {
                visit: [(instrument, day) for instrument, (day, _, _) in pairs.items()]
                for visit, pairs in completed.items()
            }
            statuses = {
                status.visit: status
                for status in visit_statuses(
                    protocol,
                    study_id=str(participant.study_id),
                    site=codes[participant.site_id],
                    randomized_on=allocation.randomized_on,
                    recorded=recorded,
                    today=today,
                    follow_up_ended_on=ended,
                )
            }
            common: dict[str, Any] = {
                "participant": participant.study_id,
                "site": codes[participant.site_id],
                "arm": self._shown_arm(unit, allocation),
                "stratum": allocation.stratum,
            }
            levels = dict(
                part.split("=", 1) for part in allocation.stratum.split(";") if "=" in part
            )
            for factor in factors:
                common[f"stratum_{factor}"] = levels.get(factor)
            for covariate in protocol.analysis.covariates:
                common[covariate] = participant.screening_answers.get(covariate)
            baseline_scores = scores.get(protocol.baseline.id, {})
            for column in baseline_columns:
                common[f"{column}_baseline"] = baseline_scores.get(column)
            for visit in protocol.visits:
                row = dict(common)
                done = completed.get(visit.id, {})
                last = max(day for day, _, _ in done.values()) if done else None
                row["visit"] = visit.id
                row["visit_day"] = visit.day
                row["day"] = (last - allocation.randomized_on).days if last else None
                if visit.id == protocol.baseline.id:
                    complete = all(name in done for name in visit.instruments)
                    row["status"] = "complete" if complete else "incomplete"
                else:
                    row["status"] = statuses[visit.id].status
                row["window"], row["days_from_target"] = _row_window(done.values())
                row["out_of_window"] = row["window"] in ("early", "late")
                visit_scores = scores.get(visit.id, {})
                for column in columns:
                    row[column] = visit_scores.get(column)
                row["synthetic"] = participant.synthetic
                rows.append(row)
        ordered = [
            "participant",
            "site",
            "arm",
            "stratum",
            *(f"stratum_{factor}" for factor in factors),
            *protocol.analysis.covariates,
            "visit",
            "visit_day",
            "day",
            "status",
            "window",
            "days_from_target",
            "out_of_window",
            *(f"{column}_baseline" for column in baseline_columns),
            *columns,
            "synthetic",
        ]
        import pandas as pd  # noqa: PLC0415 - only the analysis side loads pandas

        frame = pd.DataFrame(rows, columns=ordered)
        for column in ("visit_day", "day", "days_from_target"):
            frame[column] = frame[column].astype("Int64")
        for column in (*columns, *(f"{c}_baseline" for c in baseline_columns)):
            frame[column] = frame[column].astype("Float64")
        return frame

    @staticmethod
    def _scores(
        unit: Unit,
    ) -> tuple[
        dict[int, dict[str, dict[str, float | None]]], dict[int, dict[str, dict[str, Dated]]]
    ]:
        """Every score, and every completion date with its window status, by participant id
        then visit (two queries)."""
        scores: dict[int, dict[str, dict[str, float | None]]] = {}
        completed: dict[int, dict[str, dict[str, Dated]]] = {}
        for participant_id, visit, instrument, completed_on, window, offset in unit.session.execute(
            select(
                Questionnaire.participant_id,
                Questionnaire.visit,
                Questionnaire.instrument,
                Questionnaire.completed_on,
                Questionnaire.window_status,
                Questionnaire.days_from_target,
            )
        ).all():
            completed.setdefault(participant_id, {}).setdefault(visit, {})[instrument] = (
                completed_on,
                window,
                offset,
            )
        for participant_id, visit, instrument, score, value in unit.session.execute(
            select(
                Questionnaire.participant_id,
                Questionnaire.visit,
                Questionnaire.instrument,
                QuestionnaireScore.score,
                QuestionnaireScore.value,
            ).join(Questionnaire, Questionnaire.id == QuestionnaireScore.questionnaire_id)
        ).all():
            scores.setdefault(participant_id, {}).setdefault(visit, {})[f"{instrument}_{score}"] = (
                value
            )
        return scores, completed


Dated = tuple[dt.date, str | None, int | None]
"""A recorded questionnaire's completion date, window status and days from target."""


def _row_window(recorded: Iterable[Dated]) -> tuple[str | None, int | None]:
    """A visit row's window status and days from target, from its questionnaires' own.

    The row is ``early`` (or ``late``) when any of its questionnaires is, with the days
    of the one furthest from the target day; ``in_window`` when every one is inside; empty
    when none is recorded, or for the baseline (completed before randomization, which its
    window counts from).
    """
    judged = [(window, offset) for _, window, offset in recorded if window is not None]
    if not judged:
        return None, None
    for status in ("early", "late"):
        outside = [offset for window, offset in judged if window == status]
        if outside:
            return status, max(outside, key=lambda days: abs(days or 0))
    return "in_window", max((offset for _, offset in judged), key=lambda days: abs(days or 0))
