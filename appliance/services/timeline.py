"""A build's step timeline, read from its stored log.

The build log (:class:`appliance.builder.buildlog.BuildLog`) gives every step a section: the
step opens with ``<stamp> [<step>] --- <step> ---`` and closes with ``<step> done in 1.23s`` or
``<step> failed after 0.12s: <error type>`` under the same ``[<step>]`` prefix. A run after an
interrupted one (a retry after its worker died) is opened by a ``--- attempt N (...) ---`` line
under another prefix (``[build]``). Which steps there are is the pipeline's business
(``solve``, ``install``, ``conda-pack``, ...): the timeline lists whatever the log names, in
order.

:func:`timeline_of` derives the steps from the log's lines (pure; any line it does not
recognise is skipped). :func:`read_timeline` reads a stored log for it, bounded: at most
:data:`LOG_SCAN_BYTES` of it, the start and the end of a longer log (the timeline then says it
is incomplete; steps that both start and end in the part left out are missing, and a step
whose start was left out is listed without it).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from appliance.common.errors import ArtifactNotFound
from appliance.storage.base import Storage

#: Most bytes of a log :func:`read_timeline` reads: half from the start, half from the end.
LOG_SCAN_BYTES = 2 * 1024 * 1024

_LINE = re.compile(r"^(?P<stamp>\S+) \[(?P<prefix>[^\]]+)\] (?P<message>.*)$")
_SECTION = re.compile(r"^--- (?P<title>.+) ---$")
_DONE = re.compile(r"^(?P<name>.+) done in (?P<seconds>\d+(?:\.\d+)?)s$")
_FAILED = re.compile(r"^(?P<name>.+) failed after (?P<seconds>\d+(?:\.\d+)?)s(?:: (?P<why>.*))?$")
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class StepState(enum.StrEnum):
    """Where a step is."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    #: Never ended: its run was interrupted (a later attempt began) or the build ended without it.
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Step:
    """One step of a build's run.

    ``seconds`` is the step's duration as the log reports it (done or failed), the time since it
    started for a running step (until ``now`` of :func:`timeline_of`), and None when unknown.
    ``started`` is None when the log's line that opened it was not read. ``reason`` is the
    error type of a failed step (``CancelledError`` for a canceled build). ``attempt`` counts
    the runs of the build (2 and more after an interrupted run).
    """

    name: str
    state: StepState
    started: datetime | None = None
    seconds: float | None = None
    reason: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class Timeline:
    """The steps of a build, in the order they started; ``complete`` is False when only part
    of a long log was read (see the module docstring)."""

    steps: tuple[Step, ...] = ()
    complete: bool = True

    @property
    def attempts(self) -> int:
        """How many runs of the build the log tells of (1 without retries)."""
        return max((step.attempt for step in self.steps), default=1)


def _stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def timeline_of(
    lines: Iterable[str], *, running: bool, now: datetime | None = None, complete: bool = True
) -> Timeline:
    """The steps ``lines`` (a build log's lines, in order) tell of.

    ``running``: whether the build is still QUEUED or BUILDING; when it is not, a step that
    never ended is :attr:`StepState.INTERRUPTED`, else a step still open is
    :attr:`StepState.RUNNING`, with the seconds since it started until ``now`` (default: the
    current time). ``complete`` is passed on to the :class:`Timeline`.
    """
    now = now or datetime.now(UTC)
    steps: list[Step] = []
    open_steps: dict[str, int] = {}  # step name -> index in ``steps``
    closed = -1  # index of the step ended last, while no other has started since
    attempt = 1
    for raw in lines:
        line = _LINE.match(raw.rstrip("\r\n"))
        if line is None:
            continue
        prefix, message = line["prefix"], line["message"]
        section = _SECTION.match(message)
        if section is not None:
            if section["title"] == prefix:
                open_steps[prefix] = closed = len(steps)
                steps.append(
                    Step(prefix, StepState.RUNNING, started=_stamp(line["stamp"]), attempt=attempt)
                )
            elif section["title"].startswith("attempt "):
                for index in open_steps.values():
                    steps[index] = replace(steps[index], state=StepState.INTERRUPTED)
                open_steps.clear()
                closed = -1
                attempt += 1
            continue
        ended = _DONE.match(message) or _FAILED.match(message)
        if ended is None or ended["name"] != prefix:
            continue
        state = StepState.DONE if ended.re is _DONE else StepState.FAILED
        seconds = float(ended["seconds"])
        reason = ended.groupdict().get("why")
        opened = open_steps.pop(prefix, -1)
        if opened < 0 and closed >= 0 and steps[closed].name == prefix:
            opened = closed  # a line of the step looked like its end; this one is
        if opened < 0:  # its opening line was not read
            closed = len(steps)
            steps.append(Step(prefix, state, seconds=seconds, reason=reason, attempt=attempt))
        else:
            closed = opened
            steps[opened] = replace(steps[opened], state=state, seconds=seconds, reason=reason)
    for index in open_steps.values():
        step = steps[index]
        if not running:
            steps[index] = replace(step, state=StepState.INTERRUPTED)
        elif step.started is not None:
            steps[index] = replace(step, seconds=max(0.0, (now - step.started).total_seconds()))
    return Timeline(steps=tuple(steps), complete=complete)


def _lines(data: bytes, *, cut_start: bool = False) -> list[str]:
    """The whole lines of ``data``: without a last line that has no end, and (``cut_start``:
    ``data`` starts one byte before the part wanted) without the first, cut in two or empty."""
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines = lines[:-1]
    return lines[1:] if cut_start else lines


def _read(storage: Storage, key: str, start: int, end: int) -> bytes:
    return b"".join(storage.stream(key, start=start, end=end))


def read_timeline(
    storage: Storage,
    key: str,
    *,
    running: bool,
    now: datetime | None = None,
    limit: int = LOG_SCAN_BYTES,
) -> Timeline:
    """The timeline of the log stored at ``key`` (blocking I/O: call it on a worker thread),
    reading at most ``limit`` bytes of it; an empty timeline when there is no log (yet)."""
    try:
        size = storage.size(key)
        if size <= limit:
            return timeline_of(_lines(_read(storage, key, 0, size)), running=running, now=now)
        half = limit // 2
        head = _lines(_read(storage, key, 0, half))
        tail = _lines(_read(storage, key, size - half - 1, size), cut_start=True)
    except ArtifactNotFound:
        return Timeline()
    return timeline_of([*head, *tail], running=running, now=now, complete=False)
