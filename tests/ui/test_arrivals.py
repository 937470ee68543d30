"""The arrival queue: FIFO, one wake-up per batch, time-boxed batches, nothing dropped across threads."""

from __future__ import annotations

import threading

from csassist.core.types import Message
from csassist.ui.arrivals import ArrivalQueue
from tests.ui.conftest import SIZE, customer, settle


def msg(i: int) -> Message:
    """A customer message numbered ``i``."""
    return Message(f"c{i}", "customer", f"text {i}")


def test_one_wake_up_per_batch_and_fifo() -> None:
    """Only the first put of a sleeping queue asks for a wake-up; a drained queue goes back to sleep."""
    queue = ArrivalQueue()
    assert queue.put(msg(0)) is True
    assert queue.put(msg(1)) is False and queue.put(msg(2)) is False
    assert [m.text for m, _ in queue.take(budget_s=10.0)] == ["text 0", "text 1", "text 2"]
    assert queue.stay_awake() is False
    assert queue.put(msg(3)) is True  # asleep again: the next arrival wakes the consumer


def test_a_batch_stops_at_its_time_budget_and_stays_awake() -> None:
    """With a clock that advances 3 ms per reading, an 8 ms slice takes a few items, not all of them."""
    ticks = iter(range(0, 10_000, 3))
    queue = ArrivalQueue(clock=lambda: next(ticks) / 1000)
    for i in range(50):
        queue.put(msg(i))
    first = [m.text for m, _ in queue.take(budget_s=0.008)]
    assert 1 <= len(first) < 50 and first[0] == "text 0"
    assert queue.stay_awake() is True and len(queue) == 50 - len(first)


def test_nothing_is_lost_between_threads() -> None:
    """Four producer threads, one consumer: every message arrives exactly once, each thread in order."""
    queue = ArrivalQueue()
    wakes: list[bool] = []

    def produce(base: int) -> None:
        for i in range(base, base + 500):
            wakes.append(queue.put(msg(i)))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    while any(t.is_alive() for t in threads) or len(queue):
        seen += [int(m.conversation_id[1:]) for m, _ in queue.take(budget_s=0.001)]
        queue.stay_awake()
    for thread in threads:
        thread.join()
    seen += [int(m.conversation_id[1:]) for m, _ in queue.take(budget_s=1.0)]
    assert sorted(seen) == sorted(k * 1000 + i for k in range(4) for i in range(500))
    for k in range(4):
        mine = [n for n in seen if n // 1000 == k]
        assert mine == sorted(mine)
    assert any(wakes)


async def test_app_takes_a_burst_in_batches_and_keys_still_act(app_factory) -> None:  # type: ignore[no-untyped-def]
    """A burst of arrivals lands completely; a key pressed during it acts."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        for i in range(2):
            app.ingest(customer(f"c{i:03d}", f"parcel {i}"))
        await settle(pilot, app)
        for i in range(2, 400):
            app.ingest(customer(f"c{i:03d}", f"parcel {i}"))
        await pilot.press("down")
        await settle(pilot, app)
        assert len(app.inbox) == 400 and len(app.arrivals) == 0
        assert app.selected == "c001"
