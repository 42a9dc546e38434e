"""One code path for one process and for ``torchrun`` (DistributedDataParallel, gloo or nccl)."""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group when started by ``torchrun``; returns ``(rank, world_size)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(requested: str | None) -> torch.device:
    """The device for this process: ``requested``, else this rank's GPU, else the CPU.

    Under ``torchrun`` each rank takes GPU ``LOCAL_RANK`` whatever ``requested`` names, and makes
    it the current device: otherwise every rank's collectives (nccl) would run on GPU 0.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and (device.index is None or world > 1):
            if device.index not in (None, local):
                logger.warning(
                    "--device %s ignored under torchrun: rank %s uses its own GPU cuda:%d",
                    requested,
                    os.environ.get("RANK", "?"),
                    local,
                )
            device = torch.device("cuda", local)
    elif torch.cuda.is_available():
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def gather(obj):
    """Every rank's ``obj``, in rank order (a one-item list without a process group)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj):
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics).

    DDP averages gradients, but each rank's last forward pass updates its own running statistics;
    validating with them would score a slightly different model on each rank from the one rank 0
    saves.
    """
    if dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if dist.is_initialized():
        if dist.get_backend() == "nccl":  # name this rank's GPU, or NCCL guesses (and may hang)
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
