"""The server's limits: one typed object, built by the entry point (never at import time)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unmask.errors import UnmaskError, unknown_name

MIB = 1024 * 1024


class ServeSettings(BaseModel):
    """Limits and sizes of ``unmask serve``, named as its flags; every default is the safe one.

    Attributes:
        max_upload_mb: largest upload accepted, in MiB; counted while it streams in (413 beyond).
        max_duration_s: longest video accepted, from its headers (413 beyond).
        max_side_px: largest frame side accepted (413 beyond): a tiny file can declare huge frames.
        queue_size: jobs that may wait for a worker; more are refused with 429 and Retry-After.
        workers: jobs judged at once (each worker holds its own copy of the model).
        job_ttl_s: seconds a finished job's result stays available.
        max_wait_s: longest long-poll (``?wait=``) a client may ask for.
        heatmaps: faces explained per job (0: none).
        heatmap_methods: explanation methods for the heatmaps (fast ones: the paper's ScoreCAM
            takes a minute per face on a CPU).
        device: ``cpu``, ``cuda`` ...; default a GPU when there is one.
        upload_root: where the private upload folder is made (default the system's temporary folder).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_upload_mb: float = Field(200.0, gt=0)
    max_duration_s: float = Field(600.0, gt=0)
    max_side_px: int = Field(8192, gt=0)
    queue_size: int = Field(8, ge=0)
    workers: int = Field(1, ge=1)
    job_ttl_s: float = Field(3600.0, gt=0)
    max_wait_s: float = Field(60.0, ge=0)
    heatmaps: int = Field(4, ge=0)
    heatmap_methods: tuple[str, ...] = ("gradcam",)
    device: str | None = None
    upload_root: Path | None = None

    @classmethod
    def make(cls, **values) -> "ServeSettings":
        """Build settings from keyword values, turning a bad value into one :class:`UnmaskError` line."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"])
            if first["type"] == "extra_forbidden":
                raise unknown_name("server setting", name, cls.model_fields) from None
            raise UnmaskError(f"Bad server setting {name}={first.get('input')!r}: {first['msg']}", name) from exc

    @property
    def max_upload_bytes(self) -> int:
        """:attr:`max_upload_mb` in bytes."""
        return int(self.max_upload_mb * MIB)
