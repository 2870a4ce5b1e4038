"""H.264 video output that any player opens, written atomically.

Frames go to ``<name>.partial.mp4`` beside the target and are renamed into place only when the
video is complete, so a crash or Ctrl-C never leaves a truncated file that looks finished.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

import cv2
import imageio_ffmpeg
import numpy as np


def check_output_file(path: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """Fail early, before any work, if ``path`` cannot be written: a wrong suffix, a directory, a
    folder that cannot be made, or one that refuses a file (a read-only mount, /proc ...)."""
    path = Path(path)
    if suffix and path.suffix.lower() != suffix:
        raise ValueError(f"output must end in {suffix}, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a directory; give a file name")
    check_output_dir(path.parent)
    return path


_CREATED: list[Path] = []  # folders the output checks made, newest last (remove_created_dirs)


def check_output_dir(folder: str | os.PathLike[str], writes: tuple[str, ...] = ()) -> Path:
    """Create ``folder`` and prove that a file can be written in it (then removed). ``writes``:
    the names (glob patterns) of the files the command will write there, the first its marker:
    a folder that holds one of them without the marker holds someone else's file of that name,
    which the command would overwrite, so it is refused. The folders made are remembered, so that
    a command refused later leaves none of them behind (:func:`remove_created_dirs`)."""
    folder = Path(folder)
    if writes and folder.is_dir() and not (folder / writes[0]).exists():
        clash = sorted(p.name for pattern in writes for p in folder.glob(pattern))
        if clash:
            raise ValueError(f"{str(folder)!r} holds {', '.join(clash[:3])}, which this command did "
                             "not write and would overwrite; give another folder")  # fmt: skip
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _CREATED.extend(reversed(missing))
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write to {str(folder)!r}: {e.strerror or e}") from None
    return folder


def remove_created_dirs() -> None:
    """Remove the folders that :func:`check_output_dir` made, where they are still empty: a
    refused or interrupted command leaves no folder behind."""
    while _CREATED:
        with contextlib.suppress(OSError):
            _CREATED.pop().rmdir()


def check_writable(path: str | os.PathLike[str]) -> Path:
    """A video output path that can be written (see :func:`check_output_file`)."""
    return check_output_file(path, ".mp4")


# frame rates that ffmpeg's MP4 muxer takes: 1e-6 and 1e12 frames/s are refused by it (measured)
FPS_RANGE = (0.01, 1000.0)
# a 4K panel: a video is several panels wide, and libx264 refuses frames over 16,384 pixels a side
MAX_HEIGHT = 2160


def check_video_options(fps: float, height: int, panels: float = 3.0) -> None:
    """One line for a frame rate or a panel height that cannot make a video, or whose frames (about
    ``panels`` panels of 210x160 upscaled to ``height``, each in a few working copies) would not
    fit in memory."""
    from agents.common.resources import require_memory

    lo, hi = FPS_RANGE
    if not lo <= fps <= hi:
        raise ValueError(f"--fps must be in [{lo:g}, {hi:,.0f}] frames per second, got {fps:g}")
    if not 1 <= height <= MAX_HEIGHT:
        raise ValueError(f"--height must be in [1, {MAX_HEIGHT}] pixels, got {height}")
    frame = round(panels * height * height * 160 / 210) * 3
    require_memory({"a video frame": (8 * frame, "--height")})


class VideoWriter:
    """``with VideoWriter(path, fps) as v: v.write(rgb_uint8_frame)``; H.264, yuv420p."""

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0) -> None:
        self.path = check_writable(path)
        self.partial = self.path.with_name(self.path.stem + ".partial.mp4")
        self.fps = fps
        self.frames = 0
        self._gen = None
        self._size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be HxWx3 uint8, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        if self._gen is None:
            self._size = (w + w % 2, h + h % 2)  # yuv420p needs even sides
            self._gen = imageio_ffmpeg.write_frames(
                str(self.partial),
                self._size,
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                macro_block_size=1,
                quality=7,
                ffmpeg_log_level="error",
                # veryfast: ~2x the encoding speed of x264's default preset at this size, and the
                # pipe to ffmpeg was what a saliency video waited on (measured)
                output_params=["-preset", "veryfast"],
            )
            self._gen.send(None)
        if (w + w % 2, h + h % 2) != self._size:
            raise ValueError(f"frame size changed from {self._size} to {(w, h)}")
        if w % 2 or h % 2:
            frame = cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT)
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self, success: bool = True) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        if success and self.frames:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(success=exc_type is None)


def upscale(image: np.ndarray, height: int) -> np.ndarray:
    """Nearest-neighbour upscale to ``height`` rows, keeping the aspect ratio and sharp pixels."""
    h, w = image.shape[:2]
    width = round(w * height / h)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def record_random_play(game: str, steps: int, seed: int, out: str | os.PathLike[str],
                       progress: bool = True) -> Path:  # fmt: skip
    """A video of random play: the 210x160 screen beside the newest 84x84 frame the agent sees."""
    from tqdm import tqdm

    from envs import make_atari_env

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    env = make_atari_env(game, seed=seed)
    check_writable(out)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    with VideoWriter(out, fps=15) as video:
        for _ in tqdm(range(steps), desc=f"{env.game} random play", unit="step", disable=not progress):
            screen = upscale(env.rgb_frame(), 420)
            view = upscale(gray_to_rgb(obs[-1]), 420)
            video.write(np.concatenate([screen, view], axis=1))
            obs, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
            if term or trunc:
                obs, _ = env.reset()
    return video.path
