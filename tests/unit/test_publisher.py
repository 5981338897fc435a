"""Publisher.publish_within / publish_bounded: True on Kafka's ack, False (logged, counted) on timeout or
failure, never an exception; a late ack after the timeout is still counted and logged."""

from __future__ import annotations

import asyncio
import logging
import types

from dbmux.core.events import ChangeEvent, Statement
from dbmux.core.gtid import Gtid
from dbmux.ingress import publisher as pub_mod
from dbmux.ingress.publisher import Publisher


def _ev(text: str = "0-1-5") -> ChangeEvent:
    return ChangeEvent(gtid=Gtid.parse(text), source="ingress", ts_ms=0, statements=(Statement("DO 1"),))


class _Sequencer:
    """Stands in for GtidSequencer: the test resolves each submitted event's future by hand."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future] = []

    def submit(self, event: ChangeEvent) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut


def _publisher() -> tuple[Publisher, _Sequencer]:
    config = types.SimpleNamespace(topic="dbmux.test.txn")
    pub = Publisher(config)  # type: ignore[arg-type]
    seq = _Sequencer()
    pub._sequencer = seq  # type: ignore[assignment]
    return pub, seq


def _count(metric) -> float:
    return metric._value.get()


async def test_ack_resolves_true_and_counts():
    pub, seq = _publisher()
    before = _count(pub_mod.EVENTS_PUBLISHED)
    answer = pub.publish_within(_ev(), 5)
    assert not answer.done()
    seq.acks[0].set_result(None)
    assert await answer is True
    assert _count(pub_mod.EVENTS_PUBLISHED) == before + 1


async def test_failure_resolves_false_and_logs(caplog):
    pub, seq = _publisher()
    before = _count(pub_mod.EVENTS_UNPUBLISHED)
    answer = pub.publish_within(_ev("0-1-6"), 5)
    seq.acks[0].set_exception(RuntimeError("broker said no"))
    with caplog.at_level(logging.ERROR, logger="dbmux.ingress.publisher"):
        assert await answer is False
    assert _count(pub_mod.EVENTS_UNPUBLISHED) == before + 1
    assert "0-1-6" in caplog.text and "broker said no" in caplog.text


async def test_timeout_resolves_false_then_a_late_ack_is_counted_and_logged(caplog):
    pub, seq = _publisher()
    published, unpublished = _count(pub_mod.EVENTS_PUBLISHED), _count(pub_mod.EVENTS_UNPUBLISHED)
    with caplog.at_level(logging.WARNING, logger="dbmux.ingress.publisher"):
        assert await pub.publish_within(_ev("0-1-7"), 0.01) is False
        assert _count(pub_mod.EVENTS_UNPUBLISHED) == unpublished + 1
        assert "did not acknowledge" in caplog.text
        seq.acks[0].set_result(None)
        await asyncio.sleep(0)
    assert _count(pub_mod.EVENTS_PUBLISHED) == published + 1
    assert "late Kafka acknowledgement" in caplog.text


async def test_publish_bounded_is_the_same_as_a_coroutine():
    pub, seq = _publisher()
    task = asyncio.ensure_future(pub.publish_bounded(_ev(), 5))
    await asyncio.sleep(0)
    seq.acks[0].set_result(None)
    assert await task is True


class _Producer:
    """Stands in for AIOKafkaProducer.send: each send's ack fails or succeeds at once."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.sent, self.stopped = fail, [], False

    async def send(self, topic, value, key=None):
        fut = asyncio.get_running_loop().create_future()
        self.sent.append(value)
        if self.fail:
            fut.set_exception(RuntimeError("OutOfOrderSequenceNumber"))
        else:
            fut.set_result(types.SimpleNamespace(partition=0, offset=len(self.sent) - 1))
        return fut

    async def stop(self):
        self.stopped = True


def _sending_publisher(first: _Producer, fragment_bytes: int = 1 << 20) -> tuple[Publisher, list[_Producer]]:
    config = types.SimpleNamespace(topic="dbmux.test.txn", kafka=types.SimpleNamespace(fragment_bytes=fragment_bytes))
    pub = Publisher(config)  # type: ignore[arg-type]
    pub._producer = first  # type: ignore[assignment]
    made: list[_Producer] = []

    async def new_producer():
        made.append(_Producer())
        return made[-1]
    pub._new_producer = new_producer  # type: ignore[method-assign]
    return pub, made


async def test_a_failed_send_is_followed_by_a_new_producer():
    poisoned = _Producer(fail=True)
    pub, made = _sending_publisher(poisoned)
    renewals = _count(pub_mod.PRODUCERS_RENEWED)
    ack = await pub._send(_ev("0-1-1"))
    await asyncio.sleep(0)  # done callbacks run
    assert isinstance(ack.exception(), RuntimeError)
    ack2 = await pub._send(_ev("0-1-2"))
    assert (await ack2).offset == 0
    assert len(made) == 1 and len(made[0].sent) == 1 and len(poisoned.sent) == 1
    assert _count(pub_mod.PRODUCERS_RENEWED) == renewals + 1
    for _ in range(3):
        await asyncio.sleep(0)
    assert poisoned.stopped
    await pub._send(_ev("0-1-3"))  # no failure since: the same (new) producer
    assert len(made) == 1 and len(made[0].sent) == 2


async def test_a_big_event_goes_out_as_fragments_acked_together():
    producer = _Producer()
    pub, _ = _sending_publisher(producer, fragment_bytes=1024)
    big = ChangeEvent(gtid=Gtid.parse("0-1-9"), source="ingress", ts_ms=0,
                      statements=(Statement("INSERT INTO t VALUES ('" + "x" * 10_000 + "')"),))
    ack = await pub._send(big)
    assert len(producer.sent) == 14 and all(len(m) <= 1024 for m in producer.sent)  # 10,212 bytes in 768s
    assert [m.offset for m in await ack] == list(range(14))
