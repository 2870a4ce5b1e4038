"""The layout shows the architecture (STYLE.md): data flows one way, envs -> agents -> analysis.
``envs`` imports neither of the others and ``agents`` never imports ``analysis`` (a trainer takes
callbacks; the scripts wire analysis into them). Checked on the source, lazy imports included."""

import ast
import dataclasses
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of ``package`` imports, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"), [("envs", {"agents", "analysis"}), ("agents", {"analysis"})]
)
def test_imports_flow_one_way(package, forbidden):
    modules = imported_packages(package)
    assert len(modules) > 3  # the walk found the package
    wrong = {module: sorted(names & forbidden) for module, names in modules.items() if names & forbidden}
    assert not wrong, f"{package} must not import {sorted(forbidden)}: {wrong}"


def test_agents_has_its_parts_as_subpackages():
    """Every module of agents/ lives in a part: qlearning, glimpse, soft or common."""
    loose = [p.name for p in (ROOT / "agents").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules directly under agents/: {loose}"
    assert {p.name for p in (ROOT / "agents").iterdir() if (p / "__init__.py").exists()} == {
        "common", "glimpse", "qlearning", "soft"
    }  # fmt: skip


def test_agents_common_names_no_concrete_agent():
    """agents/common reads the registry (agents.common.registry) that each agent package fills in:
    it neither imports agents.qlearning or agents.glimpse nor names their modules in a string (an
    importlib call), lazy imports included."""
    concrete = ("agents.qlearning", "agents.glimpse", "agents.soft")
    found = {}
    for path in sorted((ROOT / "agents" / "common").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]
            hits = [n for n in names if n.startswith(concrete)]
            if hits:
                found.setdefault(path.name, []).extend(hits)
    assert not found, f"agents/common names concrete agents: {found}"


def test_every_agent_registers_its_networks_policy_and_trainer():
    from agents.common.registry import NETWORKS, POLICIES, TRAINERS

    assert set(NETWORKS) == {"DuelingQNetwork", "SingleStreamQNetwork", "RecurrentAttentionModel",
                             "SoftAttentionAgent"}  # fmt: skip
    assert set(TRAINERS) == {"dqn", "pqn", "glimpse", "soft"} and set(POLICIES) == {"glimpse", "soft"}
    for kind in TRAINERS.values():
        assert dataclasses.is_dataclass(kind.config_class())
