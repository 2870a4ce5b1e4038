"""The zoo of shipped agents: analyse each (its head report, a still and a clip of its saliency
video, its robustness to FGSM, PGD and noise), then make the page that shows them all, docs/zoo.md,
and the summary table on the README's front and the docs' home page, from those files.

    attn zoo analyse pretrained/pong                 # docs/zoo/pong/: report, still, clip, attacks
    attn zoo analyse pretrained/pong --episodes 5    # a quicker look (the page says how many)
    attn zoo analyse pretrained/pong                 # again, after Ctrl-C: goes on where it stopped
    attn zoo page                                    # docs/zoo.md, the README's and home page's table
    attn zoo compare breakout breakout_glimpse --labels PQN glimpse --out docs/figures/breakout_robustness.png
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from agents.common.config import PositiveInt, check_config
from analysis.zoo import ATTACKS, EPSILONS


@dataclass
class Analyse:
    """Write one shipped agent's analysis into docs/zoo/<agent>/."""

    agent: tyro.conf.Positional[str]
    """The shipped agent's folder (pretrained/<game>)."""
    zoo: str = "docs/zoo"
    """The folder of every agent's analysis; this one's goes to <zoo>/<agent's folder name>."""
    steps: PositiveInt = 1000
    """Frames of play in the head report."""
    clip_steps: PositiveInt = 150
    """Frames of the saliency clip (its middle one is the still)."""
    episodes: PositiveInt = 30
    """Evaluation episodes per attack and epsilon."""
    epsilons: tuple[float, ...] = EPSILONS
    """L-infinity budgets of the attacks, in pixel levels (0-255) of the uint8 frame."""
    attacks: tuple[str, ...] = ATTACKS
    """Attacks: fgsm, pgd (10 steps), noise (the control); none (--attacks with no value): the
    head report and the clip only."""
    num_envs: PositiveInt = 8
    """Parallel environments of the attacked evaluations."""
    seed: int = 0
    """Seed of the environments and of the noise."""
    progress: bool = True
    """Show progress bars."""
    fresh: bool = False
    """Redo every part. Without it the analysis resumes: what the agent's folder in the zoo holds
    for these weights and settings (analysis.json, and robustness.json point by point) is kept."""
    transfer_from: str | None = None
    """A CNN agent of the same game (pretrained/<game>): FGSM and PGD are also crafted on it
    (through its env's resize if it sees smaller frames) and applied to this agent's frames, the
    transfer attack of a black-box attacker (default: none)."""


@dataclass
class Compare:
    """Put several agents' robustness curves (attn zoo analyse) on one figure, each return scaled
    between random play (0) and the agent's clean return (1), and print their table."""

    agents: tyro.conf.Positional[tuple[str, ...]]
    """The agents' folder names in the zoo (two or more, e.g. breakout breakout_glimpse)."""
    out: str
    """The figure to write (.png)."""
    zoo: str = "docs/zoo"
    """The agents' analyses."""
    labels: tuple[str, ...] = ()
    """The agents' names in the figure and the table, one per agent in their order, e.g. PQN
    glimpse (default: their folder names); a transfer attack crafted on one of them is named after
    it."""


@dataclass
class Page:
    """Make docs/zoo.md, and the README's summary table, from pretrained/ and docs/zoo/."""

    pretrained: str = "pretrained"
    """The shipped agents' folder."""
    zoo: str = "docs/zoo"
    """The agents' analyses (attn zoo analyse)."""
    out: str = "docs/zoo.md"
    """The page to write."""
    summaries: tuple[str, ...] = ("README.md", "docs/index.md")
    """The pages whose <!-- zoo:begin --> ... <!-- zoo:end --> block gets the table's summary."""


def main() -> None:
    cfg = tyro.extras.subcommand_cli_from_dict(
        {"analyse": Annotated[Analyse, tyro.conf.arg(help=Analyse.__doc__)],
         "compare": Annotated[Compare, tyro.conf.arg(help=Compare.__doc__)],
         "page": Annotated[Page, tyro.conf.arg(help=Page.__doc__)]},
        description=__doc__,
    )  # fmt: skip
    from agents.common.checkpoint import CheckpointError
    from analysis.zoo import analyse_agent, compare_robustness, write_zoo_page
    from scripts.cli import fail, signals_end_cleanly

    try:
        check_config(cfg)
        if isinstance(cfg, Analyse):
            out = Path(cfg.zoo) / Path(cfg.agent).name
            with signals_end_cleanly(f"what was complete is kept in {out}; the same command goes on "
                                     "from there"):  # fmt: skip
                written = analyse_agent(cfg.agent, out, steps=cfg.steps, clip_steps=cfg.clip_steps,
                                        episodes=cfg.episodes, epsilons=cfg.epsilons,
                                        attacks=cfg.attacks, num_envs=cfg.num_envs, seed=cfg.seed,
                                        progress=cfg.progress, fresh=cfg.fresh,
                                        transfer_from=cfg.transfer_from)  # fmt: skip
        elif isinstance(cfg, Compare):
            figure, table = compare_robustness(cfg.agents, cfg.zoo, cfg.out, cfg.labels)
            print(table)
            written = [figure]
        else:
            command = "attn zoo " + " ".join(a if a else "''" for a in sys.argv[1:])
            written = write_zoo_page(cfg.pretrained, cfg.zoo, cfg.out, command, cfg.summaries)
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)
    print("wrote " + " ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
