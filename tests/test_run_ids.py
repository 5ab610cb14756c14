"""Workflow ids from caller input never collide across users (property-based, hypothesis).

Before: ``u-1`` + key ``x`` and ``u`` + key ``1-x`` got the same workflow id, and so did
``alice@x.com`` / ``alice-x.com`` and users sharing their first 40 characters; the second caller's
job never ran. Ids are now a readable prefix plus a digest of the full (user, key).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.operation import OperationRequest
from domain.run_ids import MAX_KEY_CHARS, keyed_digest, new_operation_id, new_pipeline_id

QUICK = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
RUN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,120}$")
USER_ALPHABET = st.sampled_from("ab1-@._:")
users = st.text(USER_ALPHABET, min_size=1, max_size=120)
"""Users as the API admits them: short alphabets make near-misses (``u-1`` vs ``u``) likely."""
keys = st.text(min_size=1, max_size=MAX_KEY_CHARS) | st.text("x1-", min_size=1, max_size=8)
"""Any text, unicode included, and short keys made of the separators that used to collide."""


@QUICK
@given(users, keys, users, keys)
def test_different_user_or_key_never_share_an_id(u1: str, k1: str, u2: str, k2: str) -> None:
    same = (u1, k1) == (u2, k2)
    assert (
        new_operation_id("text_to_image", u1, k1) == new_operation_id("text_to_image", u2, k2)
    ) is same
    assert (new_pipeline_id("p", u1, k1) == new_pipeline_id("p", u2, k2)) is same


@QUICK
@given(users, keys, st.sampled_from(["text_to_image", "image_to_3d", "face_swap"]))
def test_ids_are_valid_workflow_ids_with_room_for_children(user: str, key: str, op: str) -> None:
    operation_id = new_operation_id(op, user, key)
    assert RUN_ID.fullmatch(operation_id)
    assert operation_id.startswith(f"{op}-") and operation_id == new_operation_id(op, user, key)
    OperationRequest(operation_id=operation_id, user_id=user, operation=op, model_id="m", inputs={})
    pipeline_id = new_pipeline_id("a-very-long-pipeline-name-" * 4, user, key)
    # The longest child: a resumed run's step (41 characters) with a fan-out index.
    child = f"{pipeline_id}-r99.{'s' * 41}.199"
    assert RUN_ID.fullmatch(child), len(child)


def test_the_collisions_reported_in_issue_11_are_gone() -> None:
    pairs = [
        (("u-1", "x"), ("u", "1-x")),
        (("alice@x.com", "k"), ("alice-x.com", "k")),
        (("a" * 40 + "-one", "k"), ("a" * 40 + "-two", "k")),
        (("u", "é"), ("u", "e")),
    ]
    for (u1, k1), (u2, k2) in pairs:
        assert new_operation_id("caption", u1, k1) != new_operation_id("caption", u2, k2)
        assert keyed_digest(u1, k1) != keyed_digest(u2, k2)


def test_ids_without_a_key_are_fresh_each_time() -> None:
    assert new_operation_id("caption", "u") != new_operation_id("caption", "u")
