"""Stage 1: read videos and sample the frames the rest of the pipeline looks at."""

from unmask.video.probe import VideoInfo, probe_video
from unmask.video.reader import VIDEO_SUFFIXES, Frame
from unmask.video.sampling import SAMPLERS, FrameSampler, sample_frames

__all__ = ["Frame", "VideoInfo", "probe_video", "VIDEO_SUFFIXES", "SAMPLERS", "FrameSampler", "sample_frames"]
