"""Jobs: a bounded queue in front of a pool of worker threads, each holding its own judge.

Admission is decided before an upload is read: a request takes a slot (``queue_size`` waiting +
``workers`` running) or is refused at once with 429; the slot is given back when its job ends or
its upload is refused. Results live in memory for ``job_ttl_s`` and are then forgotten.
"""

from __future__ import annotations

import io
import logging
import math
import queue
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from unmask.errors import UnmaskError
from unmask.serve.settings import ServeSettings

logger = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")


@dataclass
class Job:
    """One uploaded file on its way to a verdict.

    Attributes:
        id: random hex id (also the stored file's name stem).
        filename: the client's file name, cleaned; shown, never used as a path.
        path: the stored upload (under the server's private folder).
        status: one of :data:`STATUSES`; ``progress`` in [0, 1]; ``stage`` what it is doing.
        result: ``Prediction.to_dict()`` once done; ``error`` the message once failed.
        heatmaps: descriptions of the heatmaps (``Heatmap.to_dict()``), ``pngs`` their images.
        report: the report of the judged file (one HTML document, :mod:`unmask.predict.report`).
    """

    id: str
    filename: str
    path: Path
    created: float = field(default_factory=time.time)
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    result: dict | None = None
    error: str | None = None
    heatmaps: list[dict] = field(default_factory=list)
    pngs: list[bytes] = field(default_factory=list)
    report: bytes | None = None
    finished: float | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def public(self, text: str) -> str:
        """``text`` with the stored file's path and name replaced by the client's file name."""
        return text.replace(str(self.path), self.filename).replace(self.path.name, self.filename)


class QueueFull(Exception):
    """No slot is free; try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"The server is busy ({retry_after_s} s); try again later")
        self.retry_after_s = retry_after_s


class JobManager:
    """Owns the private upload folder, the queue, the workers and the finished results.

    Args:
        detectors: one judge per worker (objects with ``predict`` and ``explain`` as
            :class:`unmask.Detector`); a judge is not thread-safe, so each worker has its own, and a
            judge given twice is used under a lock.
        settings: the limits.
    """

    def __init__(self, detectors: list, settings: ServeSettings):
        self.settings = settings
        self.detectors = detectors
        # mkdtemp makes it with mode 0700: private to the user running the server
        self.folder = Path(tempfile.mkdtemp(prefix="unmask-serve-", dir=settings.upload_root))
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.queue_size + settings.workers)
        self._queue: queue.Queue = queue.Queue()
        self._locks = {id(d): threading.Lock() for d in detectors}
        self._seconds_per_job = 5.0  # running mean of job time, for Retry-After
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- admission -------------------------------------------------------------------------
    def reserve(self) -> None:
        """Take a slot for a new job, or raise :class:`QueueFull` (before any byte is read)."""
        if not self._slots.acquire(blocking=False):
            raise QueueFull(self.retry_after_s())

    def release(self) -> None:
        """Give back a slot taken by :meth:`reserve` whose job will not run."""
        self._slots.release()

    def retry_after_s(self) -> int:
        """A fair wait before retrying: the work ahead divided among the workers."""
        ahead = self.queued() + self.settings.workers
        return max(1, min(3600, math.ceil(self._seconds_per_job * ahead / self.settings.workers)))

    def new_job(self, filename: str = "upload") -> Job:
        """A job with a fresh random id and a stored-file path in the private folder."""
        job_id = uuid.uuid4().hex
        return Job(job_id, filename, self.folder / f"{job_id}.upload")

    def submit(self, job: Job) -> None:
        """Queue a job whose upload was received and probed (its slot already taken)."""
        with self._lock:
            self._jobs[job.id] = job
        self._queue.put(job)

    # -- queries ---------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        self.expire()
        with self._lock:
            return self._jobs.get(job_id)

    def queued(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status == "queued")

    def running(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status == "running")

    def expire(self) -> None:
        """Forget finished jobs older than the TTL."""
        now = time.time()
        with self._lock:
            for job_id in [
                j.id
                for j in self._jobs.values()
                if j.finished is not None and now - j.finished > self.settings.job_ttl_s
            ]:
                del self._jobs[job_id]

    # -- workers ---------------------------------------------------------------------------
    def start(self) -> None:
        for k in range(self.settings.workers):
            detector = self.detectors[k % len(self.detectors)]
            thread = threading.Thread(target=self._work, args=(detector,), name=f"unmask-worker-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the workers after their current job and remove the private folder with all uploads."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _work(self, detector) -> None:
        while not self._stopping.is_set():
            try:
                job = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.expire()
                continue
            if job is None:
                return
            try:
                with self._locks[id(detector)]:
                    self._run(job, detector)
            finally:
                job.path.unlink(missing_ok=True)
                job.finished = time.time()
                job.status = "done" if job.result is not None else "failed"
                job.error = None if job.result is not None else (job.error or "Judging stopped unexpectedly")
                job.stage, job.progress = job.status, 1.0
                self._slots.release()
                job.done.set()

    def _run(self, job: Job, detector) -> None:
        """Judge one job: its result, or its error; whatever goes wrong, never the worker's end."""
        started = time.perf_counter()
        job.status, job.stage, job.progress = "running", "starting", 0.02
        share = 0.85 if self.settings.heatmaps else 1.0

        def progress(stage, fraction):
            job.stage = str(stage)
            job.progress = max(job.progress, min(1.0, float(fraction)) * share)

        try:
            prediction = detector.predict(job.path, progress=progress, keep_faces=bool(self.settings.heatmaps))
            heatmaps = []
            if self.settings.heatmaps and prediction.timeline:
                job.stage = "explain"
                heatmaps = detector.explain(
                    prediction, methods=list(self.settings.heatmap_methods), max_faces=self.settings.heatmaps
                )
                job.pngs = [encode_png(h.overlay) for h in heatmaps]
                job.heatmaps = [h.to_dict() for h in heatmaps]
            prediction = prediction.with_regions(heatmaps)
            job.report = _report(job, detector, prediction, heatmaps)
            result = prediction.to_dict()
            result["input"] = job.filename  # the server's own paths stay on the server
            if result.get("reason"):
                result["reason"] = job.public(result["reason"])
            if isinstance(result.get("model"), dict) and result["model"].get("run"):
                result["model"]["run"] = Path(result["model"]["run"]).name
            job.result = result
        except UnmaskError as exc:
            job.error = job.public(str(exc))
        except Exception:  # a bug in judging one file must not end the worker
            logger.exception("job %s (%s) failed", job.id, job.filename)
            job.error = f"Judging {job.filename} failed inside the server (see its log)"
        elapsed = time.perf_counter() - started
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * elapsed


def _report(job: Job, detector, prediction, heatmaps) -> bytes | None:
    """The job's report (while its upload is still there to describe), naming no server path."""
    from dataclasses import replace

    from unmask.predict.report import report_html

    public = replace(
        prediction, input=job.filename, reason=job.public(prediction.reason) if prediction.reason else None
    )
    try:
        return report_html(
            detector, public, heatmaps=heatmaps, path=job.path, input_name=job.filename, public=True
        ).encode("utf-8")
    except Exception:  # the verdict stands without its report
        logger.exception("job %s (%s): the report could not be made", job.id, job.filename)
        return None


def encode_png(rgb) -> bytes:
    """``(H, W, 3) uint8`` RGB as PNG bytes (kept in memory, served from there)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()
