"""Where customer messages come from: the demo replay, a JSONL file (optionally followed), stdin.

Every source runs in its own daemon thread and hands each :class:`~csassist.core.types.Message` to an
``emit`` callback, so the terminal app (or a benchmark, or a test) never blocks on I/O.  The rules
that keep the agent's inbox trustworthy:

* a bad line is reported through ``on_problem("file:line: why")`` and skipped - it never stops the
  thread and never causes a valid line to be dropped;
* an exception raised by ``emit`` or ``on_problem`` is contained (reported, then reading goes on);
* nothing here renders text: customer text is passed on exactly as received (the UI makes it safe
  with :func:`csassist.core.sanitize.make_safe_for_terminal` and ``rich.text.Text``).

``emit`` is called from the source's thread: a Textual app should pass ``app.call_from_thread`` or
``post_message`` wrappers, both of which are thread-safe.

The line format and its validation, shared with the HTTP intake, are in
:mod:`csassist.core.io.message_format`; reading whole conversation files (the demo, ``suggest``,
``summarize``) and the line reader every source shares, in :mod:`csassist.core.io.conversation_files`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, runtime_checkable

from csassist.core.errors import CsassistError
from csassist.core.io.conversation_files import LineReader, ProblemSink
from csassist.core.io.limits import MAX_MESSAGE_BYTES
from csassist.core.io.message_format import parse_message
from csassist.core.types import Message

Emit = Callable[[Message], None]

#: A single JSONL line larger than this is skipped (protects memory against a runaway writer); the
#: same limit as an HTTP body, so every feed accepts the same messages.
DEFAULT_MAX_LINE_BYTES = MAX_MESSAGE_BYTES
#: How many of the last bytes read a followed file keeps to recognise a rewrite in place.
_TAIL_BYTES = 64




# --------------------------------------------------------------------------------------------------
# The source protocol and the shared thread machinery
# --------------------------------------------------------------------------------------------------


@runtime_checkable
class MessageSource(Protocol):
    """Anything that feeds messages to the app from a background thread."""

    description: str

    def start(self, emit: Emit) -> None:
        """Start a daemon thread that calls ``emit(message)`` for each message; returns at once."""
        ...

    def stop(self) -> None:
        """Ask the thread to finish; safe to call twice or before ``start``."""
        ...


class ThreadedSource:
    """Base for the bundled sources: one daemon thread, contained failures, a bounded problem list.

    Subclasses implement :meth:`_run` and call :meth:`_emit` / :meth:`_problem`; ``stop`` sets an event
    that ``_run`` checks (and waits on, so stopping never waits for a long demo delay).
    """

    description = "messages"

    def __init__(self, on_problem: ProblemSink | None = None) -> None:
        self._on_problem = on_problem
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._emit_cb: Emit | None = None
        #: Set when the thread has ended (end of input, stop(), or an unexpected error).
        self.finished = threading.Event()
        #: How many messages were handed to ``emit`` successfully.
        self.emitted = 0
        #: The most recent problems (also sent to ``on_problem``), for a status line or tests.
        self.problems: deque[str] = deque(maxlen=200)

    # -- public -----------------------------------------------------------------------------------
    def start(self, emit: Emit) -> None:
        """Validate the configuration synchronously, then start the reader thread."""
        if self._thread is not None:
            raise RuntimeError(f"{self.description}: already started")
        self._prepare()
        self._emit_cb = emit
        self._thread = threading.Thread(target=self._main, name=f"csassist-source:{self.description}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait up to ``timeout`` seconds for it."""
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the source has ended; ``True`` when it has."""
        return self.finished.wait(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop_event.is_set()

    # -- for subclasses ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Checks that must fail loudly at start (e.g. a missing file); default: none."""

    def _run(self) -> None:
        """Read and emit until the input ends or :attr:`stopping`; implemented by subclasses."""
        raise NotImplementedError

    def _emit(self, message: Message) -> None:
        """Hand one message on; a failing receiver is reported, never fatal."""
        assert self._emit_cb is not None
        try:
            self._emit_cb(message)
        except Exception as exc:  # the receiver's bug must not kill the feed
            self._problem(f"{self.description}: receiver failed on a message of {message.conversation_id}: {exc!r}")
        else:
            self.emitted += 1

    def _problem(self, text: str) -> None:
        """Record a problem and pass it to ``on_problem`` (whose own failures are swallowed)."""
        self.problems.append(text)
        if self._on_problem is not None:
            with contextlib.suppress(Exception):
                self._on_problem(text)

    def _main(self) -> None:
        """Thread body: run, contain any unexpected error, always mark the source finished."""
        try:
            self._run()
        except Exception as exc:
            self._problem(f"{self.description}: stopped after an unexpected error: {exc!r}")
        finally:
            self.finished.set()


# --------------------------------------------------------------------------------------------------
# JSONL file (optionally followed) and stdin
# --------------------------------------------------------------------------------------------------


class JsonlFileSource(ThreadedSource):
    """Reads ``FILE.jsonl``; with ``follow=True`` keeps reading what is appended (``tail -F``).

    Follow mode copes with a writer that is mid-line (the partial line waits for its newline; a
    complete JSON object left without newline for ``partial_grace`` seconds is taken as is), with
    truncation (reading restarts at the top) and with rotation (a new file under the same name is
    opened from its start once the old one is drained), and waits for a file that does not exist yet.
    Without follow the file must exist and the source ends at end of file.
    """

    def __init__(
        self,
        path: Path,
        *,
        follow: bool = False,
        poll_interval: float = 0.2,
        partial_grace: float = 1.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        on_problem: ProblemSink | None = None,
    ) -> None:
        super().__init__(on_problem)
        self.path = Path(path)
        self.follow = follow
        self.poll_interval = poll_interval
        self.partial_grace = partial_grace
        self.max_line_bytes = max_line_bytes
        self.description = f"{self.path}{' (following)' if follow else ''}"

    def _prepare(self) -> None:
        """Without follow, a missing or unreadable file is an error the user sees at once."""
        if self.path.is_dir():
            raise CsassistError(f"{self.path}: is a directory, expected a .jsonl file")
        if not self.follow and not self.path.is_file():
            raise CsassistError(f"{self.path}: no such file")

    def _run(self) -> None:
        """Read loop; see the class docstring for the follow-mode rules."""
        handle: BinaryIO | None = None
        identity: tuple[int, int] | None = None
        seen_tail = b""  # the last bytes read, to notice a rewrite that kept the inode and grew the size
        waited = False  # a poll interval passed since the last read (the file may have changed)
        reader = LineReader(str(self.path), self._problem)
        buffer = bytearray()
        discarding = False  # inside an over-long line: drop bytes until its newline
        emitted_prefix = 0  # bytes of `buffer` already emitted as a complete JSON object (grace rule)
        last_growth = time.monotonic()
        said_waiting = False
        try:
            while not self.stopping:
                if handle is None:
                    try:
                        # unbuffered: no read-ahead that could outlive a truncation
                        handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 - kept open across turns
                    except FileNotFoundError:
                        if not self.follow:
                            self._problem(f"{self.path}: no such file")
                            return
                        if not said_waiting:
                            self._problem(f"{self.path}: does not exist yet, waiting for it")
                            said_waiting = True
                        self._stop_event.wait(self.poll_interval)
                        continue
                    except OSError as exc:
                        self._problem(f"{self.path}: cannot open ({exc.strerror or exc})")
                        if not self.follow:
                            return
                        self._stop_event.wait(max(self.poll_interval, 1.0))
                        continue
                    opened = os.fstat(handle.fileno())
                    identity = (opened.st_dev, opened.st_ino)
                    reader.lineno = 0
                    buffer.clear()
                    discarding, emitted_prefix = False, 0
                    seen_tail = b""
                if waited and seen_tail and not self._still_there(handle, seen_tail):
                    # Truncated and refilled past our offset within one poll: the size check below
                    # cannot see it, the bytes we already read are no longer where we read them.
                    self._problem(f"{self.path}: file was truncated or rewritten, reading again from the start")
                    handle.seek(0)
                    reader.lineno = 0
                    buffer.clear()
                    discarding, emitted_prefix, seen_tail = False, 0, b""
                waited = False
                chunk = handle.read(65536)
                if chunk:
                    last_growth = time.monotonic()
                    seen_tail = (seen_tail + chunk)[-_TAIL_BYTES:]
                    discarding, emitted_prefix = self._consume(chunk, buffer, reader, discarding, emitted_prefix)
                    continue
                # End of what is there now.
                if not self.follow:
                    if buffer and not discarding:
                        self._line(bytes(buffer), reader, emitted_prefix)
                    return
                try:
                    st: os.stat_result | None = os.stat(self.path)
                except FileNotFoundError:
                    st = None  # removed / mid-rotation: keep draining the old handle and wait
                except OSError:
                    st = None
                if st is not None and (st.st_dev, st.st_ino) != identity:
                    if buffer and not discarding:
                        self._line(bytes(buffer), reader, emitted_prefix)
                    self._problem(f"{self.path}: file was replaced (rotated), reading the new one from the start")
                    handle.close()
                    handle = None
                    continue
                if st is not None and st.st_size < handle.tell():
                    self._problem(f"{self.path}: file was truncated, reading again from the start")
                    handle.seek(0)
                    reader.lineno = 0
                    buffer.clear()
                    discarding, emitted_prefix, seen_tail = False, 0, b""
                    continue
                if (
                    buffer
                    and not discarding
                    and len(buffer) > emitted_prefix
                    and time.monotonic() - last_growth >= self.partial_grace
                ):
                    emitted_prefix = self._try_partial(buffer, reader, emitted_prefix)
                self._stop_event.wait(self.poll_interval)
                waited = True
        finally:
            if handle is not None:
                handle.close()

    @staticmethod
    def _still_there(handle: BinaryIO, seen_tail: bytes) -> bool:
        """Whether the bytes just before the read position are still the ones that were read there."""
        position = handle.tell()
        if position < len(seen_tail):
            return False
        try:
            return os.pread(handle.fileno(), len(seen_tail), position - len(seen_tail)) == seen_tail
        except OSError:
            return True  # cannot tell (e.g. a pipe): keep reading as before

    def _consume(
        self, chunk: bytes, buffer: bytearray, reader: LineReader, discarding: bool, emitted_prefix: int
    ) -> tuple[bool, int]:
        """Split a chunk into complete lines, keeping the unfinished tail in ``buffer``."""
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                break
            piece = chunk[start:newline]
            if discarding:
                discarding = False
                reader.lineno += 1  # the over-long line ends here (already reported)
            else:
                buffer += piece
                self._line(bytes(buffer), reader, emitted_prefix)
            buffer.clear()
            emitted_prefix = 0
            start = newline + 1
        rest = chunk[start:]
        if discarding:
            return True, 0
        buffer += rest
        if len(buffer) > self.max_line_bytes:
            self._problem(f"{self.path}:{reader.lineno + 1}: line longer than {self.max_line_bytes} bytes, skipped")
            buffer.clear()
            return True, 0
        return False, emitted_prefix

    def _line(self, raw: bytes, reader: LineReader, emitted_prefix: int) -> None:
        """Emit one complete line (or account for one whose JSON was already emitted early)."""
        if len(raw) > self.max_line_bytes:
            reader.lineno += 1
            self._problem(f"{self.path}:{reader.lineno}: line longer than {self.max_line_bytes} bytes, skipped")
            return
        if emitted_prefix:
            reader.lineno += 1
            if raw[emitted_prefix:].strip():
                self._problem(f"{self.path}:{reader.lineno}: unexpected text after a complete JSON object, ignored")
            return
        message = reader.feed(raw)
        if message is not None:
            self._emit(message)

    def _try_partial(self, buffer: bytearray, reader: LineReader, emitted_prefix: int) -> int:
        """A writer left a line without newline: take it if it already is a complete, valid message."""
        if emitted_prefix:
            return emitted_prefix
        try:
            obj = json.loads(bytes(buffer).decode("utf-8"))
            message = parse_message(obj)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return 0  # not complete yet (or bad): wait for the newline, which reports it properly
        self._emit(message)
        return len(buffer)


class StdinSource(ThreadedSource):
    """JSONL on standard input (``--source -``); ends at end of input.

    ``stream`` defaults to ``sys.stdin.buffer``; tests inject a pipe or ``io.StringIO``.  A blocking
    read cannot be interrupted, so ``stop`` only takes effect at the next line - the thread is a
    daemon and never keeps the process alive.  For the terminal app, see :func:`detach_stdin_for_tui`.
    """

    def __init__(
        self,
        stream: IO[bytes] | IO[str] | None = None,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        on_problem: ProblemSink | None = None,
    ) -> None:
        super().__init__(on_problem)
        self.stream = stream
        self.max_line_bytes = max_line_bytes
        self.description = "stdin"

    def _run(self) -> None:
        """Read lines until EOF or stop; a line over ``max_line_bytes`` is reported and skipped."""
        stream: IO[Any] = self.stream if self.stream is not None else sys.stdin.buffer
        reader = LineReader("<stdin>", self._problem)
        limit = self.max_line_bytes
        while not self.stopping:
            raw = stream.readline(limit + 1)  # never more than the limit in memory (5 MB lines were taken)
            if not raw:
                return
            if len(raw) > limit and raw[-1:] not in (b"\n", "\n"):
                reader.lineno += 1
                self._problem(f"<stdin>:{reader.lineno}: line longer than {limit} bytes, skipped")
                while raw and raw[-1:] not in (b"\n", "\n"):  # drop the rest of that line
                    raw = stream.readline(limit + 1)
                continue
            message = reader.feed(raw)
            if message is not None and not self.stopping:
                self._emit(message)


def detach_stdin_for_tui(*, require_tty: bool = True) -> BinaryIO:
    """Give the piped stdin to a :class:`StdinSource` and the keyboard back to the terminal app.

    Textual reads keys from file descriptor 0.  With ``csassist --source - < feed.jsonl`` that fd is
    the feed, so this duplicates it to a new descriptor (returned as a binary stream for
    ``StdinSource``) and puts the controlling terminal (``/dev/tty``) on fd 0.  When there is no
    terminal, ``require_tty`` makes that a :class:`CsassistError`; otherwise fd 0 is left alone.
    """
    fd = os.dup(0)
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError as exc:
        if require_tty:
            os.close(fd)
            raise CsassistError(
                f"--source - reads messages from stdin, but there is no terminal for the keyboard ({exc.strerror})"
            ) from None
    else:
        os.dup2(tty, 0)
        os.close(tty)
    return os.fdopen(fd, "rb")


def collect(source: MessageSource, timeout: float) -> list[Message]:
    """Run ``source`` until it finishes (or ``timeout``) and return what it emitted; for tests and tools."""
    got: list[Message] = []
    lock = threading.Lock()

    def emit(message: Message) -> None:
        with lock:
            got.append(message)

    source.start(emit)
    finished = getattr(source, "finished", None)
    if isinstance(finished, threading.Event):
        finished.wait(timeout)
    else:  # a foreign source without a finished flag: give it the whole timeout
        time.sleep(timeout)
    source.stop()
    with lock:
        return list(got)
