"""The chaos suite's ledger check can fail (pure; the suite itself needs the stack)."""

from __future__ import annotations

import pytest

from tests.chaos.test_chaos import ACCOUNTS, _check_ledger

LEDGER = [(1, 0, 10), (2, 0, 5), (3, 1, 7)]
ACCOUNT_ROWS = [(0, 15), (1, 7)] + [(a, 0) for a in range(2, ACCOUNTS)]


def test_a_consistent_ledger_passes():
    _check_ledger("t", LEDGER, ACCOUNT_ROWS, {1, 2, 3})


@pytest.mark.parametrize("ledger, accounts, acked, says", [
    (LEDGER + [(3, 1, 7)], [(0, 15), (1, 14)] + ACCOUNT_ROWS[2:], {1}, "appears twice"),  # applied twice
    (LEDGER[:2], [(0, 15), (1, 0)] + ACCOUNT_ROWS[2:], {1, 2, 3}, "acknowledged transactions missing"),  # lost
    (LEDGER, [(0, 15), (1, 14)] + ACCOUNT_ROWS[2:], {1}, "balance != sum"),  # the UPDATE applied twice
    (LEDGER[:2], ACCOUNT_ROWS, {1}, "balance != sum"),  # half a transaction (the INSERT lost)
    (LEDGER, ACCOUNT_ROWS[:-1], {1}, "accounts"),  # a row lost
])
def test_each_kind_of_damage_fails_it(ledger, accounts, acked, says):
    with pytest.raises(AssertionError, match=says):
        _check_ledger("t", ledger, accounts, acked)
