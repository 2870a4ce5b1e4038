"""RAdam at the speed of fused Adam.

PQN's optimizer is RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and
Beyond", Algorithm 2; purejaxql uses ``optax.radam``). PyTorch has a fused kernel for Adam on CPU
and CUDA but none for RAdam, whose ``foreach`` version walks the 3.3M weights of the dueling
network a dozen times per step: 12.9 ms of a minibatch update here, where fused Adam takes 4.3 ms
(measured here on 2 cores, median of 30 steps; the optimizer is then 4-6% of an update in
docs/benchmarks.md). Once its variance is tractable (rho_t > 5, from the sixth step with
beta2 = 0.999), an RAdam step *is* an Adam step with a rescaled learning rate and epsilon:

    RAdam:  p -= lr * r_t * m_t / (1 - b1^t) * sqrt(1 - b2^t) / (sqrt(v_t) + eps)
    Adam:   p -= lr' * m_t / (1 - b1^t) / (sqrt(v_t) / sqrt(1 - b2^t) + eps')

are equal for ``lr' = lr * r_t`` and ``eps' = eps / sqrt(1 - b2^t)``. So the steps before run
RAdam's own code and the steps after run the fused Adam kernel on the same state. The state and
its saved form are RAdam's, so a checkpoint moves between the two classes unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.adam import adam
from torch.optim.radam import radam


class FusedRAdam(torch.optim.RAdam):
    """``torch.optim.RAdam`` whose steps after the first few run fused Adam's kernel (see the
    module's docstring). Without weight decay; on a device the fused kernel supports (CPU, CUDA)."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:  # fmt: skip
        super().__init__(params, lr=lr, betas=betas, eps=eps, foreach=True)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if closure is not None:
            raise ValueError("FusedRAdam.step takes no closure")
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            exp_avgs: list[torch.Tensor] = []
            exp_avg_sqs: list[torch.Tensor] = []
            steps: list[torch.Tensor] = []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, steps)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            counts = {float(s) for s in steps}
            t = counts.pop() + 1 if len(counts) == 1 else 0.0  # this step's number, if shared
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t) if t else 0.0
            if rho_t <= 5:  # the first steps (or parameters at different steps): RAdam's own code
                radam(params, grads, exp_avgs, exp_avg_sqs, steps, beta1=beta1, beta2=beta2,
                      lr=group["lr"], weight_decay=0.0, eps=group["eps"], maximize=False,
                      foreach=True, capturable=False, differentiable=False,
                      decoupled_weight_decay=False, has_complex=False)  # fmt: skip
                continue
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True, amsgrad=False,
                 beta1=beta1, beta2=beta2, lr=float(group["lr"]) * rect, weight_decay=0.0,
                 eps=group["eps"] / math.sqrt(1 - beta2**t), maximize=False)  # fmt: skip
        return None
