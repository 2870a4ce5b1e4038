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
@pytest.mark.parametrize("scale_factor, frame", [
    (2, (17, 29)),  # every patch gathered pixel by pixel
    (2, (9, 11)),  # the widest (12 pixels) holds more than the frame: read off the pooled map
    (3, (17, 29)),  # widths 3, 9, 27: a map of 9x9 windows, not a power of two
])  # fmt: skip
def test_retina_matches_a_naive_crop_and_pool_on_colour_frames(pool, scale_factor, frame):
    """An independent reference: zero-pad each frame, slice each scale's square around the centre
    pixel, cut it into cells and reduce each (mean or max) -- per sample and per scale, in loops."""
    torch.manual_seed(1)
    retina = Retina(patch_size=3, num_scales=3, scale_factor=scale_factor, pool=pool)
    h, w = frame
    imgs = torch.rand(6, 3, h, w)  # several channels, a frame neither square nor even
    locs = torch.rand(6, 2) * 2.4 - 1.2  # some outside the square (clamped)
    rows, cols = retina.centres(locs, h, w)
    pad = max(retina.sizes)
    padded = torch.nn.functional.pad(imgs, (pad, pad, pad, pad))
    for frames, scale in ((imgs, 1.0), ((imgs * 255).round().to(torch.uint8), 1 / 255)):
        out = retina(frames, locs)
        source = padded if scale == 1.0 else (padded * 255).round() / 255
        for i in range(6):
            for s, size in enumerate(retina.sizes):
                top, left = rows[i] - size // 2 + pad, cols[i] - size // 2 + pad
                crop = source[i, :, top : top + size, left : left + size]
                k = size // 3
                cells = crop.reshape(3, 3, k, 3, k)  # (channel, cell row, row in cell, cell col, col)
                expected = cells.mean((2, 4)) if pool == "avg" else cells.amax((2, 4))
                torch.testing.assert_close(out[i, s], expected)


def test_the_max_map_reads_a_patch_as_the_gathered_pixels_do_and_leaves_gradients_alone():
    """The two ways to read a max-pooled patch (the map for Atari's 256 pixels on 210x160): the same
    cells, bitwise, at corners, edges and inside, for a scale factor that is not a power of two. A
    frame that needs a gradient (saliency, attacks) is gathered, so a tie's gradient still goes to
    one pixel, as max_pool2d gives it."""
    torch.manual_seed(2)
    retina = Retina(patch_size=4, num_scales=3, scale_factor=3, pool="max")  # widths 4, 12, 36
    row, col = torch.tensor([0, 5, 13, 20]), torch.tensor([0, 30, 2, 17])
    frames = torch.randint(0, 4, (4, 2, 21, 31), dtype=torch.uint8)  # few values: many ties
    for images, scale in ((frames, 1 / 255), (frames.float() - 1.5, 1.0)):
        for size, f in ((12, 3), (36, 9)):
            gathered = retina._gathered(images, row, col, size, f, scale)
            assert torch.equal(gathered, retina._from_map(images, row, col, size, f, scale))
    locations = torch.stack([col / 15 - 1, row / 10 - 1], 1)
    assert torch.equal(retina(frames, locations)[:, 2], retina._from_map(frames, row, col, 36, 9, 1 / 255))
    pixels = (frames.float() / 3).requires_grad_(True)
    weights = torch.randn(4, 3, 2, 4, 4)
    (grad,) = torch.autograd.grad((retina(pixels, locations) * weights).sum(), pixels)
    expected = torch.zeros_like(pixels)
    for s, size in enumerate(retina.sizes):  # max_pool2d's gradient: one pixel per cell
        reference = pixels.detach().requires_grad_(True)
        cells = retina._gathered(reference, row, col, size, size // 4, 1.0)
        expected += torch.autograd.grad((cells * weights[:, s]).sum(), reference)[0]
    torch.testing.assert_close(grad, expected)
    assert (grad != 0).sum() <= 4 * 2 * 3 * 16  # no more pixels than cells: no tie was split
