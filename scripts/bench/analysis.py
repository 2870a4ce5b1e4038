"""Saliency throughput: batched Jacobian maps against a per-frame loop and captum, every attribution
method, the sanity and fidelity checks, and saliency videos end to end."""

from __future__ import annotations

import itertools
import tempfile
import time
from typing import Any

import numpy as np
import torch

from scripts.bench.timing import median_seconds


def benchmark_saliency(
    batch: int = 64, repeats: int = 5, video_frames: int = 1000
) -> list[tuple[str, float]]:
    """Maps (or frames) per second for each method, same dueling network and observations."""
    from captum.attr import Saliency

    from agents.qlearning.networks import DuelingQNetwork
    from analysis.fidelity import deletion_curve, insertion_curve
    from analysis.saliency import METHODS, attribute, jacobian_saliency
    from analysis.saliency_video import record_saliency
    from analysis.sanity import randomization_test

    torch.manual_seed(0)
    net = DuelingQNetwork(6).eval()
    obs = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8)
    )
    x = obs.float() / 255
    captum = Saliency(lambda inp: net(inp)["value"][:, None])
    methods = {
        "Jacobian, batched (one backward pass)": (lambda: jacobian_saliency(net, obs), batch),
        "Jacobian, per-frame loop": (
            lambda: [jacobian_saliency(net, obs[i : i + 1]) for i in range(batch)], batch),
        "captum Saliency, batched": (lambda: captum.attribute(x, target=0, abs=True), batch),
    }  # fmt: skip
    for m in METHODS[1:]:  # attribute() at its defaults: 16 samples or steps where it takes them
        n = 4 if m == "perturbation" else batch
        methods[f"{m}, batched (attribute)"] = (lambda m=m, n=n: attribute(net, obs[:n], "value", m), n)
    maps = jacobian_saliency(net, obs)
    methods["sanity: cascading randomisation, 2 heads, 5 stages (Jacobian)"] = (
        lambda: randomization_test(net, obs, ("value", "advantage")), batch)
    methods["fidelity: deletion + insertion, 8 fractions, 3 random draws"] = (
        lambda: (deletion_curve(net, obs, maps), insertion_curve(net, obs, maps)), batch)  # fmt: skip
    rows = [(name, n / median_seconds(fn, repeats)) for name, (fn, n) in methods.items()]
    with tempfile.TemporaryDirectory() as tmp:
        config = {"game": "pong", "env_options": {}}
        start = time.perf_counter()
        record_saliency(net, config, f"{tmp}/v.mp4", steps=video_frames, progress=False)
        rows.append((f"record_saliency end to end ({video_frames} frames, both heads)",
                     video_frames / (time.perf_counter() - start)))  # fmt: skip
    return rows


def art_attack(net: torch.nn.Module, head: str, shape: tuple[int, ...], attack: str, eps: float,
               steps: int = 10) -> Any:  # fmt: skip
    """FGSM or PGD from the Adversarial Robustness Toolbox at our attacks' settings (pixel levels,
    the clean action's cross-entropy, Madry et al.'s step, no random start): the peer that
    ``analysis.adversarial`` is timed beside here and checked against in its tests."""
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x / 255.0)[head]

    with torch.no_grad():
        classes = net(torch.zeros(1, *shape))[head].shape[1]
    classifier = PyTorchClassifier(model=Logits(), loss=torch.nn.CrossEntropyLoss(),
                                   input_shape=shape, nb_classes=classes, clip_values=(0.0, 255.0),
                                   device_type="cpu")  # fmt: skip
    if attack == "fgsm":
        return FastGradientMethod(classifier, norm=np.inf, eps=eps, targeted=False, batch_size=4096)
    return ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=2.5 * eps / steps,
                                    max_iter=steps, targeted=False, num_random_init=0, batch_size=4096,
                                    verbose=False)  # fmt: skip


def benchmark_attacks(batch: int = 32, repeats: int = 5) -> list[tuple[str, float]]:
    """Attacked frames per second (one batched call crafts a batch): FGSM, PGD-10 and the noise
    control on the dueling network (4x84x84), ours beside ART's, and on a glimpse agent of patch
    12, 3 scales (210x160)."""
    from agents.glimpse import GlimpsePolicy, RecurrentAttentionModel
    from agents.qlearning.networks import DuelingQNetwork
    from analysis.adversarial import CNNAttack, RecurrentAttack

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = DuelingQNetwork(6).eval()
    obs = torch.from_numpy(rng.integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8))
    # two batches in turn: the CNN attacker does not attack again a frame it saw at the last step
    fresh = itertools.cycle([obs, torch.from_numpy(rng.integers(0, 256, obs.shape, dtype=np.uint8))])
    model = RecurrentAttentionModel(6, patch_size=12, num_scales=3).eval()
    policy = GlimpsePolicy(model, batch)
    frames = torch.from_numpy(rng.integers(0, 256, (batch, 1, 210, 160), dtype=np.uint8))
    rows = []
    for attack in ("fgsm", "pgd", "noise"):
        name = {"fgsm": "FGSM", "pgd": "PGD-10", "noise": "noise"}[attack]
        cnn = CNNAttack(net, (4, 84, 84), attack, 4.0, steps=10)
        glimpse = RecurrentAttack(policy, attack, 4.0, steps=10)
        how = (" (ours)", " (through its loop)") if attack != "noise" else ("", "")
        rows.append((f"dueling CNN, {name}{how[0]}",
                     batch / median_seconds(lambda a=cnn: a(next(fresh)), repeats)))  # fmt: skip
        if attack != "noise":
            art = art_attack(net, "q", (4, 84, 84), attack, 4.0)
            # ART takes the clean actions as labels, a pass of their own (ours reads them off its
            # first pass), then the attack on the float frames it takes
            def peer(a=art, c=cnn):  # noqa: ANN202
                return a.generate(x=obs.float().numpy(), y=c.clean_actions(obs))

            rows.append((f"dueling CNN, {name} (ART)", batch / median_seconds(peer, repeats)))
        rows.append((f"glimpse agent, {name}{how[1]}",
                     batch / median_seconds(lambda a=glimpse: a(frames), repeats)))  # fmt: skip
    return rows
