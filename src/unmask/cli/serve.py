"""``unmask serve``."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app
from unmask.cli._help import methods_note, with_code_help


@app.command("serve", cls=with_code_help(lambda: {"heatmap_methods": methods_note()["methods"]}))
def serve_command(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder of `unmask train` (or its model.safetensors)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. The default serves this machine only; "
                                               "0.0.0.0 opens it to the network (put it behind a proxy with TLS)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Videos judged at once (each worker loads its own copy of the model)."),
    queue_size: int = typer.Option(8, help="Uploads that may wait for a worker; more get 429 with Retry-After."),
    max_upload_mb: float = typer.Option(200.0, help="Largest upload in MiB (413 beyond; counted while it streams in)."),
    max_duration_s: float = typer.Option(600.0, help="Longest video in seconds (413 beyond)."),
    job_ttl_s: float = typer.Option(3600.0, help="Seconds a finished job's result is kept."),
    heatmaps: int = typer.Option(4, help="Faces explained per video (0: none)."),
    heatmap_methods: str = typer.Option("gradcam", metavar="METHOD,...", help="Explanation methods of the heatmaps, comma-separated "
                                                "(scorecam and smoothgrad are slow on a CPU)."),
    device: str = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
):
    """Serve a web page and a JSON API that judge uploaded videos, with the model loaded once.

    \b
    Example: unmask serve --model runs/effv2s   (then open http://127.0.0.1:8000)
    """
    import uvicorn

    from unmask.serve import ServeSettings, create_app

    settings = ServeSettings.make(workers=workers, queue_size=queue_size, max_upload_mb=max_upload_mb,
                                  max_duration_s=max_duration_s, job_ttl_s=job_ttl_s, heatmaps=heatmaps,
                                  heatmap_methods=tuple(m.strip() for m in heatmap_methods.split(",") if m.strip()),
                                  device=device)
    web = create_app(model, settings)
    typer.echo(f"unmask serving {model} on http://{'[' + host + ']' if ':' in host else host}:{port}  (Ctrl-C stops)")
    uvicorn.run(web, host=host, port=port, log_level="info", proxy_headers=False, server_header=False)
