"""The retina on hand-made images; the sequential Jacobian against analytic powers."""

import numpy as np
import pytest
import torch

from agents.glimpse import Retina
from analysis.sequential import sequential_jacobian, stack_jacobian


def test_known_pixel_lands_in_the_right_cell_of_each_scale():
    retina = Retina(patch_size=4, num_scales=3)  # widths 4, 8, 16
    img = torch.zeros(1, 1, 33, 33)
    img[0, 0, 16, 16] = 1.0  # the centre pixel
    img[0, 0, 10, 20] = 1.0  # 6 up, 4 right of it
    out = retina(img, torch.zeros(1, 2))[0, :, 0]
    assert out.shape == (3, 4, 4)
    # scale 0: rows/cols 14..17 around the centre; the centre is cell (2, 2)
    assert out[0, 2, 2] == 1.0 and out[0].sum() == 1.0
    # scale 1: rows/cols 12..19 pooled 2x2; centre -> cell (2, 2) with 1/4; (10, 20) is outside
    assert out[1, 2, 2] == pytest.approx(0.25) and out[1].sum() == pytest.approx(0.25)
    # scale 2: rows/cols 8..23 pooled 4x4; centre -> (2, 2), (10, 20) -> row (10-8)//4=0, col (20-8)//4=3
    assert out[2, 2, 2] == pytest.approx(1 / 16) and out[2, 0, 3] == pytest.approx(1 / 16)
    assert out[2].sum() == pytest.approx(2 / 16)


def test_max_pooling_keeps_a_small_object_at_full_contrast_in_the_periphery():
    """Breakout's case: a one-pixel ball far from the fovea. Averaged over a 4x4 cell it keeps
    1/16 of its contrast; max-pooled, all of it, in the same cell."""
    img = torch.zeros(1, 1, 33, 33)
    img[0, 0, 10, 20] = 0.8
    avg = Retina(4, 3)(img, torch.zeros(1, 2))[0, 2, 0]
    top = Retina(4, 3, pool="max")(img, torch.zeros(1, 2))[0, 2, 0]
    assert avg[0, 3] == pytest.approx(0.8 / 16) and top[0, 3] == pytest.approx(0.8)
    assert top.sum() == pytest.approx(0.8)  # nothing else lit
    with pytest.raises(ValueError, match="unknown retina pooling 'min'; accepted: avg, max"):
        Retina(4, 3, pool="min")


def test_border_padding_and_the_four_corners():
    retina = Retina(patch_size=2, num_scales=2)
    img = torch.arange(1, 26, dtype=torch.float32).reshape(1, 1, 5, 5)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    out = retina(img.expand(4, 1, 5, 5), corners)[
        :, 0, 0
    ]  # the finest scale, 2x2 around each corner
    # a 2-wide patch centred on pixel c covers c-1 and c: the top-left corner sees 3 zeros and pixel 1
    np.testing.assert_array_equal(out[0].numpy(), [[0, 0], [0, 1]])
    np.testing.assert_array_equal(out[1].numpy(), [[0, 0], [4, 5]])  # top-right: (x=1, y=-1)
    np.testing.assert_array_equal(out[2].numpy(), [[0, 16], [0, 21]])  # bottom-left: (x=-1, y=1)
    np.testing.assert_array_equal(out[3].numpy(), [[19, 20], [24, 25]])
    # locations outside the square are clamped onto the border
    clamped = retina(img, torch.tensor([[5.0, -9.0]]))
    np.testing.assert_array_equal(clamped, retina(img, torch.tensor([[1.0, -1.0]])))


def test_retina_is_batched_and_refuses_bad_sizes():
    retina = Retina(3, 2)
    imgs = torch.rand(5, 2, 20, 30)
    locs = torch.rand(5, 2) * 2 - 1
    batched = retina(imgs, locs)
    single = torch.cat([retina(imgs[i : i + 1], locs[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single)
    with pytest.raises(ValueError, match="larger than the 20x30 frame at every scale"):
        Retina(31, 1)(imgs, locs)
    with pytest.raises(ValueError, match="num_scales must be an integer >= 1"):
        Retina(4, 0)
    with pytest.raises(ValueError, match=r"locations must be \(B, 2\)"):
        retina(imgs, torch.zeros(5, 3))


def test_sequential_jacobian_of_a_linear_recurrence_is_powers_of_w():
    torch.manual_seed(0)
    n, d, T = 4, 3, 6
    W = torch.randn(n, n) * 0.5
    U = torch.randn(n, d)
    v = torch.randn(n)

    def step(x, h):
        h = W @ h + U @ x.reshape(-1)
        return {"y": (v @ h).reshape(1)}, h

    xs = torch.randn(T, d)
    sj = sequential_jacobian(step, xs, torch.zeros(n), head="y")
    for t in range(T):
        for tp in range(T):
            expected = (
                (v @ torch.linalg.matrix_power(W, t - tp) @ U).norm().item() if tp <= t else 0.0
            )
            assert sj.matrix[t, tp] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert sj.memory_span()[0] == 0
    with pytest.raises(ValueError, match="unknown head 'q'"):
        sequential_jacobian(step, xs, torch.zeros(n), head="q")


def test_memory_span_by_hand(tmp_path):
    from analysis.sequential import SequentialJacobian

    m = np.array([[1.0, 0, 0], [0.05, 1.0, 0], [0.2, 0.01, 1.0]])
    np.testing.assert_array_equal(SequentialJacobian(m, "y").memory_span(), [0, 0, 2])
    SequentialJacobian(m, "y").plot(str(tmp_path / "sj.png"))
    assert (tmp_path / "sj.png").stat().st_size > 0


def test_stack_jacobian_is_the_degenerate_case():
    from agents.qlearning.networks import DuelingQNetwork

    net = DuelingQNetwork(3)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    norms = stack_jacobian(net, obs, head="value")
    assert norms.shape == (2, 4) and (norms > 0).all()


def test_uint8_frames_read_as_float_over_255():
    torch.manual_seed(0)
    retina = Retina(6, 3)
    frames = torch.randint(0, 256, (5, 1, 24, 24), dtype=torch.uint8)
    locations = torch.rand(5, 2) * 2 - 1
    assert torch.allclose(
        retina(frames, locations), retina(frames.float() / 255, locations), atol=1e-6
    )


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_retina_matches_a_naive_crop_and_pool_on_colour_frames(pool):
    """An independent reference: zero-pad each frame, slice each scale's square around the centre
    pixel, cut it into cells and reduce each (mean or max) -- per sample and per scale, in loops."""
    torch.manual_seed(1)
    retina = Retina(patch_size=3, num_scales=3, scale_factor=2, pool=pool)
    imgs = torch.rand(6, 3, 17, 29)  # several channels, a frame neither square nor even
    locs = torch.rand(6, 2) * 2.4 - 1.2  # some outside the square (clamped)
    rows, cols = retina.centres(locs, 17, 29)
    pad = max(retina.sizes)
    padded = torch.nn.functional.pad(imgs, (pad, pad, pad, pad))
    for i in range(6):
        for s, size in enumerate(retina.sizes):
            top, left = rows[i] - size // 2 + pad, cols[i] - size // 2 + pad
            crop = padded[i, :, top : top + size, left : left + size]
            k = size // 3
            cells = crop.reshape(3, 3, k, 3, k)  # (channel, cell row, row in cell, cell col, col)
            expected = cells.mean((2, 4)) if pool == "avg" else cells.amax((2, 4))
            torch.testing.assert_close(retina(imgs, locs)[i, s], expected)
