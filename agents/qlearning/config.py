"""What the DQN and PQN configs share: the dueling network, epsilon-greedy exploration, the Atari
frames and the device, on top of every trainer's fields (:class:`agents.common.config.TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from agents.common.config import NonNegativeInt, PositiveInt, Probability, TrainConfig
from agents.common.precision import resolve_precision


@dataclass
class QConfig(TrainConfig):
    """A Q-learning experiment on the dueling network; saved as ``config.json`` beside every run."""

    start_e: Probability = 1.0
    """Initial exploration epsilon."""
    end_e: Probability = 0.01
    """Final exploration epsilon."""
    exploration_fraction: Probability = 0.10
    """Fraction of total_steps over which epsilon decays linearly."""
    network: Literal["dueling", "single"] = "dueling"
    """Dueling streams (Wang et al. 2016) or the single-stream network."""
    aggregation: Literal["mean", "max"] = "mean"
    """Dueling aggregation: Eq. 9 (mean) or Eq. 8 (max) of Wang et al. 2016."""
    hidden: NonNegativeInt = 0
    """Units per stream; 0 picks 512 for dueling and 1024 for single (Wang et al.'s matched sizes)."""
    layer_norm: bool = False
    """LayerNorm before every ReLU of the network (PQN's; off in the dueling paper)."""
    stack_num: PositiveInt = 4
    """Frames per observation (Atari); Catch uses 2 so that the ball's direction is visible."""
    repeat_action_probability: Probability = 0.0
    """Sticky actions (0.25 per Machado et al. 2018)."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu' or 'cuda'."""
    channels_last: bool = True
    """channels_last memory format for the convolutions (faster on CPU, measured for the DQN)."""
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    """Arithmetic of the network passes: fp32; bf16 (convolutions and matmuls in bfloat16: on a CPU
    on a bfloat16 copy of the weights, on CUDA under autocast; the weights the optimizer steps, its
    state, LayerNorm, the output layers, targets, loss and checkpoints stay float32); auto, the
    default: bf16 on CUDA and on CPUs with AVX-512 BF16 or AMX, else fp32 (docs/benchmarks.md). A
    resumed run keeps its own."""
    saliency_every: NonNegativeInt = 50_000
    """Environment steps between value/advantage saliency images in TensorBoard (0: off)."""

    SESSION: ClassVar[tuple[str, ...]] = (*TrainConfig.SESSION, "device")

    def validate(self) -> None:
        super().validate()
        resolve_precision(self.precision, self.device)  # the device, and bf16 where it cannot run

    def observation_shape(self) -> tuple[int, int, int]:
        """What the network reads: Catch's two 24x24 frames or ``stack_num`` 84x84 Atari frames."""
        return (2, 24, 24) if self.is_catch() else (self.stack_num, 84, 84)
