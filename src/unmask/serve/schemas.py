"""The API's output shapes; the result mirrors :class:`unmask.Prediction` field for field, so /docs documents it.

The input is the multipart upload (its schema is declared on the route, since the body is parsed
while it streams) and the ``wait`` query parameter; no input model doubles as an output model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


# ---- output -----------------------------------------------------------------------------------
class Costs(BaseModel):
    missed_fake: float
    false_alarm: float


class TrackOut(BaseModel):
    """The verdict on one person (face track)."""

    track_id: int
    verdict: Literal["fake", "real", "inconclusive"]
    p_fake: float | None
    n_faces: int
    first_s: float
    last_s: float


class FrameScoreOut(BaseModel):
    """One face in one sampled frame."""

    frame_index: int
    time_s: float
    track_id: int
    p_fake: float | None
    box: list[float] = Field(description="[x1, y1, x2, y2] in frame pixels")


class PredictionOut(BaseModel):
    """The verdict on one upload (``unmask.Prediction.to_dict()``)."""

    input: str = Field(description="the uploaded file's name as the client sent it (cleaned)")
    kind: Literal["video", "image"]
    verdict: Literal["fake", "real", "inconclusive"]
    p_fake: float | None = Field(
        description="calibrated probability that the clip is fake (its most suspicious person)"
    )
    threshold: float = Field(description="p_fake at or above this is called fake (least expected cost)")
    costs: Costs
    reason: str | None = Field(None, description="why the verdict is inconclusive")
    reason_code: Literal["unreadable", "no_face", "too_few_faces", "too_close"] | None = None
    tracks: list[TrackOut] = []
    timeline: list[FrameScoreOut] = []
    frames_sampled: int = 0
    frames_with_face: int = 0
    duration_s: float | None = Field(None, description="the video's length by its headers (null for a picture)")
    decoded_s: float | None = Field(None, description="how much of the video decoded (less than duration_s: cut short)")
    note: str | None = Field(None, description="a remark beside any verdict (a clip that decoded only in part)")
    timings: dict[str, float] = Field(
        {}, description="seconds per stage: decode, detect, crop, model, aggregate, total"
    )
    model: dict = Field({}, description="which model judged: name, run, input size, aggregation")
    regions: dict | None = Field(
        None,
        description="share of the explained faces' evidence in each face region "
        "(eyes, nose, mouth, forehead, cheeks, jaw, outside): per face "
        "and per person",
    )


class HeatmapOut(BaseModel):
    """One explanation of one face."""

    frame_index: int
    time_s: float
    track_id: int
    p_fake: float | None
    method: str
    faithfulness: float | None = Field(description="deletion test: above 0, the map shows what the model uses")
    url: str = Field(description="the heatmap blended over the face, PNG")
    regions: dict[str, float] | None = Field(None, description="the map's share in each face region")


class Links(BaseModel):
    self: str
    page: str | None = None


class JobCreated(BaseModel):
    """A job accepted: poll ``links.self`` (or add ``?wait=30``) for its result."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    filename: str
    links: Links


class JobOut(BaseModel):
    """A job's state, and its result once done."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    stage: str = Field(
        description="what it is doing: queued, decode, detect, crop, model, aggregate, explain, done, failed"
    )
    progress: float = Field(ge=0, le=1)
    filename: str
    created_at: float = Field(description="Unix time")
    finished_at: float | None = None
    expires_at: float | None = Field(None, description="Unix time after which the result is forgotten")
    error: str | None = Field(None, description="why the job failed")
    result: PredictionOut | None = None
    heatmaps: list[HeatmapOut] = []
    links: Links


class Health(BaseModel):
    """The server is up; which model it serves and how busy it is."""

    status: Literal["ok"]
    version: str
    model: str
    queued: int
    running: int
    workers: int
    queue_size: int


class ErrorOut(BaseModel):
    """An error: one line saying what was wrong and what to do."""

    detail: str
