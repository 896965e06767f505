"""The analytic image denoisers (core.analytic_denoisers): oracles and equivalences, exact to float64 precision."""

import pytest
import torch

from diffusion.core.analytic_denoisers import (ClassConditional, EmpiricalDenoiser, GaussianDenoiser, PatchDenoiser,
                                              alpha_bar_at)
from diffusion.core.edm import fractional_timestep
from diffusion.core.oracles import GaussianMixture
from diffusion.core.schedules import make_schedule

SCHEDULE = make_schedule("linear", 1000)
AB = SCHEDULE.alpha_bar


def _images(n: int, size: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def _noised(x0: torch.Tensor, t: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ab = AB[t].double()
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps, torch.full((len(x0),), t)


def test_alpha_bar_at_integer_and_fractional_timesteps():
    t = torch.tensor([0, 10, 999])
    assert torch.allclose(alpha_bar_at(AB, t), AB[t].double(), rtol=1e-6)
    sigma = torch.tensor([0.05, 1.0, 30.0], dtype=torch.float64)     # round trip through the edm inverse
    ab = alpha_bar_at(AB, fractional_timestep(sigma, SCHEDULE))
    assert torch.allclose(((1 - ab) / ab).sqrt(), sigma, rtol=1e-5)   # float32 schedule values


def test_empirical_denoiser_returns_the_nearest_training_image_at_small_t():
    train = _images(20)
    x_t, t = _noised(train[[3, 7, 11]] + 0.05 * _images(3, seed=5), 0)     # near images 3, 7, 11, at t = 1
    out = EmpiricalDenoiser(train, AB)(x_t, t)
    assert torch.allclose(out, train[[3, 7, 11]], atol=1e-9)


def test_empirical_denoiser_is_the_training_mean_at_pure_noise():
    train = _images(20)
    x_t = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    out = EmpiricalDenoiser(train, torch.tensor([1e-12]))(x_t, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(out, train.mean(0).expand_as(out), atol=1e-5)   # weights 1 + O(sqrt(ab))


def test_gaussian_denoiser_equals_the_exact_posterior_mean_on_gaussian_data():
    D, g = 36, torch.Generator().manual_seed(2)
    A = torch.randn(D, D, generator=g, dtype=torch.float64)
    cov, mean = A @ A.T / D + 0.05 * torch.eye(D, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)
    oracle = GaussianMixture(torch.ones(1), mean[None], cov[None])
    gaussian = GaussianDenoiser.of_covariance(mean, cov, AB, (1, 6, 6))
    for t in (0, 50, 400, 999):
        x_t = torch.randn(8, D, generator=g, dtype=torch.float64)
        want = oracle.posterior_mean(x_t, torch.full((8,), float(AB[t])))
        got = gaussian(x_t.reshape(8, 1, 6, 6).float(), torch.full((8,), t)).reshape(8, D)
        assert torch.allclose(got, want, atol=2e-5), t


def test_gaussian_of_images_uses_their_mean_and_covariance():
    train = _images(50)
    gaussian = GaussianDenoiser.of_images(train, AB)
    flat = train.reshape(50, -1)
    assert torch.allclose(gaussian.mu, flat.mean(0))
    assert torch.allclose(gaussian.U @ torch.diag(gaussian.lam) @ gaussian.U.T, torch.cov(flat.T, correction=0),
                          atol=1e-12)


@pytest.mark.parametrize("t", [0, 200, 999])
def test_gaussian_of_fewer_images_than_pixels_equals_the_full_eigendecomposition(t):
    """N = 10 < D = 36: the Gram-matrix route keeps the rank-9 range of C and gives the posterior mean of the D x D
    eigendecomposition (whose other eigenvalues are 0 up to rounding, clipped)."""
    train = _images(10)
    flat = train.reshape(10, -1)
    low_rank = GaussianDenoiser.of_images(train, AB)
    full = GaussianDenoiser.of_covariance(flat.mean(0), torch.cov(flat.T, correction=0), AB, (1, 6, 6))
    assert low_rank.U.shape == (36, 9)
    assert torch.allclose(low_rank.U.T @ low_rank.U, torch.eye(9, dtype=torch.float64), atol=1e-12)
    x_t, ts = _noised(_images(4, seed=3), t)
    assert torch.allclose(low_rank(x_t, ts), full(x_t, ts), atol=1e-10)


@pytest.mark.parametrize("t", [0, 100, 500])
def test_local_patch_machine_with_a_full_image_patch_is_the_empirical_denoiser(t):
    train = _images(12)
    x_t, ts = _noised(_images(3, seed=9), t)
    local = PatchDenoiser(train, AB, patch_size=6, equivariant=False, padding="circular")(x_t, ts)
    assert torch.allclose(local, EmpiricalDenoiser(train, AB)(x_t, ts), atol=1e-10)


@pytest.mark.parametrize("t", [0, 100, 500])
def test_equivariant_machine_with_a_full_image_patch_is_the_empirical_denoiser_of_all_shifts(t):
    train = _images(5)
    shifts = torch.cat([train.roll((a, b), dims=(2, 3)) for a in range(6) for b in range(6)])
    x_t, ts = _noised(_images(3, seed=9), t)
    els = PatchDenoiser(train, AB, patch_size=6, padding="circular")(x_t, ts)
    assert torch.allclose(els, EmpiricalDenoiser(shifts, AB)(x_t, ts), atol=1e-10)


def test_equivariant_machine_commutes_with_circular_shifts():
    train = _images(8)
    els = PatchDenoiser(train, AB, patch_size=3, padding="circular")
    x_t, ts = _noised(_images(2, seed=4), 200)
    shifted = els(x_t.roll((1, 2), dims=(2, 3)), ts)
    assert torch.allclose(shifted, els(x_t, ts).roll((1, 2), dims=(2, 3)), atol=1e-12)


@pytest.mark.parametrize("t", [0, 300])
def test_boundary_broken_machine_with_a_patch_twice_the_image_is_the_empirical_denoiser(t):
    """Zero padding and an 11x11 patch on 6x6 images: every patch holds the whole image, and no two pixels' patches
    meet the edges alike, so each pixel pools only its own position's patches: the empirical denoiser."""
    train = _images(12)
    x_t, ts = _noised(_images(3, seed=9), t)
    els = PatchDenoiser(train, AB, patch_size=11)(x_t, ts)
    assert torch.allclose(els, EmpiricalDenoiser(train, AB)(x_t, ts), atol=1e-10)


def test_boundary_broken_machine_pools_interior_patches():
    """Zero padding, 3x3 patches: an interior pixel whose patch copies an interior training patch found elsewhere is
    denoised to that patch's centre at small t (pooled across positions), unlike the local-only machine."""
    train = _images(1)
    x0 = train.roll((1, 1), dims=(2, 3)).clone()                  # interior pixel (3, 3) sees train's pixel (2, 2)
    x_t, ts = _noised(x0, 0)
    els = PatchDenoiser(train, AB, patch_size=3)(x_t, ts)
    local = PatchDenoiser(train, AB, patch_size=3, equivariant=False)(x_t, ts)
    assert torch.allclose(els[0, 0, 3, 3], train[0, 0, 2, 2], atol=1e-6)
    assert torch.allclose(local[0, 0, 3, 3], train[0, 0, 3, 3], atol=1e-6)    # one training image: its own pixel


def test_max_patches_caps_every_group():
    els = PatchDenoiser(_images(20), AB, patch_size=3, padding="circular", max_patches=50)
    assert len(els.p_0) <= 50 and len(els.groups) == 1


def test_small_patches_make_new_images():
    """A 3x3 machine is not the empirical denoiser: its output at small t is not one training image."""
    train = _images(8)
    x_t, ts = _noised(_images(2, seed=4), 0)
    els, emp = PatchDenoiser(train, AB, patch_size=3)(x_t, ts), EmpiricalDenoiser(train, AB)(x_t, ts)
    assert (els - emp).abs().max() > 0.1


@pytest.mark.parametrize("make", [
    lambda x: EmpiricalDenoiser(x, AB), lambda x: GaussianDenoiser.of_images(x, AB),
    lambda x: PatchDenoiser(x, AB, 3), lambda x: PatchDenoiser(x, AB, 3, equivariant=False),
    lambda x: PatchDenoiser(x, AB, 4, padding="circular", max_patches=100)])
def test_shapes_dtype_and_fractional_timesteps(make):
    net = make(_images(10).float().expand(-1, 2, -1, -1).contiguous())      # two channels
    x_t = torch.randn(3, 2, 6, 6)
    out = net(x_t, torch.tensor([0.5, 10.25, 998.9]))
    assert out.shape == x_t.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="allowed: \\(B, 2, 6, 6\\)"):
        net(torch.randn(3, 1, 6, 6), torch.zeros(3))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="patch_size=7 is out of range; allowed: integers from 1 to 6"):
        PatchDenoiser(_images(4), AB, 7, padding="circular")
    with pytest.raises(ValueError, match="patch_size=12 is out of range; allowed: integers from 1 to 11"):
        PatchDenoiser(_images(4), AB, 12)
    with pytest.raises(ValueError, match="unknown padding 'reflect'; allowed: zero, circular"):
        PatchDenoiser(_images(4), AB, 3, padding="reflect")
    with pytest.raises(ValueError, match="max_patches=0 is out of range"):
        PatchDenoiser(_images(4), AB, 3, max_patches=0)


def _labelled(n: int = 30, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """n images, labels cycling 0, 1, ..., classes - 1 (interleaved, as no dataset is sorted)."""
    return _images(n, seed=7), torch.arange(n) % classes


@pytest.mark.parametrize("make, order_free", [
    (lambda x: EmpiricalDenoiser(x, AB), True), (lambda x: GaussianDenoiser.of_images(x, AB), True),
    (lambda x: PatchDenoiser(x, AB, 3), True), (lambda x: PatchDenoiser(x, AB, 3, max_patches=40), False)])
def test_class_conditional_is_each_class_s_own_denoiser_and_the_whole_set_s_for_the_null_label(make, order_free):
    """Label c: exactly the denoiser of class c's images (in their order); the null label and y = None: the whole
    set's, built on the images sorted by class (the same denoiser up to rounding, unless max_patches draws)."""
    images, labels = _labelled()
    cond = ClassConditional(make, images, labels, 3)
    x_t, _ = _noised(_images(6, seed=11), 300)
    t = torch.tensor([0, 50, 300, 300, 700, 999])
    y = torch.tensor([2, 0, 3, 1, 2, 0])                       # mixed labels, 3 = null
    out = cond(x_t, t, y)
    for c in range(3):
        rows = y == c
        assert torch.equal(out[rows], make(images[labels == c])(x_t[rows], t[rows])), c
    whole = make(images[labels.argsort(stable=True)])
    assert torch.equal(out[y == 3], whole(x_t[y == 3], t[y == 3])) and torch.equal(cond(x_t, t), whole(x_t, t))
    assert torch.allclose(whole(x_t, t), make(images)(x_t, t), atol=1e-12) == order_free and cond.null_label == 3


def test_class_conditional_empirical_denoiser_returns_the_nearest_image_of_the_asked_class():
    """At t = 1 near a class-0 image, asking for class 1 gives class 1's nearest image, not the closer class-0 one."""
    images, labels = _labelled()
    cond = ClassConditional(lambda x: EmpiricalDenoiser(x, AB), images, labels, 3)
    x0 = images[[0, 0]] + 0.02 * _images(2, seed=5)           # near image 0 (class 0)
    x_t, t = _noised(x0, 0)
    out = cond(x_t, t, torch.tensor([0, 1]))
    class_1 = images[labels == 1]
    nearest_1 = class_1[torch.cdist(x_t[1].reshape(1, -1), class_1.reshape(len(class_1), -1)).argmin()]
    assert torch.allclose(out[0], images[0], atol=1e-9) and torch.allclose(out[1], nearest_1, atol=1e-9)


def test_class_conditional_gaussian_denoiser_is_the_closed_form_of_each_class():
    """Label c: mu_c + sqrt(ab) C_c (ab C_c + (1 - ab) I)^-1 (x_t - sqrt(ab) mu_c), the posterior mean under
    N(mu_c, C_c) of class c's images (mean and 1/N covariance), solved directly in float64."""
    images, labels = _labelled(120)
    cond = ClassConditional(lambda x: GaussianDenoiser.of_images(x, AB), images, labels, 3)
    x_t = torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y, t = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 0, 100, 100, 900, 900])
    out = cond(x_t, t, y).reshape(6, -1)
    for i in range(6):
        flat, ab = images[labels == y[i]].reshape(-1, 36), AB[t[i]].double()
        mu, C = flat.mean(0), torch.cov(flat.T, correction=0)
        gain = ab.sqrt() * C @ torch.linalg.inv(ab * C + (1 - ab) * torch.eye(36, dtype=torch.float64))
        assert torch.allclose(out[i], mu + gain @ (x_t[i].flatten() - ab.sqrt() * mu), atol=1e-10), i


def test_class_conditional_refuses_classes_without_images_and_bad_labels():
    images, labels = _labelled(6, classes=2)
    cond = ClassConditional(lambda x: EmpiricalDenoiser(x, AB), images, labels, 3)     # class 2: no images
    with pytest.raises(ValueError, match="class 2 has no training images; allowed labels: 0, 1 and 3 \\(none\\)"):
        cond(torch.zeros(1, 1, 6, 6, dtype=torch.float64), torch.zeros(1), torch.tensor([2]))
    with pytest.raises(ValueError, match="do not fit 6 images of 2 classes"):
        ClassConditional(lambda x: EmpiricalDenoiser(x, AB), images, labels + 1, 2)
