"""Heatmaps of what makes a face look fake, for any backbone in the registry.

The paper's four methods, SmoothGrad saliency (captum; 20 samples, noise 0.2 of the input range;
drawn as its authors draw it: absolute value, capped, smoothed, see :func:`smoothgrad_display`),
Grad-CAM, Grad-CAM++ and (Faster-)Score-CAM, plus the other CAMs of pytorch-grad-cam, always on
the backbone's own ``cam_layer`` and for the fake class. Inputs must come from the model's one
preprocessing (:func:`unmask.models.build_transform`): the paper explained inputs scaled unlike
its training inputs.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from unmask.errors import unknown_name
from unmask.decision.scoring import FAKE


class FasterScoreCAM(BaseCAM):
    """Score-CAM over the ``max_channels`` activation maps of highest variance only.

    Wang et al.'s "Faster Score-CAM", as the paper used it (max_N = 10): each kept activation map,
    upsampled and scaled to [0, 1], masks the input, and the fake probability of the masked input
    is that map's weight. One forward pass per kept channel instead of one per channel (2048 for
    Xception).
    """

    def __init__(self, model, target_layers, max_channels: int = 10, **kwargs):
        super().__init__(model, target_layers, uses_gradients=False, **kwargs)
        self.max_channels = max_channels

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        n, c = activations.shape[:2]
        keep = min(self.max_channels, c)
        weights = np.zeros((n, c), dtype=np.float32)
        with torch.no_grad():
            for i in range(n):
                maps = activations[i].reshape(c, -1)
                top = np.argsort(-maps.var(axis=1))[:keep]
                upsampled = torch.nn.functional.interpolate(
                    torch.from_numpy(activations[i : i + 1, top]).to(input_tensor.device),
                    size=input_tensor.shape[-2:],
                    mode="bilinear",
                    align_corners=False,
                )[0]
                flat = upsampled.reshape(keep, -1)
                low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
                masks = (upsampled - low) / (high - low).clamp_min(1e-8)
                scores = torch.softmax(self.model(input_tensor[i : i + 1] * masks[:, None]).float(), 1)
                weights[i, top] = scores[:, FAKE].cpu().numpy()
        return weights


_CAMS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "scorecam": FasterScoreCAM,
    "hirescam": HiResCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}
EXPLAINERS = ("smoothgrad", *_CAMS)
PAPER_METHODS = ("smoothgrad", "gradcam", "gradcam++", "scorecam")
SMOOTHING = 0.04  # Gaussian sigma of the SmoothGrad display map, as a share of its side


def check_methods(methods) -> tuple[str, ...]:
    """Return ``methods`` as a tuple, or raise for an unknown one (listing the valid names)."""
    for name in methods:
        if name not in EXPLAINERS:
            raise unknown_name("explanation method", name, EXPLAINERS)
    return tuple(methods)


def explain_batch(
    model, x: torch.Tensor, method: str, *, smoothgrad_samples: int = 20, noise: float = 0.2
) -> np.ndarray:
    """Heatmaps of ``method`` for the fake class.

    Args:
        model: a :class:`unmask.models.DeepfakeClassifier`, in eval mode.
        x: ``(N, 3, H, W) float32`` preprocessed inputs.

    Returns:
        ``(N, H, W) float32`` maps in [0, 1], 1 where the evidence for "fake" is strongest.
    """
    check_methods([method])
    model.eval()
    if method == "smoothgrad":
        from captum.attr import NoiseTunnel, Saliency

        spread = float(noise * (x.max() - x.min()))
        tunnel = NoiseTunnel(Saliency(model))
        with torch.random.fork_rng(devices=[]):  # the same noise every time: reproducible maps
            torch.manual_seed(0)
            maps = tunnel.attribute(
                x.clone().requires_grad_(True),
                nt_type="smoothgrad",
                nt_samples=smoothgrad_samples,
                nt_samples_batch_size=smoothgrad_samples,
                stdevs=spread,
                target=FAKE,
            )
        maps = smoothgrad_display(maps.detach())
    else:
        with _CAMS[method](model=model, target_layers=[model.cam_layer]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(FAKE)] * len(x))
    return _normalise(np.asarray(maps, dtype=np.float32))


def smoothgrad_display(gradients: torch.Tensor) -> np.ndarray:
    """The map SmoothGrad's authors draw, from averaged gradients ``(N, 3, H, W)``: ``(N, H, W)``.

    As Smilkov et al. (2017) visualise it: the absolute value, summed over the colour channels,
    capped at its 99th percentile (a few extreme pixels would otherwise leave the rest dark);
    then smoothed with a Gaussian (sigma :data:`SMOOTHING` of the side, 9 px at 224) so that the
    checkerboard of strided convolutions' gradients (a few pixels' period) does not hide where
    the evidence lies.
    """
    maps = gradients.abs().sum(dim=1)
    cap = torch.quantile(maps.reshape(len(maps), -1).float(), 0.99, dim=1)[:, None, None]
    maps = torch.minimum(maps, cap)
    sigma = max(SMOOTHING * maps.shape[-1], 0.5)
    kernel = 2 * int(round(3 * sigma)) + 1
    return TF.gaussian_blur(maps[:, None], kernel_size=[kernel, kernel], sigma=[sigma, sigma])[:, 0].cpu().numpy()


def _normalise(maps: np.ndarray) -> np.ndarray:
    low = maps.reshape(len(maps), -1).min(1)[:, None, None]
    high = maps.reshape(len(maps), -1).max(1)[:, None, None]
    return np.where(high > low, (maps - low) / np.maximum(high - low, 1e-12), 0.0).astype(np.float32)
