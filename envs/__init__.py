"""Environments: preprocessed Atari (single and vectorised) and Catch (Mnih et al. 2014)."""

from envs.atari import AtariEnv, FireAfterLifeLoss, episode_ended, make_atari_env, make_vector_env
from envs.catch import CatchEnv, CatchVectorEnv
from envs.games import list_games, resolve_game
from envs.groups import EnvGroups
from envs.options import AtariOptions

__all__ = [
    "AtariEnv",
    "AtariOptions",
    "CatchEnv",
    "CatchVectorEnv",
    "EnvGroups",
    "FireAfterLifeLoss",
    "episode_ended",
    "list_games",
    "make_atari_env",
    "make_vector_env",
    "resolve_game",
    "sb3_vec_env",
]


def __getattr__(name: str):
    """``sb3_vec_env`` on first use: it imports Stable-Baselines3 (and so torch), which the rest of
    ``envs`` does not need."""
    if name in ("sb3_vec_env", "AtariSB3VecEnv"):
        from envs import sb3

        return getattr(sb3, name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
