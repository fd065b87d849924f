"""GPU lease: lock logic with fake devices (this machine has no GPU)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from memorization import device as dev
from memorization.device import lease_device, lock_file_name, physical_ids, resolve_threads

FAKE = ["0", "1"]
SRC = Path(dev.__file__).resolve().parents[1]

# A child process that leases a device, reports its index, then waits for a line
# on stdin. "exit" makes it leave without releasing the lease (os._exit).
CHILD = textwrap.dedent(
    """
    import os, sys
    from memorization.device import lease_device
    with lease_device("cuda", devices=sys.argv[2].split(","), lock_dir=sys.argv[1],
                      timeout=float(sys.argv[3])) as d:
        print(d.index, flush=True)
        if sys.stdin.readline().strip() == "exit":
            os._exit(0)
    """
)


def start_child(lock_dir: Path, devices: list[str], timeout: float = 5.0) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lock_dir), ",".join(devices), str(timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def child_index(proc: subprocess.Popen) -> int:
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        pytest.fail(f"child failed: {proc.stderr.read()}")
    return int(line)


def finish(proc: subprocess.Popen, command: str = "release") -> None:
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    assert proc.wait(10) == 0, proc.stderr.read()


def test_two_leases_in_one_process_get_different_devices(tmp_path):
    with lease_device("cuda", devices=FAKE, lock_dir=tmp_path) as a:
        with lease_device("auto", devices=FAKE, lock_dir=tmp_path) as b:
            assert {a, b} == {torch.device("cuda", 0), torch.device("cuda", 1)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-0.lock", "gpu-1.lock"]


def test_third_lease_times_out_then_succeeds_after_release(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="memorization.device")
    with lease_device("cuda", devices=FAKE, lock_dir=tmp_path) as a:
        with lease_device("cuda", devices=FAKE, lock_dir=tmp_path):
            start = time.monotonic()
            with pytest.raises(TimeoutError, match="leased"):
                with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2):
                    pass
            assert 0.15 < time.monotonic() - start < 2
            assert sum("waiting" in r.getMessage() for r in caplog.records) == 1
        with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2) as c:
            assert c != a and c.type == "cuda"


def test_waiting_lease_gets_the_device_when_released(tmp_path):
    held, release = threading.Event(), threading.Event()

    def holder():
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        threading.Timer(0.3, release.set).start()
        messages: list[str] = []
        start = time.monotonic()
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=5, log=messages.append):
            assert 0.2 < time.monotonic() - start < 3
    finally:
        release.set()
        thread.join(5)
    assert messages[0].startswith("all 1 visible GPU(s) ['0'] are leased by other jobs; waiting")
    assert messages[1:] == ["GPU '0' became free", "using cuda:0 (fake device '0')"]


def test_separate_processes_get_different_devices_and_dead_holder_frees(tmp_path):
    proc = start_child(tmp_path, FAKE)
    try:
        held = child_index(proc)
        with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2) as mine:
            assert mine.index == 1 - held
            with pytest.raises(TimeoutError):
                with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2):
                    pass
            finish(proc, "exit")  # leaves without releasing: the kernel frees the lock
            with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2) as again:
                assert again.index == held
    finally:
        proc.kill()


def test_killed_holder_releases_its_lock(tmp_path):
    proc = start_child(tmp_path, ["0"])
    try:
        assert child_index(proc) == 0
        with pytest.raises(TimeoutError):
            with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0.1):
                pass
        proc.kill()
        proc.wait(5)
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0.5) as d:
            assert d == torch.device("cuda", 0)
    finally:
        proc.kill()


def test_cuda_visible_devices_names_locks_after_physical_cards(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(dev, "_cuda_device_count", lambda: 2)
    selected: list[int] = []
    monkeypatch.setattr(dev, "_cuda_set_device", selected.append)
    monkeypatch.setattr(dev, "_cuda_device_name", lambda k: "Fake H100")
    messages: list[str] = []
    with lease_device("auto", lock_dir=tmp_path, log=messages.append) as a:
        with lease_device("cuda", lock_dir=tmp_path, log=messages.append) as b:
            assert (a, b) == (torch.device("cuda", 0), torch.device("cuda", 1))
            assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
            # another job seeing only card 5 must find it taken
            with pytest.raises(TimeoutError):
                with lease_device("cuda", devices=["5"], lock_dir=tmp_path, timeout=0):
                    pass
    assert selected == [0, 1]
    assert messages == [
        "using cuda:0 (CUDA_VISIBLE_DEVICES entry '3', Fake H100)",
        "using cuda:1 (CUDA_VISIBLE_DEVICES entry '5', Fake H100)",
    ]


def test_physical_ids_and_lock_names(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert physical_ids(2) == ["0", "1"]
    assert physical_ids(2, "3, 5") == ["3", "5"]
    assert physical_ids(1, "GPU-ab12-cd34,GPU-ef56") == ["GPU-ab12-cd34"]
    assert physical_ids(0, "") == []
    assert physical_ids(2, "7") == ["7", "local-1"]
    assert lock_file_name("3") == "gpu-3.lock"
    assert lock_file_name("GPU-ab12-cd34") == "gpu-GPU-ab12-cd34.lock"
    assert lock_file_name("MIG-GPU-ab12/1/0") == "gpu-MIG-GPU-ab12_1_0.lock"
    assert lock_file_name("../x") == "gpu-x.lock"


def test_default_lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(dev.LOCK_DIR_ENV, str(tmp_path / "locks"))
    assert dev.default_lock_dir() == tmp_path / "locks"
    with lease_device("cuda", devices=["0"]):
        assert (tmp_path / "locks" / "gpu-0.lock").exists()
    monkeypatch.delenv(dev.LOCK_DIR_ENV)
    assert dev.default_lock_dir().name == f"memorization-gpu-locks-{os.getuid()}"


def test_cpu_never_touches_locks(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("cpu must not lease")

    monkeypatch.setattr(dev, "_acquire", boom)
    monkeypatch.setattr(dev, "_cuda_device_count", lambda: 4)
    with lease_device("cpu", devices=FAKE, lock_dir=tmp_path / "locks") as d:
        assert d == torch.device("cpu")
    assert not (tmp_path / "locks").exists()


def test_cuda_without_gpu_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "_cuda_device_count", lambda: 0)
    with pytest.raises(RuntimeError, match="no CUDA device is visible.*device: auto or cpu"):
        with lease_device("cuda", lock_dir=tmp_path):
            pass
    with pytest.raises(RuntimeError, match="no CUDA device"):
        with lease_device("cuda", devices=[], lock_dir=tmp_path):
            pass


def test_bad_preference_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'.*'gpu'"):
        with lease_device("gpu", lock_dir=tmp_path):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the GPU-less path")
def test_auto_without_gpu_gives_cpu(tmp_path):
    messages: list[str] = []
    with lease_device("auto", lock_dir=tmp_path, log=messages.append) as d:
        assert d == torch.device("cpu")
    assert messages == ["using cpu (no CUDA device visible)"]
    assert list(tmp_path.iterdir()) == []


def test_lease_released_on_exception(tmp_path):
    with pytest.raises(KeyError):
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path):
            raise KeyError("boom")
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0) as d:
        assert d.index == 0


def test_resolve_threads():
    before = torch.get_num_threads()
    try:
        assert resolve_threads(2) == 2
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            resolve_threads(0)
    finally:
        torch.set_num_threads(before)
