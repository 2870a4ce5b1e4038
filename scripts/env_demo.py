"""Play random actions in a game and write a video: the real screen beside the agent's 84x84 view.

attn demo --game pong --steps 300 --out demo/pong_env.mp4
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agents.common.config import PositiveInt
from scripts.cli import parse_args, signals_end_cleanly


@dataclass
class Args:
    game: str = "pong"
    """Game name (pong, Pong, ALE/Pong-v5 all work; see envs.list_games())."""
    steps: PositiveInt = 300
    """Agent steps to play (each is 4 emulator frames)."""
    seed: int = 0
    """Seed for the environment and the random actions."""
    out: Path = Path("demo/env.mp4")
    """Output mp4 path."""
    progress: bool = True
    """Show a progress bar."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from analysis.video import record_random_play

    try:
        with signals_end_cleanly():
            path = record_random_play(args.game, args.steps, args.seed, args.out, args.progress)
    except (ValueError, OSError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
