"""Where messages come from and where replies go, chosen from the command-line arguments.

No arguments -> the demo replay; ``--source FILE [--follow]`` / ``--source -`` -> JSONL feeds;
``--listen HOST:PORT`` -> the local HTTP intake (its token is shown at start).  ``--no-demo`` with
neither starts an empty inbox.  Problems the sources report later (a bad JSONL line) reach the app
as notifications through :class:`ProblemRelay`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csassist import paths
from csassist.core.types import Message
from csassist.settings import Settings


class ProblemRelay:
    """A sink for source problems that works before and after the app exists."""

    def __init__(self) -> None:
        self.early: list[str] = []
        self.target: Callable[[str], None] | None = None

    def __call__(self, text: str) -> None:
        """Forward to the app once attached, else keep for the start-up notices."""
        if self.target is not None:
            self.target(text)
        else:
            self.early.append(text)


class ListenSource:
    """Adapts :func:`csassist.core.io.listen.start_listen_server` to the ``start(emit)`` / ``stop()`` shape."""

    def __init__(self, address: str, settings: Settings, on_problem: Callable[[str], None],
                 routes: dict[str, Any] | None = None) -> None:
        self.address, self.settings, self.on_problem = address, settings, on_problem
        self.routes = routes or {}
        self.server: Any = None
        self.description = address

    def start(self, emit: Callable[[Message], None]) -> None:
        """Bind and serve; the token (configured or generated) is reported through ``on_problem``."""
        from csassist.core.io.listen import start_listen_server

        self.server = start_listen_server(self.address, on_message=emit, token=self.settings.listen.token or None,
                                          max_body_bytes=self.settings.listen.max_body_bytes,
                                          on_problem=self.on_problem, routes=self.routes)
        self.description = self.server.url
        self.on_problem(f"Listening on {self.server.messages_url} — bearer token: {self.server.token}")

    def stop(self) -> None:
        """Stop the HTTP server."""
        if self.server is not None:
            self.server.stop()


@dataclass
class Intake:
    """What :func:`build_intake` decided: sources, the outbox, a label for the status bar, notices."""

    sources: list[Any]
    outbox: Any
    label: str
    relay: ProblemRelay
    notices: list[str] = field(default_factory=list)
    #: The Chatwoot connector when ``--source chatwoot`` (its sender gets every sent reply).
    chatwoot: Any = None


def build_intake(args: argparse.Namespace, settings: Settings) -> Intake:
    """Sources and outbox for the app from ``--source/--follow/--listen/--no-demo/--speed``."""
    from csassist.core.io.demo_replay import DemoReplay
    from csassist.core.io.feeds import source_from_args
    from csassist.core.io.listen_address import parse_listen_address
    from csassist.core.io.outbox import Outbox
    from csassist.core.io.sources import detach_stdin_for_tui

    relay = ProblemRelay()
    sources: list[Any] = []
    labels: list[str] = []
    chatwoot = None
    routes: dict[str, Any] = {}
    if args.source == "chatwoot":
        chatwoot = build_chatwoot(settings, relay)
        sources.append(chatwoot.poller)
        labels.append(f"chatwoot {settings.chatwoot.url}")
        if settings.chatwoot.webhook_secret:
            from csassist.core.io.chatwoot import WEBHOOK_PREFIX

            routes[WEBHOOK_PREFIX] = chatwoot.webhook
    elif args.source:
        source = source_from_args(args.source, follow=args.follow, on_problem=relay)
        if args.source == "-":
            source.stream = detach_stdin_for_tui()  # type: ignore[attr-defined]
        sources.append(source)
        labels.append("stdin" if args.source == "-" else str(args.source))
    if args.listen:
        host, port = parse_listen_address(args.listen)  # a bad address fails here, before the screen opens
        sources.append(ListenSource(args.listen, settings, relay, routes))
        labels.append(f"http://{host}:{port}")
    if not sources and not args.no_demo:
        sources.append(DemoReplay(speed=args.speed or 1.0, wait_for_agent=True, on_problem=relay))
        labels.append("demo replay")
    outbox = Outbox(paths.outbox_file(), settings.listen.outbox_url or None, on_problem=relay)
    return Intake(sources, outbox, " + ".join(labels) or "no feed", relay, chatwoot=chatwoot)


def build_chatwoot(settings: Settings, on_problem: Callable[[str], None]) -> Any:
    """The Chatwoot connector from ``[chatwoot]`` (a clear error for a missing url/account/token)."""
    from csassist.core.io.chatwoot import ChatwootConnector, load_token
    from csassist.core.io.chatwoot_api import ChatwootConfig

    cw = settings.chatwoot
    if not cw.url or cw.account_id <= 0:
        from csassist.core.errors import CsassistError

        raise CsassistError("--source chatwoot needs [chatwoot] url and account_id in config.toml (see README, Team set-up)")
    config = ChatwootConfig(url=cw.url, account_id=cw.account_id, token=load_token(cw.token_file),
                            poll_interval_s=cw.poll_interval_s, private_notes=cw.private_notes,
                            webhook_secret=cw.webhook_secret, webhook_hmac_secret=cw.webhook_hmac_secret)
    return ChatwootConnector(config, ledger=paths.data_dir() / "chatwoot-delivered.jsonl",
                             outbox_path=paths.outbox_file(), on_problem=on_problem)
