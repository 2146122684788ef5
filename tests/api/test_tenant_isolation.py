"""Tenant isolation as a state machine: three tenants interleave submits (some of the same texts), lists with
status filters and pages, gets, downloads and stats through the app on moto, and no response ever shows one
tenant another's ids, texts, counts or URLs. Each run draws fresh tenants, so earlier runs' tasks (still in
moto) are other tenants' tasks too, which no response may show either."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.api.support import create_key, finish_task

TENANTS = ("a", "b", "c")
# Texts every tenant may submit: the same text from two tenants must be two conversions.
SHARED_TEXTS = ("Hyvää huomenta", "Sama lause kaikille", "Kolmas teksti")


@dataclass
class Conversion:
    tenant: str
    text: str
    done: bool = False


@dataclass
class Tenant:
    name: str
    client: TestClient
    texts: dict[str, str] = field(default_factory=dict)  # text -> conversion id
    submitted: int = 0
    hits: int = 0


def test_no_response_shows_another_tenants_conversions(app, repository, resources) -> None:
    seen_ids: set[str] = set()  # every id handed out in any run: ids never repeat across tenants

    class Isolation(RuleBasedStateMachine):
        conversions = Bundle("conversions")

        def __init__(self) -> None:
            super().__init__()
            run = uuid.uuid4().hex[:8]
            self.tenants = {
                name: Tenant(
                    name=f"{name}-{run}",
                    client=TestClient(app, headers={"x-api-key": create_key(resources, f"{name}-{run}")}),
                )
                for name in TENANTS
            }
            self.by_id: dict[str, Conversion] = {}

        # -- the one check every response goes through -------------------------------------------------

        def checked(self, tenant: str, response: Any, *, asked: str | None = None) -> Any:
            """No id, own text or URL of another tenant's conversion appears anywhere in the response, but
            for the id the caller itself asked for (a 404 names it back)."""
            body = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
            if asked is not None:
                body = body.replace(asked, "")
            for task_id, conversion in self.by_id.items():
                if conversion.tenant != tenant:
                    assert task_id not in body, (tenant, task_id)
                    if conversion.text not in SHARED_TEXTS:
                        assert conversion.text not in body
            return response

        def own_ids(self, tenant: str, *, done: bool | None = None) -> set[str]:
            return {
                task_id
                for task_id, c in self.by_id.items()
                if c.tenant == tenant and (done is None or c.done is done)
            }

        # -- rules --------------------------------------------------------------------------------------

        @rule(
            target=conversions,
            tenant=st.sampled_from(TENANTS),
            text=st.one_of(st.sampled_from(SHARED_TEXTS), st.integers(0, 3).map(lambda n: f"oma {n}")),
        )
        def submit(self, tenant: str, text: str) -> str:
            me = self.tenants[tenant]
            if text.startswith("oma"):
                text = f"{me.name} {text}"  # this tenant's own text, which no other may ever see
            response = self.checked(tenant, me.client.post("/api/v1/tts/convert", json={"text": text}))
            assert response.status_code == 202, response.text
            body = response.json()
            task_id = body["conversion_id"]
            if text in me.texts:
                assert (task_id, body["deduplicated"]) == (me.texts[text], True)
                me.hits += 1
            else:
                # a new conversion, whoever else submitted the same text
                assert body["deduplicated"] is False
                assert task_id not in seen_ids
                seen_ids.add(task_id)
                me.texts[text] = task_id
                me.submitted += 1
                self.by_id[task_id] = Conversion(tenant=tenant, text=text)
            return task_id

        @rule(
            tenant=st.sampled_from(TENANTS),
            texts=st.lists(st.sampled_from(SHARED_TEXTS), min_size=1, max_size=3),
        )
        def submit_batch(self, tenant: str, texts: list[str]) -> None:
            me = self.tenants[tenant]
            response = self.checked(
                tenant, me.client.post("/api/v1/tts/convert-multiple", json={"texts": texts})
            )
            assert response.status_code == 202, response.text
            for text, item in zip(texts, response.json()["items"], strict=True):
                if text in me.texts:
                    assert item["conversion_id"] == me.texts[text]
                    me.hits += 1
                else:
                    assert item["conversion_id"] not in seen_ids
                    seen_ids.add(item["conversion_id"])
                    me.texts[text] = item["conversion_id"]
                    me.submitted += 1
                    self.by_id[item["conversion_id"]] = Conversion(tenant=tenant, text=text)

        @rule(task_id=conversions)
        def worker_finishes(self, task_id: str) -> None:
            if not self.by_id[task_id].done:
                finish_task(repository, resources, task_id)
                self.by_id[task_id].done = True

        @rule(tenant=st.sampled_from(TENANTS), task_id=conversions)
        def get(self, tenant: str, task_id: str) -> None:
            response = self.checked(
                tenant, self.tenants[tenant].client.get(f"/api/v1/tts/{task_id}"), asked=task_id
            )
            if self.by_id[task_id].tenant == tenant:
                assert response.status_code == 200
                assert response.json()["conversion_id"] == task_id
            else:
                unknown = self.tenants[tenant].client.get(f"/api/v1/tts/{'0' * 32}")
                assert response.status_code == unknown.status_code == 404
                assert response.text.replace(task_id, "0" * 32) == unknown.text

        @rule(tenant=st.sampled_from(TENANTS), task_id=conversions, redirect=st.booleans())
        def download(self, tenant: str, task_id: str, redirect: bool) -> None:
            client = self.tenants[tenant].client
            params = {"redirect": "true"} if redirect else {}
            response = self.checked(
                tenant,
                client.get(f"/api/v1/tts/{task_id}/download", params=params, follow_redirects=False),
                asked=task_id,
            )
            conversion = self.by_id[task_id]
            if conversion.tenant != tenant:
                assert response.status_code == 404
                assert response.json()["error"]["code"] == "task_not_found"
            elif not conversion.done:
                assert response.status_code == 409
            elif redirect:
                assert response.status_code == 307
                assert f"audio/{task_id}." in response.headers["location"]
            else:
                assert response.status_code == 200
                assert f"audio/{task_id}." in response.json()["url"]

        @rule(
            tenant=st.sampled_from(TENANTS),
            status=st.sampled_from([None, "queued", "done"]),
            limit=st.integers(1, 4),
        )
        def list_all_pages(self, tenant: str, status: str | None, limit: int) -> None:
            client = self.tenants[tenant].client
            listed: list[str] = []
            token = None
            while True:
                params: dict[str, Any] = {"limit": limit}
                if status:
                    params["status"] = status
                if token:
                    params["next_token"] = token
                response = self.checked(tenant, client.get("/api/v1/tts", params=params))
                assert response.status_code == 200, response.text
                page = response.json()
                listed += [item["conversion_id"] for item in page["items"]]
                token = page["next_token"]
                if not token:
                    break
            expected = self.own_ids(tenant, done=None if status is None else status == "done")
            assert len(listed) == len(set(listed))
            assert set(listed) == expected

        @rule(
            owner=st.sampled_from(TENANTS),
            caller=st.sampled_from(TENANTS),
            status=st.sampled_from([None, "queued"]),
        )
        def use_a_page_token(self, owner: str, caller: str, status: str | None) -> None:
            params: dict[str, Any] = {"limit": 1, **({"status": status} if status else {})}
            token = self.tenants[owner].client.get("/api/v1/tts", params=params).json()["next_token"]
            if token is None:
                return
            response = self.checked(
                caller, self.tenants[caller].client.get("/api/v1/tts", params={**params, "next_token": token})
            )
            if owner == caller:
                assert response.status_code == 200
            else:
                assert response.status_code == 400
                assert response.json()["error"]["code"] == "invalid_page_token"

        @rule(tenant=st.sampled_from(TENANTS))
        def stats(self, tenant: str) -> None:
            me = self.tenants[tenant]
            response = self.checked(tenant, me.client.get("/api/v1/tts/stats"))
            body = response.json()
            done = len(self.own_ids(tenant, done=True))
            assert body["submitted"] == me.submitted
            assert body["dedupe_hits"] == me.hits
            assert body["counts"]["done"] == done
            assert body["counts"]["queued"] == me.submitted - done

        @invariant()
        def ids_belong_to_one_tenant(self) -> None:
            for tenant in self.tenants.values():
                assert set(tenant.texts.values()) <= self.own_ids(
                    next(k for k, v in self.tenants.items() if v is tenant)
                )

    run_state_machine_as_test(
        Isolation,
        settings=settings(
            max_examples=12,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
