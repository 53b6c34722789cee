"""OSC control server (python-osc over UDP).

One serving thread handles datagrams in arrival order (python-osc's ``BlockingOSCUDPServer`` run in
a daemon thread; the threading server starts a thread per packet, so XY moves could be applied out
of order). Every message goes through the pure router :func:`nsynth_live.engine.osc.route_osc`
(address space: ``docs/osc.md``), which logs why it rejects a message; rejected messages are
counted here, and datagrams that are not OSC at all are counted and warned about (rate-limited).
Neither stops the server. Bundles are applied on arrival, whatever their timetag (a future timetag
would otherwise make the serving thread sleep).

OSC has no authentication, so the server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

DEFAULT_OSC_HOST = "127.0.0.1"  # loopback only: OSC has no authentication
DEFAULT_OSC_PORT = 8000  # UDP port, TouchOSC's usual outgoing port
_WARN_FIRST = 5  # warnings printed per kind of problem before rate limiting
_WARN_EVERY = 100  # then one warning per this many occurrences


class OscServerError(RuntimeError):
    """The OSC socket could not be bound (port in use, bad host)."""


class OscServer:
    """UDP OSC server routing messages to the engine on one thread.

    Parameters
    ----------
    post : callable
        Receives each routed event (``Engine.post``, thread-safe).
    host : str
        Interface to bind; ``"127.0.0.1"`` (default) accepts local clients only, ``"0.0.0.0"`` all.
    port : int
        UDP port, 0..65535; 0 lets the OS choose (see :attr:`address`).
    router : callable, optional
        ``router(address: str, args: tuple) -> Event | None``, pure and never raising;
        default :func:`nsynth_live.engine.osc.route_osc`.

    Attributes
    ----------
    messages_received, events_posted, messages_rejected, packets_malformed : int
        Counters (written by the serving thread only).
    """

    def __init__(
        self,
        post: Callable[[Any], None],
        *,
        host: str = DEFAULT_OSC_HOST,
        port: int = DEFAULT_OSC_PORT,
        router: Callable[[str, list], Any] | None = None,
    ) -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"OSC port must be in 0..65535, got {port}")
        if router is None:
            from nsynth_live.engine.osc import route_osc

            router = route_osc
        self._post = post
        self._router = router
        self._host = host
        self._port = int(port)
        self._server = None
        self._thread: threading.Thread | None = None
        self.messages_received = 0
        self.events_posted = 0
        self.messages_rejected = 0
        self.packets_malformed = 0
        self._warn_counts: dict[str, int] = {}

    # -- serving-thread side -------------------------------------------------------------------
    def _warn(self, key: str, message: str, *args: Any) -> None:
        count = self._warn_counts.get(key, 0) + 1
        self._warn_counts[key] = count
        if count <= _WARN_FIRST or count % _WARN_EVERY == 0:
            suffix = f" (seen {count} times)" if count > 1 else ""
            logger.warning(message + suffix, *args)

    def handle_message(self, address: str, args: Sequence[Any]) -> None:
        """Route one decoded OSC message and post the event (never raises).

        Public so that tests and the OSC documentation can exercise routing without sockets.
        """
        self.messages_received += 1
        try:
            event = self._router(address, tuple(args))
        except Exception as error:  # noqa: BLE001 - route_osc promises not to raise; be safe anyway
            event = None
            self._warn(f"raise:{address}", "OSC router failed on %s %r: %s", address, list(args), error)
        if event is None:
            # route_osc already warned about malformed arguments (and keeps unknown addresses,
            # which controllers send plenty of, at debug level); only count here.
            self.messages_rejected += 1
            logger.debug("OSC message %s %r produced no event", address, list(args))
            return
        self._post(event)
        self.events_posted += 1

    def handle_datagram(self, data: bytes) -> None:
        """Decode one UDP datagram (message or bundle) and route its messages (never raises)."""
        from pythonosc import osc_packet

        try:
            packet = osc_packet.OscPacket(data)
        except osc_packet.ParseError as error:
            self.packets_malformed += 1
            self._warn("malformed", "ignored a malformed OSC packet of %d bytes: %s", len(data), error)
            return
        except Exception as error:  # noqa: BLE001 - python-osc may raise other errors on garbage
            self.packets_malformed += 1
            self._warn("malformed", "ignored a malformed OSC packet of %d bytes: %s", len(data), error)
            return
        for timed in packet.messages:
            self.handle_message(timed.message.address, timed.message.params)

    # -- control side --------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound (the port the OS chose if ``port=0``)."""
        if self._server is None:
            return (self._host, self._port)
        host, port = self._server.server_address[:2]
        return (host, port)

    def start(self) -> None:
        """Bind the socket and start the serving thread.

        Raises
        ------
        OscServerError
            If the socket cannot be bound (message gives host, port and the fix).
        """
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        owner = self

        class _Dispatcher(Dispatcher):
            def call_handlers_for_packet(self, data, client_address):  # noqa: D401 - python-osc hook
                owner.handle_datagram(data)
                return []

        class _Server(BlockingOSCUDPServer):
            def verify_request(self, request, client_address):  # let malformed data reach the handler
                return True

            def handle_error(self, request, client_address):  # never print tracebacks from the thread
                owner._warn("server", "OSC server error on a packet from %s", client_address)

        try:
            self._server = _Server((self._host, self._port), _Dispatcher())
        except OSError as error:
            raise OscServerError(
                f"cannot listen for OSC on {self._host}:{self._port}: {error}. "
                "Fix: choose a free port with --osc-port N, or turn OSC off with --no-osc"
            ) from error
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="nsynth-osc", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._server = None
        self._thread = None
