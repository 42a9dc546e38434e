"""``unmask serve``."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app
from unmask.cli._help import methods_note, with_code_help


@app.command("serve", cls=with_code_help(lambda: {"heatmap_methods": methods_note()["methods"]}))
def serve_command(
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        help="Run folder of `unmask train` (or its model.safetensors), "
        "or a folder of `unmask export` (ONNX Runtime, no torch, no heatmaps).",
    ),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. The default serves this machine only; "
        "0.0.0.0 opens it to the network (put it behind a proxy with TLS).",
    ),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Videos judged at once (each worker loads its own copy of the model)."),
    queue_size: int = typer.Option(8, help="Uploads that may wait for a worker; more get 429 with Retry-After."),
    max_upload_mb: float = typer.Option(200.0, help="Largest upload in MiB (413 beyond; counted while it streams in)."),
    max_duration_s: float = typer.Option(600.0, help="Longest video in seconds (413 beyond)."),
    job_ttl_s: float = typer.Option(3600.0, help="Seconds a finished job's result is kept."),
    heatmaps: int = typer.Option(4, help="Faces explained per video (0: none)."),
    heatmap_methods: str = typer.Option(
        "gradcam",
        metavar="METHOD,...",
        help="Explanation methods of the heatmaps, comma-separated (scorecam and smoothgrad are slow on a CPU).",
    ),
    device: str = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
):
    """Serve a web page and a JSON API that judge uploaded videos, with the model loaded once.

    The port is taken before the model loads; the line 'unmask serving ... on URL' is printed once
    the server holds it, with the port it got (--port 0: any free port).

    \b
    Exit status: 1 a user error (a bad setting, a missing run, a port that is taken or needs rights
    this user lacks; nothing served), 2 a usage error (an unknown option), 130 stopped (Ctrl-C or
    kill), after a clean shutdown that removes every stored upload.

    \b
    Example: unmask serve --model runs/effv2s   (then open http://127.0.0.1:8000)
    """
    import uvicorn

    from unmask.cli import on_interrupt
    from unmask.errors import UnmaskError
    from unmask.serve import ServeSettings, create_app

    if not 0 <= port <= 65535:
        raise UnmaskError(f"--port must be from 0 (any free port) to 65535, not {port}")
    settings = ServeSettings.make(
        workers=workers,
        queue_size=queue_size,
        max_upload_mb=max_upload_mb,
        max_duration_s=max_duration_s,
        job_ttl_s=job_ttl_s,
        heatmaps=heatmaps,
        heatmap_methods=tuple(m.strip() for m in heatmap_methods.split(",") if m.strip()),
        device=device,
    )
    sock = listen_socket(host, port)  # before the model loads: a taken port costs one line, not a minute
    try:
        web = create_app(model, settings)
        bound = sock.getsockname()[1]
        typer.echo(
            f"unmask serving {model} on http://{'[' + host + ']' if ':' in host else host}:{bound}  (Ctrl-C stops)"
        )
        server = uvicorn.Server(uvicorn.Config(web, log_level="info", proxy_headers=False, server_header=False))
        on_interrupt("stopped: the server shut down and removed every stored upload")
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.should_exit:  # stopped by a signal (uvicorn shut down cleanly first): exit 130 as documented
        raise typer.Exit(130)


def listen_socket(host: str, port: int):
    """A socket bound to ``host:port`` (0: a free port), ready for uvicorn to listen on.

    Raises:
        UnmaskError: ``host`` is not an address here, or the port is taken or needs rights.
    """
    import errno
    import socket

    from unmask.errors import UnmaskError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UnmaskError(
            f"--host {host!r} is not an address ({getattr(exc, 'strerror', None) or exc}); "
            "give 127.0.0.1, 0.0.0.0 or ::"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = {
            errno.EADDRINUSE: "another program listens there; choose another --port (0: any free one)",
            errno.EACCES: "ports below 1024 need rights this user lacks; choose --port 1024 or above",
            errno.EADDRNOTAVAIL: "that address is not this machine's; give 127.0.0.1 or 0.0.0.0",
        }
        raise UnmaskError(
            f"Cannot listen on {host}:{port} ({exc.strerror}); "
            + hint.get(exc.errno, "choose another --host or --port")
        ) from None
    sock.set_inheritable(True)
    return sock
