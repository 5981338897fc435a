"""A unit of row changes applied as its net effect per key ends in the state applying them in order
does (replicator/net_effect.py): random unit of changes a primary could have made, applied both ways
to a model table; and the statements it becomes."""

from __future__ import annotations

import random

import pytest

from dbmux.core.events import RowChange
from dbmux.replicator.net_effect import net_effect, net_sql


def _primary_changes(rng: random.Random, start: dict[int, dict], n: int) -> list[RowChange]:
    """``n`` changes valid on a primary holding ``start`` (inserts of free keys, updates -- some moving
    the key -- and deletes of present ones)."""
    state = {k: dict(v) for k, v in start.items()}
    out = []
    for _ in range(n):
        free = [k for k in range(12) if k not in state]
        op = rng.choice(["insert", "update", "update", "delete"])
        if op == "insert" or not state:
            if not free:
                continue
            k = rng.choice(free)
            state[k] = {"id": k, "v": rng.randint(0, 99)}
            out.append(RowChange("t", "d", "insert", after=dict(state[k])))
        elif op == "delete":
            k = rng.choice(sorted(state))
            out.append(RowChange("t", "d", "delete", before=state.pop(k)))
        else:
            k = rng.choice(sorted(state))
            new = rng.choice(free) if free and rng.random() < 0.3 else k
            before = state.pop(k)
            state[new] = {"id": new, "v": rng.randint(0, 99)}
            out.append(RowChange("t", "d", "update", before=before, after=dict(state[new])))
    return out


def _apply_in_order(state: dict[int, dict], rows: list[RowChange]) -> dict[int, dict]:
    state = dict(state)
    for r in rows:
        if r.before is not None:
            state.pop(r.before["id"])
        if r.after is not None:
            assert r.after["id"] not in state
            state[r.after["id"]] = r.after
    return state


def _apply_net(state: dict[int, dict], rows: list[RowChange]) -> dict[int, dict]:
    state = dict(state)
    net = net_effect(rows, ("id",))
    for (k,), image in net.last.items():
        if image is None:
            state.pop(k, None)
        elif net.first_insert[(k,)]:
            assert k not in state  # a plain INSERT: a duplicate would be an error
            state[k] = image
        else:
            state[k] = image
    return state


@pytest.mark.parametrize("seed", range(300))
def test_net_effect_ends_where_applying_in_order_ends(seed):
    rng = random.Random(seed)
    start = {k: {"id": k, "v": k} for k in rng.sample(range(12), rng.randint(0, 8))}
    rows = _primary_changes(rng, start, rng.randint(1, 25))
    assert _apply_net(start, rows) == _apply_in_order(start, rows)


def test_net_sql_statements():
    rows = [RowChange("t", "d", "insert", after={"id": 1, "v": "a"}),
            RowChange("t", "d", "update", before={"id": 1, "v": "a"}, after={"id": 1, "v": "b"}),  # still new
            RowChange("t", "d", "update", before={"id": 2, "v": "x"}, after={"id": 2, "v": "y"}),
            RowChange("t", "d", "delete", before={"id": 3, "v": "z"}),
            RowChange("t", "d", "insert", after={"id": 4, "v": "q"}),
            RowChange("t", "d", "delete", before={"id": 4, "v": "q"})]  # came and went: nothing
    assert net_sql("d", "t", net_effect(rows, ("id",))) == [
        "DELETE FROM `d`.`t` WHERE (`id`) IN (3)",
        "INSERT INTO `d`.`t` (`id`, `v`) VALUES (1, 'b')",
        "INSERT INTO `d`.`t` (`id`, `v`) VALUES (2, 'y') ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), "
        "`v` = VALUES(`v`)"]
    two = [RowChange("t", "d", "delete", before={"a": 1, "b": 2}),
           RowChange("t", "d", "delete", before={"a": 1, "b": 3})]
    assert net_sql("d", "t", net_effect(two, ("a", "b"))) == [
        "DELETE FROM `d`.`t` WHERE (`a`, `b`) IN ((1, 2), (1, 3))"]
