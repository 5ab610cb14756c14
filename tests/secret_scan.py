"""Looking for secrets where Temporal keeps data: every payload of a run, decoded first.

History JSON holds payloads base64-encoded, so searching it as text sees no workflow or activity
input, result, memo, search attribute, summary or failure detail. This walks every protobuf message
of a run's history and description (and of its child runs), decodes each ``Payload`` with the
client's own data converter (the project's, codec included), and searches the decoded text along
with the plain JSON (failure messages, stack traces, names).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client


@dataclass
class Scan:
    """What a run keeps, as searchable text: ``(where, text)`` pieces."""

    pieces: list[tuple[str, str]] = field(default_factory=list)
    payloads: int = 0
    runs: list[str] = field(default_factory=list)

    def findings(self, *secrets: str) -> list[str]:
        """Where any of ``secrets`` occurs (empty when none does)."""
        return [
            f"{where}: secret #{i}"
            for where, text in self.pieces
            for i, secret in enumerate(secrets)
            if secret and secret in text
        ]

    def decoded_text(self) -> str:
        return "\n".join(text for where, text in self.pieces if "payload" in where)


def _payloads(message: Message, path: str) -> Iterator[tuple[str, Payload]]:
    """Every ``Payload`` inside ``message`` (maps and repeated fields included), with its path."""
    if isinstance(message, Payload):
        yield path, message
        return
    for descriptor, value in message.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        name = f"{path}.{descriptor.name}"
        if descriptor.message_type.GetOptions().map_entry:
            value_field = descriptor.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    yield from _payloads(item, f"{name}[{key}]")
        elif _repeated(descriptor):
            for i, item in enumerate(value):
                yield from _payloads(item, f"{name}[{i}]")
        else:
            yield from _payloads(value, name)


def _repeated(descriptor: FieldDescriptor) -> bool:
    repeated = getattr(descriptor, "is_repeated", None)  # protobuf >= 6 has no ``label``
    if repeated is not None:
        return bool(repeated)
    return bool(descriptor.label == FieldDescriptor.LABEL_REPEATED)


async def _decode(client: Client, payload: Payload) -> str:
    """The payload as the project's converter reads it; its raw bytes when it can't."""
    metadata = {k: v.decode("utf-8", "replace") for k, v in payload.metadata.items()}
    try:
        [value] = await client.data_converter.decode([payload])
        text = json.dumps(value, default=str)
    except Exception:  # noqa: BLE001 - undecodable: search what is there
        text = payload.data.decode("utf-8", "replace")
    return f"{json.dumps(metadata)} {text}"


async def _scan_message(client: Client, scan: Scan, message: Message, where: str) -> None:
    scan.pieces.append((f"{where} json", MessageToJson(message)))
    for path, payload in _payloads(message, where):
        scan.payloads += 1
        scan.pieces.append((f"{path} payload", await _decode(client, payload)))


async def scan_run(client: Client, workflow_id: str, scan: Scan | None = None) -> Scan:
    """Scan a run's history and description, then each child run's, recursively."""
    scan = scan or Scan()
    scan.runs.append(workflow_id)
    handle = client.get_workflow_handle(workflow_id)
    children: list[str] = []
    for event in (await handle.fetch_history()).events:
        where = f"{workflow_id} event {event.event_id} ({event.WhichOneof('attributes')})"
        await _scan_message(client, scan, event, where)
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            children.append(
                event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            )
    description = (await handle.describe()).raw_description
    await _scan_message(client, scan, description, f"{workflow_id} description")
    for child in children:
        if child not in scan.runs:
            await scan_run(client, child, scan)
    return scan
