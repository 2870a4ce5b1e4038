import pytest

from envs import list_games, resolve_game


@pytest.mark.parametrize(
    "name,rom",
    [
        ("pong", "pong"),
        ("Pong", "pong"),
        ("ALE/Pong-v5", "pong"),
        ("ms_pacman", "ms_pacman"),
        ("MsPacman", "ms_pacman"),
        ("ALE/MsPacman-v5", "ms_pacman"),
        ("BreakoutNoFrameskip-v4", "breakout"),
        ("mspacman", "ms_pacman"),
    ],
)
def test_spellings_resolve(name, rom):
    assert resolve_game(name) == rom


def test_list_games_has_the_bundled_roms():
    games = list_games()
    assert {"pong", "breakout", "enduro", "ms_pacman"} <= set(games)
    assert len(games) > 100 and games == sorted(games)


def test_unknown_game_names_closest_matches():
    with pytest.raises(ValueError, match=r"unknown game 'pongg'; did you mean 'pong'"):
        resolve_game("pongg")
    with pytest.raises(ValueError, match="list_games"):
        resolve_game("tetris_deluxe_9000")
    with pytest.raises(ValueError, match="non-empty"):
        resolve_game("")
