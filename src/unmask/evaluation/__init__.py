"""Stage 6: judging a trained model: metrics, video-level aggregation, reports."""
