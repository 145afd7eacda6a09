"""What a subscriber of the requests stream missed, from the sequence frames and the probes."""

from __future__ import annotations

from rvz.wire import streams

A, B = b"fe-a", b"fe-b"
TOPIC = streams.topic_for("default")


def test_gaps_between_messages_are_counted_per_sender_and_topic() -> None:
    gaps = streams.Gaps()
    assert gaps.note(TOPIC, streams.sequence_frame(A, 0), 3) == 0
    assert gaps.note(TOPIC, streams.sequence_frame(B, 0), 1) == 0  # another frontend has numbers of its own
    assert gaps.note(TOPIC, streams.sequence_frame(A, 5), 1) == 2  # 3 and 4 never came
    assert gaps.note(b"other", streams.sequence_frame(A, 0), 1) == 0  # another topic too
    assert gaps.missed == 2


def test_a_frontend_that_starts_over_is_followed_from_its_new_numbers() -> None:
    gaps = streams.Gaps()
    gaps.note(TOPIC, streams.sequence_frame(A, 100), 1)
    assert gaps.note(TOPIC, streams.sequence_frame(A, 0), 1) == 0
    assert gaps.note(TOPIC, streams.sequence_frame(A, 1), 1) == 0
    assert gaps.missed == 0


def test_a_probe_counts_what_was_missed_at_the_end_of_a_burst() -> None:
    gaps = streams.Gaps()
    gaps.note(TOPIC, streams.sequence_frame(A, 0), 2)
    assert gaps.note_probe(A, {"default": 9, "else": 50}, (TOPIC,)) == 7  # "else" is not this subscriber's
    assert gaps.note_probe(A, {"default": 9}, (TOPIC,)) == 0  # counted once
    assert gaps.note_probe(B, {"default": 40}, (TOPIC,)) == 0  # never heard from B: nothing to compare with
    assert gaps.note_probe(A, {"else": 60}, streams.EVERY_TOPIC) == 0
    assert gaps.missed == 7


def test_an_impossible_jump_is_a_sender_starting_over_and_the_count_stays_sendable() -> None:
    """A broken or hostile sender's numbers (found by fuzzing: a worker died announcing 1.6e19 missed)."""
    gaps = streams.Gaps()
    gaps.note(TOPIC, streams.sequence_frame(A, 0), 1)
    assert gaps.note(TOPIC, streams.sequence_frame(A, 2**64 - 2), 1) == 0
    assert gaps.note(TOPIC, streams.sequence_frame(A, 2**64 - 1), 1) == 0  # followed from its new number
    assert gaps.note_probe(A, {"default": 2**63}, (TOPIC,)) == 0
    gaps.missed = streams.MAX_MISSED - 1
    gaps.note(TOPIC, streams.sequence_frame(B, 0), 1)
    assert gaps.note(TOPIC, streams.sequence_frame(B, 1000), 1) == 999
    assert gaps.missed == streams.MAX_MISSED  # saturates: a protobuf int64 can carry it
