"""Gates over real HTTP: the SSE stream says when a run starts waiting, decisions are owner-checked,
and refusals come back as 409/422 bodies that say why."""

from __future__ import annotations

import json

import httpx
from temporalio.client import Client

from activities.resources import StudioResources
from ledger.run_records import RunRecords
from tests.conftest import ApiServer
from tests.test_pipelines import example
from tests.waiting import wait_until


async def test_sse_announces_the_wait_and_decisions_are_checked_over_http(
    api_server: ApiServer, user_id: str
) -> None:
    url, headers = api_server.url, api_server.headers(user_id)
    definition = example("review-then-3d.yaml")
    events: list[str] = []
    answers: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(timeout=90) as http:
        quote = (
            await http.post(
                f"{url}/v1/pipelines/quote", json={"definition": definition}, headers=headers
            )
        ).json()
        assert quote["summary"] == "now $0.12, after approval up to $0.42"
        started = await http.post(
            f"{url}/v1/pipelines", json={"definition": definition}, headers=headers
        )
        assert started.status_code == 202, started.text
        run = started.json()["id"]
        decisions = f"{url}/v1/pipelines/{run}/decisions"
        async with http.stream("GET", f"{url}/v1/pipelines/{run}/events", headers=headers) as sse:
            kind = ""
            async for line in sse.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                    events.append(kind)
                if kind != "awaiting_approval" or not line.startswith("data: "):
                    continue
                waiting = json.loads(line.removeprefix("data: "))
                assert waiting["gate"] == "review" and len(waiting["approval"]["shown"]) == 4
                answers["stranger"] = await http.post(
                    decisions,
                    json={"decision": "approve", "chosen": [0]},
                    headers=api_server.headers("someone-else"),
                )
                answers["out of range"] = await http.post(
                    decisions, json={"decision": "approve", "chosen": [9]}, headers=headers
                )
                answers["no choice"] = await http.post(
                    decisions, json={"decision": "approve"}, headers=headers
                )
                answers["approve"] = await http.post(
                    decisions,
                    json={"decision": "approve", "chosen": [1], "comment": "the second"},
                    headers=headers,
                )
                answers["again"] = await http.post(
                    decisions, json={"decision": "reject"}, headers=headers
                )
                kind = ""
        answers["ended"] = await http.post(decisions, json={"decision": "reject"}, headers=headers)
        status = (await http.get(f"{url}/v1/pipelines/{run}", headers=headers)).json()

    assert events.count("awaiting_approval") == 1 and events[-1] == "result", events
    assert answers["stranger"].status_code == 404, "another user's run does not exist for them"
    for name in ("out of range", "no choice"):
        assert answers[name].status_code == 422, answers[name].text
        assert answers[name].json()["errors"][0]["field"] == "chosen"
    assert "exactly 1 chosen" in answers["no choice"].text
    assert answers["approve"].status_code == 200, answers["approve"].text
    assert answers["approve"].json()["chosen"] == [1]
    for name, reason in (("again", "already approved"), ("ended", "has ended (succeeded)")):
        assert answers[name].status_code == 409, answers[name].text
        body = answers[name].json()
        assert body["error"] == "DecisionRefused" and reason in body["message"], body
    assert status["status"] == "completed"
    review = next(s for s in status["result"]["steps"] if s["name"] == "review")
    assert (
        review["approval"]["decided_by"] == user_id
        and review["approval"]["comment"] == "the second"
    )
    assert status["result"]["cost_usd"] == "0.42"


async def test_lists_show_a_waiting_run_live_and_record_a_terminated_one(
    api_server: ApiServer, client: Client, resources: StudioResources, user_id: str
) -> None:
    """The list reads the durable records; a record still "running" is checked with Temporal, so a
    waiting run shows ``awaiting_approval`` and a terminated one (which cannot write its own
    ending) shows ``terminated``, and that ending is then kept in the record."""
    url, headers = api_server.url, api_server.headers(user_id)
    async with httpx.AsyncClient(timeout=90) as http:
        started = await http.post(
            f"{url}/v1/pipelines",
            json={"definition": example("review-then-3d.yaml")},
            headers=headers,
        )
        run = started.json()["id"]

        async def waiting() -> bool:
            listed = await http.get(
                f"{url}/v1/pipelines", params={"status": "awaiting_approval"}, headers=headers
            )
            return [r["id"] for r in listed.json()["data"]] == [run]

        await wait_until(waiting, "the run to be listed as awaiting approval", timeout=60)
        await client.get_workflow_handle(run).terminate("test: an operator stops it")
        listed = (await http.get(f"{url}/v1/pipelines", headers=headers)).json()["data"]
        running = (
            await http.get(f"{url}/v1/pipelines", params={"status": "running"}, headers=headers)
        ).json()["data"]
    assert [(r["id"], r["status"]) for r in listed] == [(run, "terminated")]
    assert listed[0]["closed_at"] is not None and running == []
    record = RunRecords(resources.ledger.engine).find(run)
    assert record is not None and record.status == "terminated", "the ending is kept"
