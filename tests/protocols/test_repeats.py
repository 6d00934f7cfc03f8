"""The shared memo of exact repeats."""

from __future__ import annotations

from protocols.repeats import MEMO_LIMIT, recall, remember


def test_a_remembered_reply_is_recalled_under_any_id():
    memo: dict[bytes, bytes] = {}
    assert recall(memo, b"\x00\x01query") is None
    remember(memo, b"\x00\x01query", b"\x00\x01reply")
    assert memo == {b"query": b"reply"}
    assert recall(memo, b"\xff\xfequery") == b"\xff\xfereply"
    assert recall(memo, b"\xff\xfeother") is None


def test_a_full_memo_is_cleared_whole_and_never_grows_past_its_limit():
    memo: dict[bytes, bytes] = {}
    sizes = []
    for index in range(MEMO_LIMIT + 10):
        key = index.to_bytes(4)
        remember(memo, b"\x00\x00" + key, b"\x00\x00" + key)
        sizes.append(len(memo))
    assert max(sizes) == MEMO_LIMIT
    assert sizes[-1] == 10  # cleared at the limit, then filled again
    assert recall(memo, b"\x00\x00" + (MEMO_LIMIT + 9).to_bytes(4)) is not None
