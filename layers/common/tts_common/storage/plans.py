"""The fan-out ledger: one item per fanned-out task (pk `plan#<task id>`, in the tasks table), counting what
its parts have done. Every write is one conditional UpdateItem, so redelivered parts and racing workers
count each part once, and the pieces done only ever grow (a sum of per-part high-water marks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from tts_common.storage.schema import PARTITION_KEY, TTL_ATTRIBUTE

PLAN_PREFIX = "plan#"


def plan_pk(task_id: str) -> str:
    return f"{PLAN_PREFIX}{task_id}"


@dataclass(frozen=True, slots=True)
class PlanState:
    task_id: str
    parts_total: int
    pieces_total: int
    part_done: dict[int, int]
    stored: frozenset[int]
    failed_reason: str | None = None
    join_done_at: str | None = None
    resent_count: int = 0
    join_job: str | None = None  # the JoinJob's body, sent by the part that sees every part stored

    @property
    def pieces_done(self) -> int:
        return min(self.pieces_total, sum(self.part_done.values()))

    @property
    def all_stored(self) -> bool:
        return len(self.stored) >= self.parts_total


def _conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class PlanLedger:
    def __init__(self, *, dynamodb_client: Any, table_name: str, ttl_days: int = 30) -> None:
        self._db = dynamodb_client
        self._table = table_name
        self._ttl = timedelta(days=ttl_days)

    def _key(self, task_id: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": plan_pk(task_id)}}

    def create(
        self,
        task_id: str,
        *,
        parts_total: int,
        pieces_total: int,
        join_job: str,
        now: datetime,
        tenant_id: str | None = None,
    ) -> PlanState:
        """The plan, written once; a re-plan (the parent job redelivered) gets the one already there."""
        item: dict[str, Any] = {
            **self._key(task_id),
            "task_id": {"S": task_id},
            "parts_total": {"N": str(parts_total)},
            "pieces_total": {"N": str(pieces_total)},
            "part_done": {"M": {}},
            "stored": {"M": {}},
            "resent_count": {"N": "0"},
            "join_job": {"S": join_job},
            "created_at": {"S": now.isoformat()},
            TTL_ATTRIBUTE: {"N": str(int((now + self._ttl).timestamp()))},
        }
        if tenant_id:
            item["tenant_id"] = {"S": tenant_id}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            state = self.get(task_id)
            assert state is not None
            return state
        return PlanState(task_id, parts_total, pieces_total, {}, frozenset(), join_job=join_job)

    def get(self, task_id: str) -> PlanState | None:
        got = self._db.get_item(TableName=self._table, Key=self._key(task_id), ConsistentRead=True)
        item = got.get("Item")
        return None if item is None else _state(item)

    def _update(
        self, task_id: str, expression: str, condition: str, values: dict[str, Any], names: dict[str, str]
    ) -> PlanState | None:
        """ALL_NEW after the update, or None when the condition failed."""
        try:
            got = self._db.update_item(
                TableName=self._table,
                Key=self._key(task_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    "#pk": PARTITION_KEY,
                    **{k: v for k, v in _NAMES.items() if k in expression or k in condition},
                    **names,
                },
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return _state(got["Attributes"])

    def report(self, task_id: str, part: int, done: int) -> PlanState | None:
        """Part `part` has `done` pieces synthesized: raise its mark (never lower it)."""
        state = self._update(
            task_id,
            "SET #pd.#k = :n",
            "attribute_exists(#pk) AND (attribute_not_exists(#pd.#k) OR #pd.#k < :n)",
            {":n": {"N": str(done)}},
            {"#k": str(part)},
        )
        return state if state is not None else self.get(task_id)

    def mark_stored(self, task_id: str, part: int, pieces: int) -> tuple[PlanState | None, bool]:
        """Part `part` is in the bucket; True the one time it is counted."""
        state = self._update(
            task_id,
            "SET #st.#k = :t, #pd.#k = :n",
            "attribute_exists(#pk) AND attribute_not_exists(#st.#k)",
            {":t": {"BOOL": True}, ":n": {"N": str(pieces)}},
            {"#k": str(part)},
        )
        if state is None:
            return self.get(task_id), False
        return state, True

    def fail(self, task_id: str, reason: str) -> None:
        self._update(
            task_id,
            "SET #fr = if_not_exists(#fr, :r)",
            "attribute_exists(#pk)",
            {":r": {"S": reason[:2000]}},
            {},
        )

    def join_done(self, task_id: str, at: datetime) -> None:
        self._update(
            task_id,
            "SET #jd = if_not_exists(#jd, :at)",
            "attribute_exists(#pk)",
            {":at": {"S": at.isoformat()}},
            {},
        )

    def note_resent(self, task_id: str, at: datetime) -> None:
        self._update(
            task_id,
            "SET #ra = :at ADD #rc :one",
            "attribute_exists(#pk)",
            {":at": {"S": at.isoformat()}, ":one": {"N": "1"}},
            {},
        )


# Every attribute by a placeholder (`stored` is a DynamoDB reserved word, and others may become one).
_NAMES = {
    "#pd": "part_done",
    "#st": "stored",
    "#fr": "failed_reason",
    "#jd": "join_done_at",
    "#rc": "resent_count",
    "#ra": "resent_at",
}


def _state(item: dict[str, Any]) -> PlanState:
    return PlanState(
        task_id=item["task_id"]["S"],
        parts_total=int(item["parts_total"]["N"]),
        pieces_total=int(item["pieces_total"]["N"]),
        part_done={int(k): int(v["N"]) for k, v in item.get("part_done", {}).get("M", {}).items()},
        stored=frozenset(int(k) for k in item.get("stored", {}).get("M", {})),
        failed_reason=item.get("failed_reason", {}).get("S"),
        join_done_at=item.get("join_done_at", {}).get("S"),
        resent_count=int(item.get("resent_count", {}).get("N", "0")),
        join_job=item.get("join_job", {}).get("S"),
    )
