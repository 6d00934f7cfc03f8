"""The shared repeats table."""

from __future__ import annotations

from protocols.repeats import REPEATS_LIMIT, recall, remember


def test_a_remembered_reply_is_recalled_under_any_id():
    repeats: dict[bytes, bytes] = {}
    assert recall(repeats, b"\x00\x01query") is None
    remember(repeats, b"\x00\x01query", b"\x00\x01reply")
    assert repeats == {b"query": b"reply"}
    assert recall(repeats, b"\xff\xfequery") == b"\xff\xfereply"
    assert recall(repeats, b"\xff\xfeother") is None


def test_a_full_memo_is_cleared_whole_and_never_grows_past_its_limit():
    repeats: dict[bytes, bytes] = {}
    sizes = []
    for index in range(REPEATS_LIMIT + 10):
        key = index.to_bytes(4)
        remember(repeats, b"\x00\x00" + key, b"\x00\x00" + key)
        sizes.append(len(repeats))
    assert max(sizes) == REPEATS_LIMIT
    assert sizes[-1] == 10  # cleared at the limit, then filled again
    assert recall(repeats, b"\x00\x00" + (REPEATS_LIMIT + 9).to_bytes(4)) is not None
