"""Shared fixtures: the `patchmix` CLI (for the parity cases) and the original's `module/mix.py`."""

import importlib.util
import os
import pathlib
import sys
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def patchmix_cli():
    """The `patchmix` binary: $PATCHMIX_BIN, else the workspace's debug build.

    Set PATCHMIX_REQUIRE_CLI=1 (CI does) to fail instead of skipping when it is missing.
    """
    path = os.environ.get("PATCHMIX_BIN") or str(REPO / "target" / "debug" / "patchmix")
    if not os.access(path, os.X_OK):
        message = (
            f"the patchmix CLI is not at {path}: build it with `cargo build -p patchmix-train` "
            "or set PATCHMIX_BIN"
        )
        if os.environ.get("PATCHMIX_REQUIRE_CLI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def original_mix():
    """The original's `module/mix.py` (visresearch/patchmix), made to run on the CPU.

    Needs torch and einops, and $PATCHMIX_ORIGINAL pointing at a checkout of the original
    repository; the test is skipped with a message otherwise. Its code is used as is; only the
    CUDA-specific calls it makes are redirected for the CPU:
    `Tensor.cuda` → the tensor itself, `torch.distributed.get_rank` → the rank under test, and
    `PatchMixer._one_hot`'s default device 'cuda' → 'cpu'.
    """
    torch = pytest.importorskip("torch", reason="torch is not installed: the original's mix.py cannot run")
    pytest.importorskip("einops", reason="einops is not installed: the original's mix.py imports it")
    root = os.environ.get("PATCHMIX_ORIGINAL")
    if not root:
        pytest.skip("PATCHMIX_ORIGINAL is not set (a checkout of github.com/visresearch/patchmix)")
    path = pathlib.Path(root) / "module" / "mix.py"
    if not path.is_file():
        pytest.skip(f"PATCHMIX_ORIGINAL has no module/mix.py: {path}")
    spec = importlib.util.spec_from_file_location("original_patchmix_mix", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    original_cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    cpu_one_hot = module.PatchMixer._one_hot

    def one_hot_on_cpu(self, target, num_classes, on_value=1.0, off_value=0.0, device="cpu"):
        return cpu_one_hot(self, target, num_classes, on_value, off_value, device="cpu")

    module.PatchMixer._one_hot = one_hot_on_cpu
    yield types.SimpleNamespace(module=module, torch=torch)
    torch.Tensor.cuda = original_cuda
