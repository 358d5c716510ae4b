"""Checking that a listening port is free before the server starts, so that a port already in
use is one clean error (``PortInUse``, naming the port and the option to change it) before the
start banner, not uvicorn exiting with ``[Errno 98] Address already in use`` after it.

The check binds the address the way uvicorn will (``SO_REUSEADDR`` on POSIX, so a port in
``TIME_WAIT`` from a server that just stopped counts as free) and releases it at once.
"""

from __future__ import annotations

import errno
import socket

from convection.errors import ConvectionError

__all__ = ["PortInUse", "ensure_port_free"]


class PortInUse(ConvectionError):
    """Another process listens on the port the server was asked to use."""

    code = "PortInUse"


def ensure_port_free(host: str, port: int, option: str = "--port") -> None:
    """Raise :class:`PortInUse` if ``host:port`` cannot be bound; ``option`` is the command
    line option that chooses another port (named in the message). Port 0 is always free."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConvectionError(
            f"Cannot listen on {host}:{port}: the host name does not resolve ({exc.strerror}). "
            "Use an address such as 127.0.0.1 or 0.0.0.0 with --host.",
            code="InvalidArgument",
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        if hasattr(socket, "SO_REUSEADDR") and not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                raise PortInUse(
                    f"Port {port} on {host} is already in use: another convection server (or "
                    f"another program) is listening there. Stop it, or choose another port with "
                    f"{option} {port + 10}."
                ) from None
            if exc.errno == errno.EACCES:
                raise PortInUse(
                    f"Not allowed to listen on port {port} on {host} (ports below 1024 need "
                    f"privileges). Choose a port above 1023 with {option}, e.g. {option} 3210.",
                    code="PortNotPermitted",
                ) from None
            raise
