import imageio.v3 as iio
import numpy as np
import pytest
from conftest import call_script

from analysis.video import VideoWriter, check_writable, record_random_play


def test_video_decodes_with_expected_frames_size_and_fps(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=12) as video:
        for i in range(20):
            frame = np.zeros((41, 63, 3), np.uint8)  # odd sides are padded to even
            frame[:, : i * 3] = 255
            video.write(frame)
    frames = iio.imread(path)
    assert frames.shape == (20, 42, 64, 3)
    assert iio.immeta(path)["fps"] == 12
    assert frames[10, 20, :30].mean() > 200 and frames[10, 20, 40:60].mean() < 50
    assert not (tmp_path / "v.partial.mp4").exists()


def test_failed_video_leaves_nothing_behind(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path) as video:
        video.write(np.zeros((8, 8, 3), np.uint8))
        raise RuntimeError("crash mid-episode")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_are_refused_early(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.mp4"):
        check_writable(tmp_path / "v.avi")
    with pytest.raises(ValueError, match="is a directory"):
        (tmp_path / "d.mp4").mkdir()
        check_writable(tmp_path / "d.mp4")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write to"):
        check_writable(blocker / "v.mp4")


def test_random_play_video(tmp_path):
    path = record_random_play("pong", 12, 0, tmp_path / "pong.mp4")
    frames = iio.imread(path)
    assert frames.shape == (12, 420, 740, 3)


@pytest.mark.parametrize("flag", ["--progress", "--no-progress"])
def test_the_demo_shows_its_bar_unless_told_not_to(flag, tmp_path):
    out = tmp_path / "demo.mp4"
    done = call_script("scripts/env_demo.py", "--steps", "3", "--out", str(out), flag)
    assert done.returncode == 0, done.stderr
    assert ("random play" in done.stderr) == (flag == "--progress") and out.stat().st_size > 0
