"""Is a glimpse agent's recurrent core still reading its input? At every checkpoint of a run: the
mean size of the core's input and of its LSTM cell state, and the spread of its output across the
states its own policy visits. A spread falling towards zero is a saturated core (analysis.core_state).
On Breakout also: while the ball falls, does a linear probe of the core tell on which side of the
paddle it will land, and does the policy move the paddle there?

    attn core-state --run runs/breakout_ppo16c_s1
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.common.config import PositiveInt
from scripts.cli import fail, parse_args, signals_end_cleanly


@dataclass
class Args:
    run: str
    """Run directory of a glimpse agent (its checkpoints/step_* are measured)."""
    steps: PositiveInt = 300
    """Steps each checkpoint plays (8 envs, its sampled policy; the same seed for every one)."""
    seed: int = 7
    """Seed of the envs and of the sampling."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError
    from analysis.core_state import core_state_over_training, markdown

    try:
        with signals_end_cleanly():
            rows = core_state_over_training(args.run, args.steps, args.seed)
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)
    print(markdown(rows))


if __name__ == "__main__":
    main()
