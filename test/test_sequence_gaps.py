"""Counting frames lost before the node saw them, from rclpy MessageInfo sequence numbers."""

from __future__ import annotations

from bisestdc_ros.node.sequence_gaps import SequenceGaps


def info(publisher: int, number: int | None) -> dict:
    return {"publication_sequence_number": number,
            "publisher_gid": {"implementation_identifier": "rmw_fastrtps_cpp",
                              "data": bytes([publisher] * 16)}}


def test_gaps_are_counted_per_publisher():
    gaps = SequenceGaps()
    # Two cameras' drivers on one topic, interleaved: each numbers its own samples.
    for publisher, number in [(1, 1), (2, 1), (1, 2), (2, 5), (1, 6), (2, 6)]:
        gaps.observe(info(publisher, number))
    assert gaps.lost == 3 + 3  # publisher 2: 2..4 missing; publisher 1: 3..5 missing


def test_first_message_reordering_and_unreported_numbers_count_nothing():
    gaps = SequenceGaps()
    gaps.observe(info(1, 40))  # joined late: earlier samples were never ours to lose
    gaps.observe(info(1, 39))  # reordered (or a restarted publisher): the count restarts
    gaps.observe(info(1, 40))
    gaps.observe(info(1, None))  # an RMW that does not report numbers
    gaps.observe({"publication_sequence_number": 7, "publisher_gid": None})
    assert gaps.lost == 0
