"""Grad-CAM highlights what drives a classifier; heads on PCA-reduced features fold correctly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from NACResponseLib.deep.gradcam import grad_cam, linear_head, resnet_gradcam  # noqa: E402

SIZE, SQUARE = 32, 6


def toy_batch(rng, n):
    """Class 1 iff a bright square is present; a high-contrast checkerboard distractor is always there."""
    x = rng.normal(0, 0.1, size=(n, 1, SIZE, SIZE)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    boxes = []
    checker = np.indices((SQUARE, SQUARE)).sum(axis=0) % 2 * 2.0 - 1.0
    for i in range(n):
        while True:
            (r1, c1), (r2, c2) = rng.integers(0, SIZE - SQUARE, size=(2, 2))
            if abs(r1 - r2) > SQUARE or abs(c1 - c2) > SQUARE:
                break
        x[i, 0, r2:r2 + SQUARE, c2:c2 + SQUARE] += checker
        if y[i]:
            x[i, 0, r1:r1 + SQUARE, c1:c1 + SQUARE] += 1.0
        boxes.append(((r1, c1), (r2, c2)))
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32)), boxes


def test_gradcam_highlights_the_region_that_drives_a_toy_classifier():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    features = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
    fc = torch.nn.Linear(8, 1)

    def head(a):
        return fc(a.mean(dim=(2, 3)))[:, 0]

    opt = torch.optim.Adam([*features.parameters(), *fc.parameters()], lr=0.02)
    for _ in range(80):
        x, y, _ = toy_batch(rng, 32)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(features(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y, boxes = toy_batch(np.random.default_rng(1), 64)
    with torch.no_grad():
        accuracy = float(((head(features(x)) > 0).float() == y).float().mean())
    assert accuracy > 0.9  # the toy classifier learnt the task
    positives = np.flatnonzero(y.numpy() == 1)
    maps = grad_cam(features, head, x[positives])
    assert maps.shape == (len(positives), SIZE, SIZE) and maps.min() >= 0 and maps.max() <= 1
    hits, contrast = 0, []
    for cam, i in zip(maps, positives):
        (r1, c1), (r2, c2) = boxes[i]
        target = cam[r1:r1 + SQUARE, c1:c1 + SQUARE].mean()
        distractor = cam[r2:r2 + SQUARE, c2:c2 + SQUARE].mean()
        contrast.append(target > distractor)
        pr, pc = np.unravel_index(np.argmax(cam), cam.shape)
        hits += (r1 - 2 <= pr < r1 + SQUARE + 2) and (c1 - 2 <= pc < c1 + SQUARE + 2)
    assert np.mean(contrast) >= 0.9
    assert hits / len(positives) >= 0.8


def test_linear_head_on_pca_components_equals_the_two_step_score():
    from sklearn.decomposition import PCA

    from NACResponseLib.deep.pca import DeepPCA

    rng = np.random.default_rng(0)
    train = rng.normal(size=(20, 50))
    pca = DeepPCA(n_components=5).fit(train)
    coef, intercept = rng.normal(size=5), 0.3
    f = rng.normal(size=(4, 50))
    expected = PCA(n_components=5, svd_solver="full").fit(train).transform(f) @ coef + intercept
    got = linear_head(coef, intercept, pca=pca)(torch.from_numpy(f).float())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_resnet_gradcam_shapes_and_range():
    from NACResponseLib.deep.resnet import ResNet50

    torch.manual_seed(0)
    model = ResNet50().eval()
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    maps, scores = resnet_gradcam(model, x)
    assert maps.shape == (1, 64, 64) and scores.shape == (1,)
    assert 0 <= maps.min() and maps.max() <= 1
    with torch.no_grad():  # the default score is the top ImageNet logit
        assert scores[0] == pytest.approx(float(model(torch.from_numpy(x)).max()), rel=1e-4)
