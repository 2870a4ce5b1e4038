"""Game names: accept the spellings users bring from gymnasium, ALE and papers."""

from __future__ import annotations

import difflib
import re

from ale_py import roms


def list_games() -> list[str]:
    """Every ROM bundled with the installed ale-py wheel, as snake_case ids (``ms_pacman``)."""
    return sorted(roms.get_all_rom_ids())


def _canonical(name: str) -> str:
    """``ALE/MsPacman-v5`` -> ``ms_pacman``; ``Pong`` -> ``pong``; ``PongNoFrameskip-v4`` too."""
    name = name.strip()
    name = re.sub(r"^ALE/", "", name)
    name = re.sub(r"-v\d+$", "", name)
    name = re.sub(r"(NoFrameskip|Deterministic)$", "", name)
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return name.lower().replace("-", "_")


def resolve_game(name: str) -> str:
    """Return the ROM id for ``name`` or raise a ``ValueError`` that names the closest games.

    Matching ignores case, underscores, the ``ALE/`` prefix and a ``-vN`` suffix, so ``pong``,
    ``Pong``, ``ALE/Pong-v5``, ``ms_pacman`` and ``MsPacman`` all resolve.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"game must be a non-empty string, got {name!r}; see envs.list_games()")
    games = list_games()
    canonical = _canonical(name)
    if canonical in games:
        return canonical
    squashed = {g.replace("_", ""): g for g in games}
    if canonical.replace("_", "") in squashed:
        return squashed[canonical.replace("_", "")]
    close = difflib.get_close_matches(canonical, games, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise ValueError(f"unknown game {name!r}; {hint}see envs.list_games() for all {len(games)}")
