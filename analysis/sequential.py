"""The sequential Jacobian (Graves 2012, "Supervised Sequence Labelling with Recurrent Neural
Networks", Section 6.2): how sensitive an output at time t is to the input at every earlier time t'.

``S[t, t'] = || d y_t / d x_t' ||`` for t' <= t, with ``y_t`` a chosen scalar of a head at time t
and the norm taken over the input's components. A row that decays quickly backwards means short
memory; a peak far back means the network uses what it saw then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# step(x_t, state) -> (heads, next_state); the model's recurrence, one time step
StepFn = Callable[[torch.Tensor, object], tuple[dict[str, torch.Tensor], object]]


@dataclass
class SequentialJacobian:
    matrix: np.ndarray  # (T, T), lower triangular: S[t, t'] for t' <= t
    head: str

    def memory_span(self, threshold: float = 0.1) -> np.ndarray:
        """Per output time t: how many steps back the sensitivity still reaches ``threshold`` of the
        row's peak (0: only the present input matters)."""
        spans = np.zeros(len(self.matrix), np.int64)
        for t, row in enumerate(self.matrix):
            past = row[: t + 1]
            peak = past.max()
            if peak <= 0:
                continue
            above = np.flatnonzero(past >= threshold * peak)
            spans[t] = t - above.min()
        return spans

    def plot(self, path: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        m = np.where(np.tril(np.ones_like(self.matrix)) > 0, self.matrix, np.nan)
        im = a.imshow(m, cmap="viridis", origin="upper")
        a.set_xlabel("input time t'")
        a.set_ylabel("output time t")
        a.set_title(f"||d {self.head}_t / d x_t'||")
        fig.colorbar(im, ax=a)
        b.plot(self.memory_span(), marker=".")
        b.set_xlabel("output time t")
        b.set_ylabel("steps back above 10% of peak")
        b.set_title("memory span")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def sequential_jacobian(
    step: StepFn, inputs: torch.Tensor, state: object, head: str, component: int | None = None
) -> SequentialJacobian:
    """Unroll ``step`` over ``inputs`` (T, ...) from ``state`` and differentiate each output time.

    ``component`` picks one entry of a vector head (default: its argmax at each time). One backward
    pass per output time through the unrolled graph.
    """
    xs = inputs.detach().clone().requires_grad_(True)
    outputs = []
    with torch.enable_grad():
        for t in range(len(xs)):
            heads, state = step(xs[t : t + 1], state)
            if head not in heads:
                raise ValueError(f"unknown head {head!r}; this model has: {', '.join(heads)}")
            y = heads[head].reshape(-1)
            k = (
                int(y.detach().argmax())
                if component is None and y.numel() > 1
                else (component or 0)
            )
            outputs.append(y[k])
        T = len(xs)
        matrix = np.zeros((T, T))
        for t in range(T):
            # allow_unused: a head read off a detached state (a glimpse agent's default baseline)
            # depends on no input at all; its sensitivity is zero, not an error
            (g,) = torch.autograd.grad(outputs[t], xs, retain_graph=t < T - 1, allow_unused=True)
            if g is None:
                continue
            norms = g.reshape(T, -1).norm(dim=1).detach().cpu().numpy()
            matrix[t, : t + 1] = norms[: t + 1]
    return SequentialJacobian(matrix, head)


def stack_jacobian(model: torch.nn.Module, obs: torch.Tensor, head: str = "value") -> np.ndarray:
    """The degenerate case for a feed-forward agent on a frame stack: ``||d y / d frame_k||`` for
    each of the stacked frames (oldest first), per observation -> (B, stack)."""
    from analysis.saliency import jacobian_saliency

    maps = jacobian_saliency(model, obs, head=head).per_frame  # |grad| per pixel
    return np.sqrt((maps**2).reshape(*maps.shape[:2], -1).sum(-1))
