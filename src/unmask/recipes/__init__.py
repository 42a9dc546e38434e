"""Experiment recipes built from the stages: ``reproduce`` runs the paper's protocol end to end."""
