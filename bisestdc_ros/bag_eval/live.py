"""Live mode: replay the bag into a running segment_node and record what it answers.

The bag's images are published on real ROS 2 topics by `recorder.ReplayRecorder`, which
also records the node's labels, latency and ``/diagnostics`` outputs. :func:`run_live` starts the
node (see :mod:`.node_args`), waits for it, sends a warm-up frame and replays the bag in one
or two passes (``--replay``):

- ``realtime``: each frame at its bag time (divided by ``--rate-factor``; gaps longer than
  ``--max-gap`` seconds are shortened to it, so a pause in the recording does not stall the
  replay). A slow engine drops frames, as on the vehicle: latency, drops and (of the frames
  answered) the scores of a real deployment, which depend on the machine's load.
- ``closed-loop``: each frame is sent once the previous one was answered: every frame is
  segmented whatever the load, so the scores are the same on every run and every machine.
- ``both``: closed loop for the scores and the video, then real time for latency and drops.

Frames whose payload cannot be decoded are not sent; they are counted and named. rclpy is
initialised without its signal handlers, so SIGINT (and SIGTERM, see
`bisestdc_ros.cli.bag_eval`) interrupts any wait at once, and the node started here is stopped
on every way out. rclpy is imported only here and in `recorder`, so offline mode does not need
ROS.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bisestdc_core.inference.cuda_probe import cuda_available
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.model_card import EvalModel
from bisestdc_ros.bag_eval.node_args import configure_large_frames, node_command, replay_topic
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_eval.recorder import ReplayRecorder
from bisestdc_ros.bag_eval.scoring import FrameTiming, RunResult, StampMatcher
from bisestdc_ros.bags.messages import (
    NS_PER_S,
    frame_from_msg,
    labels_from_msg,
    stamp_ns,
)
from bisestdc_ros.bags.reader import BagReader
from bisestdc_ros.node.image_codec import ImageDecodeError
from bisestdc_ros.node.process import node_log_tail, start_node, stop_node

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

REPLAY_MODES = ("realtime", "closed-loop", "both")
RESEND_S = 2.0  # a best-effort frame without an answer is sent again after this long
STOP_TIMEOUT_S = 10.0  # SIGINT -> SIGKILL after a run: time for a clean shutdown
INTERRUPT_STOP_TIMEOUT_S = 0.8  # after a signal or error: the node is gone within 2 s


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               alive: Callable[[], None] | None = None) -> None:
    """Poll ``predicate``; EvalError after ``timeout`` s. ``alive`` raises if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if alive is not None:
            alive()
        time.sleep(0.05)
    raise EvalError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class PassResult:
    """What one replay pass saw: per stamp, when it was sent and answered, the node's timings."""

    name: str
    labels: dict[int, Any]
    latency: dict[int, dict[str, float]]
    received_at: dict[int, float]
    published_at: dict[int, float]
    start: float
    first_publish: float
    last_publish: float
    bad_frames: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> set[int]:
        return set(self.published_at) - set(self.labels)

    def timings(self) -> list[FrameTiming]:
        """Per answered frame: the node's stage timings and the measured end to end."""
        out = []
        for stamp in sorted(self.labels):
            stages = StageTimings.from_values(self.latency.get(stamp, {}))
            # The node's end to end starts at the camera stamp; ours at the moment we sent it.
            stages.end_to_end_ms = None
            if stamp in self.published_at:
                stages.end_to_end_ms = (self.received_at[stamp]
                                        - self.published_at[stamp]) * 1e3
            out.append(FrameTiming(stamp, self.received_at[stamp] - self.start, stages))
        return out

    def node_drops(self) -> int:
        return int(max((v.get("drops", 0.0) for v in self.latency.values()), default=0.0))


def replay_offsets(bag_times: list[int], rate_factor: float, max_gap: float) -> list[float]:
    """Seconds after the start at which each frame is due: bag time / rate, gaps capped.

    A gap longer than ``max_gap`` seconds (after the rate factor) is replayed as ``max_gap``;
    bag times that go backwards are sent at once.
    """
    offsets: list[float] = []
    for i, timestamp in enumerate(bag_times):
        if i == 0:
            offsets.append(0.0)
            continue
        gap = max(0.0, (timestamp - bag_times[i - 1]) / NS_PER_S / rate_factor)
        offsets.append(offsets[-1] + min(gap, max_gap))
    return offsets


def run_live(plan: BagPlan, args: argparse.Namespace, out_dir: Path, card: EvalModel
             ) -> RunResult:
    """Replay the bag into segment_node and record its outputs (see the module docstring)."""
    import rclpy  # noqa: PLC0415
    from rclpy.context import Context  # noqa: PLC0415
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: PLC0415
    from rclpy.signals import SignalHandlerOptions  # noqa: PLC0415

    profile = configure_large_frames(plan)
    camera_topic, in_topic = replay_topic(plan, args)
    process = None
    node_log = out_dir / "segment_node.log"
    if args.start_node:
        process = start_node(node_command(plan, args, camera_topic, card), node_log)
        log.info("segment_node started (pid %d)", process.pid)

    def alive() -> None:
        if process is not None and process.poll() is not None:
            raise EvalError(f"segment_node exited with code {process.returncode}; its log "
                            f"({node_log}):\n{node_log_tail(node_log)}")

    result = RunResult(StampMatcher(card.class_set) if plan.has_labels else None, set(), [],
                       0.0, {})
    result.bad_frames.extend(plan.bad_frames)
    passes: list[PassResult] = []
    context = Context()
    stop_timeout = INTERRUPT_STOP_TIMEOUT_S  # until the passes are complete
    # Whatever fails or interrupts from here on (DDS set-up included), the node is stopped
    # first: it must be gone within 2 s of a signal.
    try:
        # Without rclpy's handlers SIGINT raises KeyboardInterrupt in any wait below.
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        recorder = ReplayRecorder(context, in_topic, plan.image_type, camera_topic, args.reliable)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(recorder.node)

        def spin() -> None:
            try:
                executor.spin()
            except ExternalShutdownException:
                pass

        spinner = threading.Thread(target=spin, name="bag_eval_spin", daemon=True)
        spinner.start()
        try:
            log.info("waiting for segment_node on %s (outputs %s, %s)", in_topic,
                     recorder.labels_topic, recorder.latency_topic)
            wait_until(recorder.discovered, args.startup_timeout,
                       f"segment_node to subscribe {in_topic} and publish {recorder.labels_topic}",
                       alive)
            with BagReader(plan.path) as bag:
                warm_up(bag, plan, recorder, args.startup_timeout, alive)
                if args.replay in ("closed-loop", "both"):
                    recorder.keep = result
                    passes.append(replay(bag, plan, recorder, args, alive, closed_loop=True))
                    recorder.keep = None
                if args.replay in ("realtime", "both"):
                    recorder.keep = result if args.replay == "realtime" else None
                    passes.append(replay(bag, plan, recorder, args, alive, closed_loop=False))
                    recorder.keep = None
            engine = dict(recorder.engine)
            stop_timeout = STOP_TIMEOUT_S
        finally:
            if process is not None:
                code = stop_node(process, stop_timeout)
                log.info("segment_node stopped (exit code %d); log: %s", code, node_log)
                process = None
            executor.shutdown(timeout_sec=1.0)
            spinner.join(timeout=2.0)
            recorder.node.destroy_node()
    finally:
        if process is not None:  # failed before the recorder existed
            code = stop_node(process, INTERRUPT_STOP_TIMEOUT_S)
            log.info("segment_node stopped (exit code %d); log: %s", code, node_log)
        rclpy.try_shutdown(context=context)

    scored_pass, latency_pass = passes[0], passes[-1]
    result.bad_frames.extend(scored_pass.bad_frames)
    result.engine = live_engine_info(engine, args, card)
    result.timings = latency_pass.timings()
    result.dropped = latency_pass.dropped
    last = max(latency_pass.received_at.values(), default=latency_pass.first_publish)
    result.wall_s = max(last - latency_pass.first_publish, 1e-9)
    result.details = {
        "replay": args.replay, "scores_from": f"{scored_pass.name} pass",
        "latency_pass": f"{latency_pass.name} pass",
        "replay_topic": in_topic, "labels_topic": recorder.labels_topic,
        "latency_topic": recorder.latency_topic, "qos": "reliable" if args.reliable
        else "sensor_data", "rate_factor": args.rate_factor, "max_gap_s": args.max_gap,
        "replay_rate_hz": plan.rate_hz * args.rate_factor,
        "node_started_by_tool": bool(args.start_node),
        "node_reported_drops": latency_pass.node_drops(),
        "fastdds_profile": profile,
        "replay_duration_s": latency_pass.last_publish - latency_pass.first_publish,
    }
    for one in passes:
        result.details[f"{one.name}_pass"] = (f"{len(one.labels)} answered, "
                                             f"{len(one.dropped)} dropped")
    if result.matcher is not None:
        score(plan, result.matcher, scored_pass.labels)
    return result


def live_engine_info(reported: dict[str, str], args: argparse.Namespace, card: EvalModel
                     ) -> dict[str, Any]:
    """What ran: engine and precision as the node reported them on /diagnostics; the network
    size and class set the node was given (from the card); the device it resolved."""
    info: dict[str, Any] = {
        "engine": reported.get("engine", "not reported"),
        "precision": reported.get("precision", "not reported"),
        "device": resolved_device(args.device, reported.get("engine")),
        **card.describe(),
    }
    if not args.start_node:  # the running node was configured elsewhere
        info["network_size"] = None
        info["card"] = "unknown: a node this tool did not start"
    return info


def resolved_device(requested: str, engine: str | None) -> str:
    """The node's device: ``auto`` resolves as the Segmenter does on this machine (asking the
    CUDA driver: this tool, like the node, runs where no torch is installed)."""
    if requested != "auto":
        return requested
    cuda = cuda_available()
    if engine == "onnxruntime" and cuda:
        return "cuda (if ONNX Runtime has its CUDA provider, else cpu)"
    return "cuda" if cuda else "cpu"


def score(plan: BagPlan, matcher: StampMatcher, predictions: dict[int, Any]) -> None:
    """Match the recorded predictions to the bag's ground truth (read after the run, so memory
    holds predictions, not both)."""
    assert plan.labels_topic is not None and plan.labels_type is not None
    with BagReader(plan.path) as bag:
        for _, _, msg in tqdm(bag.messages([plan.labels_topic]), total=len(plan.label_stamps),
                              desc="scoring", unit="frame"):
            stamp = stamp_ns(msg)
            if stamp in predictions:
                matcher.add_prediction(stamp, predictions.pop(stamp))
                matcher.add_ground_truth(stamp, labels_from_msg(msg, plan.labels_type))


def warm_up(bag: BagReader, plan: BagPlan, recorder: ReplayRecorder, timeout: float,
            alive: Callable[[], None]) -> None:
    """Send the first frame under a stamp of its own until its labels come back.

    Proves the whole path (both directions matched, engine loaded, first-inference cost paid)
    before the timed replay, so the first bag frames are not lost to start-up.
    """
    first = next((msg for _, _, msg in bag.messages([plan.image_topic],
                                                     on_bad_message=lambda *_: None)
                  if _decodes(msg, plan.image_type)), None)
    if first is None:
        raise EvalError(f"bag {plan.path}: no decodable frame on {plan.image_topic}")
    stamp = 1  # 1 ns after the epoch: no camera stamps with it, so it never meets a bag frame
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recorder.publish(first, stamp)
        resend = time.monotonic() + 2.0
        while time.monotonic() < min(resend, deadline):
            if recorder.has_labels(stamp):
                recorder.forget(stamp)
                log.info("segment_node answered the warm-up frame")
                # The latency message of the warm-up may still be in flight; let it land.
                time.sleep(0.2)
                recorder.forget(stamp)
                return
            alive()
            time.sleep(0.05)
    raise EvalError(f"no labels on {recorder.labels_topic} for the warm-up frame within "
                    f"{timeout:.0f} s")


def _decodes(msg: Any, msgtype: str) -> bool:
    try:
        frame_from_msg(msg, msgtype)
    except ImageDecodeError:
        return False
    return True


def replay(bag: BagReader, plan: BagPlan, recorder: ReplayRecorder, args: argparse.Namespace,
           alive: Callable[[], None], closed_loop: bool) -> PassResult:
    """One pass over the bag's images; returns what was sent and answered.

    Real time: each frame at its (gap-capped) offset, then wait for the trailing outputs.
    Closed loop: each frame once the previous was answered (resent every RESEND_S seconds
    when best effort lost it; a frame unanswered after --frame-timeout counts as dropped).
    """
    name = "closed-loop" if closed_loop else "realtime"
    offsets = replay_offsets(plan.bag_times, args.rate_factor, args.max_gap)
    bad: list[str] = []
    sent: set[int] = set()
    start = time.monotonic()
    first_publish = last_publish = start
    messages = bag.messages([plan.image_topic], on_bad_message=lambda *_: None)
    # Messages come in plan order (the plan skipped the same undeserialisable ones), so the
    # index is the frame's place in the schedule.
    for index, (_, _, msg) in enumerate(tqdm(messages, total=plan.frames,
                                             desc=f"replay ({name})", unit="frame")):
        stamp = stamp_ns(msg)
        if stamp in sent:
            continue  # a repeated stamp is one frame
        try:
            frame_from_msg(msg, plan.image_type)  # the node would refuse it: do not send it
        except ImageDecodeError as error:
            bad.append(plan.frame_problem(stamp, error.reason))
            log.warning("not sent: %s", bad[-1])
            continue
        if not closed_loop:
            delay = start + offsets[min(index, len(offsets) - 1)] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        recorder.publish(msg)
        sent.add(stamp)
        last_publish = time.monotonic()
        if len(sent) == 1:
            first_publish = last_publish
        if closed_loop:
            deadline = last_publish + args.frame_timeout
            resend = last_publish + RESEND_S
            while not recorder.has_labels(stamp) and time.monotonic() < deadline:
                alive()
                if time.monotonic() > resend and not args.reliable:
                    recorder.publish(msg)
                    resend = time.monotonic() + RESEND_S
                time.sleep(0.005)
    # Outputs trail the last frame by one inference; stop once all arrived or none came for
    # idle_timeout seconds.
    while not recorder.complete(len(sent)):
        alive()
        if time.monotonic() - max(recorder.last_output, last_publish) > args.idle_timeout:
            break
        time.sleep(0.05)
    labels, latency, received_at, published_at = recorder.take()
    return PassResult(name, labels, latency, received_at, published_at, start, first_publish,
                      last_publish, bad)
