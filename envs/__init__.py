"""Environments: preprocessed Atari (single and vectorised) and Catch (Mnih et al. 2014)."""

from envs.atari import AtariEnv, episode_ended, make_atari_env, make_vector_env
from envs.catch import CatchEnv, CatchVectorEnv
from envs.games import list_games, resolve_game
from envs.options import AtariOptions

__all__ = [
    "AtariEnv",
    "AtariOptions",
    "CatchEnv",
    "CatchVectorEnv",
    "episode_ended",
    "list_games",
    "make_atari_env",
    "make_vector_env",
    "resolve_game",
]
