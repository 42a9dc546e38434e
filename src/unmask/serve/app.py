"""The FastAPI app of ``unmask serve``: a JSON API under /api/v1 and one web page at /.

Build it with :func:`create_app`; nothing is built at import time. Routes stay thin: they check
the upload at the door (size while it streams, then the container's probe), queue it, and report;
the judging is :meth:`unmask.Detector.predict` and :meth:`~unmask.Detector.explain`, run by the
workers of :class:`~unmask.serve.jobs.JobManager`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from unmask import __version__
from unmask.errors import UnmaskError, UnsupportedMediaError, VideoReadError
from unmask.serve.jobs import Job, JobManager, QueueFull
from unmask.serve.schemas import ErrorOut, Health, JobCreated, JobOut, Links
from unmask.serve.settings import ServeSettings
from unmask.serve.upload import UploadError, drain, receive_upload
from unmask.video.probe import IMAGE_FORMATS, probe_video

logger = logging.getLogger(__name__)

API = "/api/v1"
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# Suffix of the stored file by container (ours, never the client's): the judge tells pictures by it.
_SUFFIXES = {"mov,mp4,m4a,3gp,3g2,mj2": ".mp4", "matroska,webm": ".mkv", "avi": ".avi", **IMAGE_FORMATS}
_ERRORS = {
    400: {"model": ErrorOut, "description": "empty, damaged or malformed upload"},
    413: {"model": ErrorOut, "description": "too large, too long, or frames too big"},
    415: {"model": ErrorOut, "description": "not a video (or a codec that cannot be decoded)"},
    429: {"model": ErrorOut, "description": "queue full; see the Retry-After header"},
}
# A refused body may still be on its way: after reading a bounded part of it, the server answers and
# closes the connection (otherwise the server would go on reading, and dropping, all of it).
_CLOSE = {"Connection": "close"}
_PAGE_HEADERS = {
    # Everything the page needs is inline; it talks only to this server.
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def load_detectors(detector_or_run, settings: ServeSettings) -> list:
    """One judge per worker: loaded from a run folder or checkpoint, or the one judge given."""
    if hasattr(detector_or_run, "predict"):
        return [detector_or_run]
    from unmask.predict import Detector

    first = Detector.load(detector_or_run, device=settings.device)
    return [first] + [Detector.load(detector_or_run, device=settings.device) for _ in range(settings.workers - 1)]


def create_app(detector_or_run, settings: ServeSettings | None = None) -> FastAPI:
    """Build the web app around a judge.

    Args:
        detector_or_run: an :class:`unmask.Detector`, or a run folder / checkpoint file / export
            folder to load (once per worker, here, before the app answers anything). An export
            judges without torch, and without heatmaps (they need the PyTorch model).
        settings: limits and sizes (default :class:`ServeSettings`'s safe defaults).

    Returns:
        The FastAPI app; its lifespan starts the workers and, at shutdown, stops them and
        removes every stored upload.
    """
    settings = settings or ServeSettings()
    detectors = load_detectors(detector_or_run, settings)
    if settings.heatmaps and not getattr(detectors[0], "can_explain", True):
        logger.warning("no heatmaps: %s", detectors[0].explain_needs)
        settings = settings.model_copy(update={"heatmaps": 0})
    if settings.heatmaps:
        from unmask.explain.cam import check_methods  # imports torch

        check_methods(settings.heatmap_methods)  # a bad name stops the start, not every job
    model_name = _model_name(detectors[0])

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager = JobManager(detectors, settings)
        manager.start()
        app.state.manager = manager
        try:
            yield
        finally:
            await run_in_threadpool(manager.stop)

    app = FastAPI(
        title="unmask",
        version=__version__,
        lifespan=lifespan,
        description="Is this clip deepfaked, and why? Upload a video, poll for the verdict.",
    )

    @app.exception_handler(UnmaskError)
    async def _unmask_error(request: Request, exc: UnmaskError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.url.path.startswith(API):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("unmask.serve").joinpath("page/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    _add_job_routes(app, settings)
    _add_result_routes(app, settings, model_name)
    return app


def _add_job_routes(app: FastAPI, settings: ServeSettings) -> None:
    """POST a job (the upload, checked at the door) and GET its state."""

    @app.post(
        f"{API}/jobs",
        status_code=202,
        response_model=JobCreated,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": "the video (mp4, mov, mkv, webm, avi ...) or a picture",
                                }
                            },
                        }
                    }
                },
            }
        },
    )
    async def create_job(request: Request) -> JobCreated:
        """Upload a video (multipart field `file`); it is checked, queued and judged."""
        manager: JobManager = request.app.state.manager
        try:
            manager.reserve()
        except QueueFull as exc:
            await drain(request)
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s), **_CLOSE}) from None
        job = manager.new_job()
        try:
            job.filename = await receive_upload(request, job.path, max_bytes=settings.max_upload_bytes)
            job.path = await run_in_threadpool(_check_upload, job, settings)
        except BaseException as exc:
            job.path.unlink(missing_ok=True)
            manager.release()
            if isinstance(exc, UploadError):
                raise HTTPException(exc.status, str(exc), headers=_CLOSE if exc.status == 413 else None) from None
            raise
        manager.submit(job)
        return JobCreated(id=job.id, status=job.status, filename=job.filename, links=_links(job))

    @app.get(f"{API}/jobs/{{job_id}}", response_model=JobOut, responses={404: {"model": ErrorOut}})
    async def get_job(
        request: Request,
        job_id: str,
        wait: float = Query(0.0, ge=0, description="seconds to wait for the result (long poll)"),
    ) -> JobOut:
        """A job's state; its verdict once done. Add `?wait=30` to wait for it."""
        job = _job(request, job_id)
        deadline = time.monotonic() + min(wait, settings.max_wait_s)
        while not job.done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return _job_out(job, settings)


def _add_result_routes(app: FastAPI, settings: ServeSettings, model_name: str) -> None:
    """A finished job's heatmaps and report, and the server's health."""

    @app.get(
        f"{API}/jobs/{{job_id}}/heatmaps/{{k}}.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}},
    )
    async def get_heatmap(request: Request, job_id: str, k: int) -> Response:
        """The k-th heatmap of a finished job (PNG: the heatmap blended over the face)."""
        job = _job(request, job_id)
        if not job.done.is_set() or not 0 <= k < len(job.pngs):
            raise HTTPException(404, f"Job {job_id} has no heatmap {k} (it has {len(job.pngs)})")
        return Response(job.pngs[k], media_type="image/png")

    @app.get(
        f"{API}/jobs/{{job_id}}/report.html",
        response_class=Response,
        responses={200: {"content": {"text/html": {}}}, 404: {"model": ErrorOut}},
    )
    async def get_report(request: Request, job_id: str) -> Response:
        """The report of a finished job: one self-contained HTML file to save and pass on."""
        job = _job(request, job_id)
        if not job.done.is_set() or job.report is None:
            raise HTTPException(404, f"Job {job_id} has no report (it is not done, or it failed)")
        stem = re.sub(r"[^\w.-]+", "_", Path(job.filename).stem)[:80] or "clip"
        return Response(
            job.report,
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{stem}-report.html"',
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            },
        )

    @app.get(f"{API}/health", response_model=Health)
    async def health(request: Request) -> Health:
        """The server is up: model, version, and how busy it is."""
        manager: JobManager = request.app.state.manager
        return Health(
            status="ok",
            version=__version__,
            model=model_name,
            queued=manager.queued(),
            running=manager.running(),
            workers=settings.workers,
            queue_size=settings.queue_size,
        )


def _check_upload(job: Job, settings: ServeSettings) -> Path:
    """Probe the stored upload; refuse what cannot or may not be judged; return its final path."""
    try:
        info = probe_video(job.path, decode_first=False)  # the headers: what it is, how long, how large
    except UnsupportedMediaError as exc:
        raise UploadError(415, job.public(str(exc))) from None
    except VideoReadError as exc:
        raise UploadError(400, job.public(str(exc))) from None
    _check_limits(job, info, settings)  # before anything is decoded: a huge frame is 413, not "damaged"
    try:
        probe_video(job.path)  # then its first frame must decode
    except VideoReadError as exc:
        raise UploadError(415 if isinstance(exc, UnsupportedMediaError) else 400, job.public(str(exc))) from None
    return job.path.rename(job.path.with_suffix(_SUFFIXES.get(info.container, ".video")))


def _check_limits(job: Job, info, settings: ServeSettings) -> None:
    if info.duration_s > settings.max_duration_s:
        raise UploadError(
            413,
            f"{job.filename} lasts {info.duration_s:.0f} s, longer than this server's limit of "
            f"{settings.max_duration_s:.0f} s; cut it (or start the server with a larger --max-duration-s)",
        )
    if max(info.width, info.height) > settings.max_side_px:
        raise UploadError(
            413,
            f"{job.filename}'s frames are {info.width}x{info.height}, larger than this server's "
            f"limit of {settings.max_side_px} px a side; scale it down",
        )


def _job(request: Request, job_id: str) -> Job:
    job = request.app.state.manager.get(job_id) if _JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise HTTPException(404, f"No job {job_id[:40]!r} here (unknown, or its result expired)")
    return job


def _links(job: Job) -> Links:
    return Links(self=f"{API}/jobs/{job.id}", page=f"/#{job.id}")


def _job_out(job: Job, settings: ServeSettings) -> JobOut:
    heatmaps = [dict(h, url=f"{API}/jobs/{job.id}/heatmaps/{k}.png") for k, h in enumerate(job.heatmaps)]
    expires = job.finished + settings.job_ttl_s if job.finished else None
    return JobOut(
        id=job.id,
        status=job.status,
        stage=job.stage,
        progress=round(job.progress, 3),
        filename=job.filename,
        created_at=job.created,
        finished_at=job.finished,
        expires_at=expires,
        error=job.error,
        result=job.result if job.status == "done" else None,
        heatmaps=heatmaps if job.done.is_set() else [],
        links=_links(job),
    )


def _model_name(detector) -> str:
    info = getattr(detector, "model_info", None) or {}
    return str(info.get("name", type(detector).__name__))
