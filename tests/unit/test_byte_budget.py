"""ByteBudget (broker/server.py): the global bound on request bytes held, taken as they arrive."""

from __future__ import annotations

from kafkito.broker.server import ByteBudget


def test_a_waiter_is_called_once_when_a_release_leaves_room() -> None:
    budget = ByteBudget(100)
    budget.take(120)  # a read may overshoot by what it held already
    assert budget.spent and budget.room() == -20
    calls: list[str] = []
    budget.when_freed(lambda: calls.append("a"))
    budget.release(10)  # still spent: nobody is called
    assert calls == []
    budget.release(30)
    assert calls == ["a"] and not budget.spent
    budget.take(50)
    budget.release(50)
    assert calls == ["a"]  # once


def test_a_forgotten_waiter_is_not_called_and_others_are() -> None:
    budget = ByteBudget(10)
    budget.take(10)
    calls: list[str] = []

    def first() -> None:
        calls.append("first")

    def second() -> None:
        calls.append("second")

    budget.when_freed(first)
    budget.when_freed(second)
    budget.forget(first)
    budget.forget(first)  # twice is harmless
    budget.release(10)
    assert calls == ["second"]
    assert budget.used == 0


def test_a_waiter_may_wait_again_from_its_callback() -> None:
    budget = ByteBudget(10)
    budget.take(10)
    calls = 0

    def again() -> None:
        nonlocal calls
        calls += 1
        budget.take(10)  # spent again at once: wait for the next release
        budget.when_freed(again)

    budget.when_freed(again)
    budget.release(10)
    budget.release(10)
    assert calls == 2
