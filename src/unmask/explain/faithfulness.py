"""Does a heatmap point at what the model uses? A deletion test.

The most highlighted pixels (10%, 20% and 30% of the face) are replaced by a blurred copy of the
image, and so, in turn, are as many random pixels. A faithful map makes the evidence for fake
fall further than random deletion does: the score is the mean extra fall of the fake log-odds
(logit of fake minus logit of real; unlike ``p_fake`` it does not saturate on confident faces).
Above 0: better than random; near 0: the map could have been random.

A flat map (every pixel equal: Grad-CAM finds no positive evidence for fake anywhere, as on many
real faces) points nowhere, so there is nothing to test: its score is NaN ("n/a"), not a number.
Ranking a flat map's pixels would pick the first rows of the image by index order, and that
band's deletion was what made flat maps on true negatives score highest. For a face called real,
a map of the evidence for *fake* shows the little evidence there is; its faithfulness says
whether that little evidence lies where the map points, not why the face was called real.

Why not pytorch-grad-cam's ROAD (``ROADMostRelevantFirst``): it scores the change of the class
*score* at each percentile with no random-deletion baseline, so it cannot say "no better than
random", which is the question the report asks of each map; and it imputes removed pixels from
their neighbours (a noisy linear solve per image per percentile), which costs about as much as
this test's few fractions with their random baseline: no saving to set against the lost baseline.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

FRACTIONS = (0.1, 0.2, 0.3)


@torch.no_grad()
def deletion_faithfulness(
    model, x: torch.Tensor, heatmaps: np.ndarray, *, fractions=FRACTIONS, seed: int = 0
) -> np.ndarray:
    """Faithfulness of each heatmap.

    Args:
        x: ``(N, 3, H, W)`` preprocessed inputs; heatmaps: ``(N, H, W)`` in [0, 1].

    Returns:
        ``(N,)`` mean over ``fractions`` of (fall of the fake log-odds when deleting the top
        pixels) minus (its fall when deleting as many random pixels); NaN for a flat map.
    """
    model.eval()
    n, _, h, w = x.shape
    blurred = TF.gaussian_blur(x, kernel_size=[21, 21], sigma=[7.0, 7.0])
    rng = np.random.default_rng(seed)

    def log_odds(inputs):
        logits = model(inputs).float()
        return logits[:, 1] - logits[:, 0]

    base = log_odds(x)
    scores = np.zeros(n, dtype=np.float64)
    for fraction in fractions:
        k = max(1, int(round(fraction * h * w)))
        masks = []
        for i in range(n):
            top = np.argsort(-heatmaps[i].ravel(), kind="stable")[:k]
            rand = rng.choice(h * w, size=k, replace=False)
            for chosen in (top, rand):
                m = np.zeros(h * w, dtype=np.float32)
                m[chosen] = 1.0
                masks.append(m.reshape(h, w))
        mask = torch.from_numpy(np.stack(masks))[:, None].to(x.device)
        both = x.repeat_interleave(2, dim=0)
        deleted = both * (1 - mask) + blurred.repeat_interleave(2, dim=0) * mask
        odds = log_odds(deleted).view(n, 2)
        scores += ((base - odds[:, 0]) - (base - odds[:, 1])).cpu().numpy()
    flat = np.ptp(heatmaps.reshape(n, -1), axis=1) <= 0
    scores[flat] = np.nan
    return (scores / len(fractions)).astype(np.float32)
