"""The Ray run's shared state tells a retry of a batch whose worker process died from another
batch of the same rows: only a try by the restarted process of the actor whose dead process
began it is a retry (no Ray needed: the state is a plain class)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="the Ray engine needs the ray extra")

from es_semantic.distributed.worker import RunState


def test_the_same_rows_on_live_workers_are_two_batches() -> None:
    state = RunState()
    state.started("actor-1", "p1")
    state.started("actor-2", "p2")
    first, died, _, _ = state.begin("rows", "p1")
    second, died_too, _, _ = state.begin("rows", "p2")
    assert (died, died_too) == (False, False) and first != second
    state.end(first, 10)
    state.hand(second, 3)  # the other try goes on after the first ended
    state.end(second, 10)
    assert state.begun == {}


def test_a_retry_after_a_death_is_taken_record_by_record_and_a_second_death_names_one() -> None:
    state = RunState()
    state.started("actor-1", "p1")
    state.started("actor-2", "p2")
    number, _, _, _ = state.begin("rows", "p1")
    other, _, _, _ = state.begin("rows", "p2")  # the same rows on a live worker
    state.started("actor-1", "p1b")  # p1 died; Ray restarted its actor and sends the batch again
    again, died, poison, unread = state.begin("rows", "p1b")
    assert (again, died, poison, unread) == (number, True, [], False)
    state.hand(again, 4)
    state.started("actor-1", "p1c")  # died again with record 4 in hand
    assert state.begin("rows", "p1c") == (number, True, [4], False)
    state.hand(other, 2)  # the live worker's batch is not blamed for any of it
    assert state.begun[other][1].poison == set() and not state.begun[other][1].died


def test_a_record_done_is_not_blamed_for_a_death_after_it() -> None:
    state = RunState()
    state.started("actor-1", "p1")
    number, _, _, _ = state.begin("rows", "p1")
    state.started("actor-1", "p2")
    state.begin("rows", "p2")
    state.hand(number, 0)
    state.hand(number, None)  # record 0 done; the process dies before the next
    state.started("actor-1", "p3")
    assert state.begin("rows", "p3") == (number, True, [], False)


def test_a_users_dataset_is_read_no_further_once_the_run_stops() -> None:
    """Its reads go on after a stop: a batch begun after it is left unread, a retry of one
    begun before is not, and the driver is done when it has counted what the others hold."""
    state = RunState(leave_unread=True)
    state.started("actor-1", "p1")
    done, _, _, _ = state.begin("a", "p1")
    dying, _, _, _ = state.begin("b", "p1")
    state.end(done, 10)
    state.interrupt()
    assert state.begin("c", "p1")[3]  # begun after Ctrl-C: left unread
    state.started("actor-1", "p2")  # the process with batch b died; its retry is counted
    assert state.begin("b", "p2") == (dying, True, [], False)
    assert not state.drained(10)  # b is still on a worker
    state.end(dying, 10)
    assert not state.drained(10) and state.drained(20)


def test_files_are_dead_lettered_after_a_stop_not_left_unread() -> None:
    state = RunState()
    state.stop("the cluster failed")
    number, _, _, unread = state.begin("rows", "p1")
    assert not unread and number
    state.end(number, 10)
    assert not state.drained(10)  # the driver reads to the end: file reads stop by themselves
