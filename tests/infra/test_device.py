"""GPU lease: lock logic with fake devices (this machine has no GPU).

The cluster scenarios (cards renumbered by a cgroup, one TMPDIR per job, several
users, a scheduler's assignment, several jobs inside one allocation) run the
competing leases in separate processes: a child (:data:`CHILD`) leases a card,
reports it, and holds it until told on stdin.
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from memorization.infra import device as dev
from memorization.infra.device import lease_device, lock_file_name, physical_ids, resolve_threads

FAKE = ["0", "1"]
SRC = Path(dev.__file__).resolve().parents[1]
UUID_A = "GPU-0a0a0a0a-1111-2222-3333-444444444444"
UUID_B = "GPU-0b0b0b0b-1111-2222-3333-444444444444"
SCHEDULER_VARS = (
    "SLURM_JOB_ID",
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "GPU_DEVICE_ORDINAL",
    "PBS_JOBID",
    "LSB_JOBID",
    "CUDA_VISIBLE_DEVICES",
    "MEMORIZATION_GPU_LOCK_DIR",
)


def other_user_open(root, real_open):
    """``os.open`` as seen by another (non-root) user, for paths under ``root``.

    Tests run as root here, where permission bits are not enforced; this
    enforces the *other* bits of files and folders, and refuses ``O_CREAT`` on
    a file this process did not create in a world-writable sticky folder, as
    ``fs.protected_regular`` does.
    """
    import errno
    import os
    import stat

    root = os.path.realpath(root)
    mine = set()

    def deny(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):
        full = os.path.realpath(os.fspath(path))
        if dir_fd is not None or not full.startswith(root + os.sep):
            return real_open(path, flags, mode, dir_fd=dir_fd)
        folder = os.stat(os.path.dirname(full)).st_mode
        access = flags & os.O_ACCMODE
        if os.path.lexists(full) and full not in mine:
            if flags & os.O_CREAT and folder & stat.S_ISVTX and folder & stat.S_IWOTH:
                deny(path)
            need = stat.S_IROTH if access in (os.O_RDONLY, os.O_RDWR) else 0
            need |= stat.S_IWOTH if access in (os.O_WRONLY, os.O_RDWR) else 0
            if os.stat(full).st_mode & need != need:
                deny(path)
        elif not os.path.lexists(full) and flags & os.O_CREAT:
            if folder & (stat.S_IWOTH | stat.S_IXOTH) != stat.S_IWOTH | stat.S_IXOTH:
                deny(path)
            fd = real_open(path, flags, mode)
            mine.add(full)
            return fd
        return real_open(path, flags, mode)

    return fake_open


# A child process that leases a device as its JSON config says, prints
# {"index", "pid", "messages"} (or {"error", "message"}), then waits for a line
# on stdin; "exit" makes it leave without releasing the lease (os._exit).
CHILD = inspect.getsource(other_user_open) + textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from memorization.infra import device as dev

    cfg = json.loads(sys.argv[1])
    if cfg.get("uuids") is not None:  # fake cards behind fake CUDA queries
        uuids = cfg["uuids"]
        dev.cuda_device_count = lambda: len(uuids)
        dev._cuda_device_uuid = lambda k: uuids[k]
        dev._cuda_device_pci_bus_id = lambda k: None
        dev._cuda_set_device = lambda k: None
        dev._cuda_device_name = lambda k: "Fake GPU"
    if cfg.get("shared_dir"):
        dev.SHARED_LOCK_DIR = Path(cfg["shared_dir"])
    if cfg.get("other_user"):
        os.open = other_user_open(cfg["other_user"], os.open)
    messages = []
    try:
        with dev.lease_device("cuda", devices=cfg.get("devices"), lock_dir=cfg.get("lock_dir"),
                              timeout=cfg.get("timeout", 5.0), log=messages.append) as d:
            print(json.dumps({"index": d.index, "pid": os.getpid(), "messages": messages}),
                  flush=True)
            if sys.stdin.readline().strip() == "exit":
                os._exit(0)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
    """
)


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    """Tests see no scheduler job and no CUDA_VISIBLE_DEVICES unless they set them."""
    for var in SCHEDULER_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def spawn():
    """Start a leasing child: ``spawn(config, env)``; every child is killed at the end."""
    procs: list[subprocess.Popen] = []
    base = {k: v for k, v in os.environ.items() if k not in SCHEDULER_VARS}
    base["PYTHONPATH"] = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])

    def start(cfg: dict, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**base, **(env or {})},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def report(proc: subprocess.Popen) -> dict:
    """What the child printed once it leased a card (or failed)."""
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        pytest.fail(f"child failed: {proc.stderr.read()}")
    return json.loads(line)


def leased(proc: subprocess.Popen) -> dict:
    out = report(proc)
    assert "error" not in out, out
    return out


def finish(proc: subprocess.Popen, command: str = "release") -> None:
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    assert proc.wait(10) == 0, proc.stderr.read()


def fake_cuda(monkeypatch, uuids, pci=None) -> list[int]:
    """Fake CUDA devices with these uuids (None: no uuid); returns the set_device calls."""
    selected: list[int] = []
    monkeypatch.setattr(dev, "cuda_device_count", lambda: len(uuids))
    monkeypatch.setattr(dev, "_cuda_device_uuid", lambda k: uuids[k], raising=False)
    pci = pci or [None] * len(uuids)
    monkeypatch.setattr(dev, "_cuda_device_pci_bus_id", lambda k: pci[k], raising=False)
    monkeypatch.setattr(dev, "_cuda_set_device", selected.append)
    monkeypatch.setattr(dev, "_cuda_device_name", lambda k: "Fake H100")
    return selected


def setenv(monkeypatch, variables: dict) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


# --- one process ---


def test_two_leases_in_one_process_get_different_devices(tmp_path):
    with lease_device("cuda", devices=FAKE, lock_dir=tmp_path) as a:
        with lease_device("auto", devices=FAKE, lock_dir=tmp_path) as b:
            assert {a, b} == {torch.device("cuda", 0), torch.device("cuda", 1)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-0.lock", "gpu-1.lock"]


def test_third_lease_times_out_then_succeeds_after_release(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="memorization.infra.device")
    with lease_device("cuda", devices=FAKE, lock_dir=tmp_path) as a:
        with lease_device("cuda", devices=FAKE, lock_dir=tmp_path):
            start = time.monotonic()
            with pytest.raises(TimeoutError, match="leased"):
                with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2):
                    pass
            assert time.monotonic() - start >= 0.2
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
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=5, log=messages.append):
            pass
    finally:
        release.set()
        thread.join(5)
    assert messages[0].startswith(
        f"all 1 visible GPU(s) are leased: cuda:0 = 0 (fake device) held by pid {os.getpid()} "
    )
    assert "waiting for one (timeout 5 s" in messages[0]
    assert messages[1:] == ["GPU cuda:0 = 0 became free", "using cuda:0 (fake device '0')"]


def test_default_timeout_is_bounded():
    timeout = inspect.signature(lease_device).parameters["timeout"].default
    assert timeout == dev.DEFAULT_TIMEOUT == 3600


def test_lease_released_on_exception(tmp_path):
    with pytest.raises(KeyError):
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path):
            raise KeyError("boom")
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0) as d:
        assert d.index == 0


def test_holder_record_written_and_cleared(tmp_path):
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, env={"SLURM_JOB_ID": "77"}):
        record = json.loads((tmp_path / "gpu-0.lock").read_text())
        job_lock = tmp_path / "gpu-0.job-77.lock"
        assert json.loads(job_lock.read_text())["pid"] == os.getpid()
    assert record["pid"] == os.getpid() and record["job"] == "77" and record["card"] == "0"
    assert record["cuda"] == 0 and record["host"] and record["user"] and record["since"]
    assert (tmp_path / "gpu-0.lock").read_text() == ""  # released: no holder
    assert not job_lock.exists()  # per-job locks are removed on release


# --- lock keys ---


def test_locks_are_keyed_by_device_uuid(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    selected = fake_cuda(monkeypatch, [UUID_A, UUID_B])
    messages: list[str] = []
    with lease_device("auto", lock_dir=tmp_path, log=messages.append) as a:
        with lease_device("cuda", lock_dir=tmp_path, log=messages.append) as b:
            assert (a, b) == (torch.device("cuda", 0), torch.device("cuda", 1))
            names = sorted(p.name for p in tmp_path.iterdir())
            assert names == [lock_file_name(UUID_A), lock_file_name(UUID_B)]
            # a job that sees the same physical card under another local number
            with pytest.raises(TimeoutError, match=f"cuda:0 = {UUID_B}"):
                with lease_device("cuda", devices=[UUID_B], lock_dir=tmp_path, timeout=0):
                    pass
    assert selected == [0, 1]
    assert messages == [
        f"using cuda:0 (device uuid '{UUID_A}', Fake H100)",
        f"using cuda:1 (device uuid '{UUID_B}', Fake H100)",
    ]


def test_lock_key_falls_back_to_pci_bus_id_then_visible_devices_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    fake_cuda(monkeypatch, [None, None], pci=["00000000:3B:00.0", None])
    cards = dev.visible_cards()
    assert [(c.index, c.key, c.source) for c in cards] == [
        (0, "pci-00000000:3B:00.0", "PCI bus id"),
        (1, "5", "CUDA_VISIBLE_DEVICES entry"),
    ]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert dev.visible_cards()[1].source == "local index"
    messages: list[str] = []
    with lease_device(
        "cuda", lock_dir=tmp_path, log=messages.append, env={"CUDA_VISIBLE_DEVICES": "3,5"}
    ):
        with lease_device(
            "cuda", lock_dir=tmp_path, log=messages.append, env={"CUDA_VISIBLE_DEVICES": "3,5"}
        ):
            names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["gpu-5.lock", "gpu-pci-00000000_3B_00.0.lock"]
    assert messages[0].startswith("no device uuid or PCI bus id for cuda:1: ")
    assert messages[1] == "using cuda:0 (PCI bus id 'pci-00000000:3B:00.0', Fake H100)"
    assert messages[3] == "using cuda:1 (CUDA_VISIBLE_DEVICES entry '5', Fake H100)"


def test_normalize_uuid():
    class Props:  # torch's _CUuuid has the 16 bytes
        bytes = list(range(16))

    assert dev.normalize_uuid(Props()) == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert dev.normalize_uuid("8F0C1A2B-0000-1111-2222-333344445555") == (
        "GPU-8f0c1a2b-0000-1111-2222-333344445555"
    )
    assert dev.normalize_uuid(UUID_A) == UUID_A
    assert dev.normalize_uuid("MIG-abc") == "MIG-abc"
    assert dev.normalize_uuid("00000000-0000-0000-0000-000000000000") is None
    assert dev.normalize_uuid("") is None and dev.normalize_uuid(None) is None


def test_physical_ids_and_lock_names(monkeypatch):
    assert physical_ids(2) == ["0", "1"]
    assert physical_ids(2, "3, 5") == ["3", "5"]
    assert physical_ids(1, "GPU-ab12-cd34,GPU-ef56") == ["GPU-ab12-cd34"]
    assert physical_ids(0, "") == []
    assert physical_ids(2, "7") == ["7", "local-1"]
    assert lock_file_name("3") == "gpu-3.lock"
    assert lock_file_name("GPU-ab12-cd34") == "gpu-GPU-ab12-cd34.lock"
    assert lock_file_name("MIG-GPU-ab12/1/0") == "gpu-MIG-GPU-ab12_1_0.lock"
    assert lock_file_name("../x") == "gpu-x.lock"


def test_scheduler_job():
    assert dev.scheduler_job({}) is None
    job = dev.scheduler_job({"SLURM_JOB_ID": "12", "SLURM_JOB_GPUS": "3"})
    assert (job.job_id, job.assigned_by, str(job)) == ("12", "SLURM_JOB_GPUS=3", "SLURM job 12")
    assert dev.scheduler_job({"SLURM_JOB_ID": "12"}).assigned_by is None
    job = dev.scheduler_job({"PBS_JOBID": "9.pbs", "CUDA_VISIBLE_DEVICES": "0"})
    assert (job.job_id, job.assigned_by) == ("9.pbs", "CUDA_VISIBLE_DEVICES=0")


# --- cards renumbered by a cgroup (SLURM ConstrainDevices=yes) ---


def test_cgroup_renumbered_cards_do_not_wait_on_each_other(tmp_path, spawn, monkeypatch):
    # two jobs on one node, each seeing only its own card as CUDA_VISIBLE_DEVICES=0
    child = spawn({"lock_dir": str(tmp_path), "uuids": [UUID_A]}, {"CUDA_VISIBLE_DEVICES": "0"})
    assert leased(child)["index"] == 0
    fake_cuda(monkeypatch, [UUID_B])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with lease_device("cuda", lock_dir=tmp_path, timeout=0) as d:
        assert d == torch.device("cuda", 0)
        assert {p.name for p in tmp_path.iterdir()} == {
            lock_file_name(UUID_A),
            lock_file_name(UUID_B),
        }
    # the child's card, seen by a third process under another local number, stays taken
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    fake_cuda(monkeypatch, [UUID_B, UUID_A])
    with lease_device("cuda", lock_dir=tmp_path, timeout=0) as d:
        assert d == torch.device("cuda", 0)
        with pytest.raises(TimeoutError, match=f"cuda:1 = {UUID_A} .* held by pid"):
            with lease_device("cuda", lock_dir=tmp_path, timeout=0):
                pass
    finish(child)


# --- one lock folder per machine ---


def test_default_lock_dir_ignores_tmpdir(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "job-tmp"))
    assert dev.default_lock_dir() == dev.SHARED_LOCK_DIR == Path("/tmp/memorization-gpu-locks")
    assert dev.default_lock_dir({"TMPDIR": "/elsewhere"}) == dev.SHARED_LOCK_DIR
    monkeypatch.setenv(dev.LOCK_DIR_ENV, str(tmp_path / "locks"))
    assert dev.default_lock_dir() == tmp_path / "locks"
    with lease_device("cuda", devices=["0"]):
        assert (tmp_path / "locks" / "gpu-0.lock").exists()
    assert dev.default_lock_dir({dev.LOCK_DIR_ENV: "/x"}) == Path("/x")


def test_jobs_with_different_tmpdirs_exclude_each_other(tmp_path, spawn):
    # Snakemake gives each job its own TMPDIR; the lock folder must not follow it
    shared = str(tmp_path / "shared-locks")
    first = spawn({"devices": ["0"], "shared_dir": shared}, {"TMPDIR": str(tmp_path)})
    assert leased(first)["index"] == 0
    (tmp_path / "job2").mkdir()
    second = spawn(
        {"devices": ["0"], "shared_dir": shared, "timeout": 0}, {"TMPDIR": str(tmp_path / "job2")}
    )
    out = report(second)
    assert out.get("error") == "TimeoutError", out
    assert f"held by pid {first.pid}" in out["message"]
    finish(first)


# --- several users ---


def test_lock_folder_and_files_are_shared_by_all_users(tmp_path, spawn):
    locks = tmp_path / "shared" / "locks"
    old = os.umask(0o077)
    try:
        with lease_device("cuda", devices=["0"], lock_dir=locks):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(locks.stat().st_mode) == 0o1777  # world-writable, sticky
    assert stat.S_IMODE((locks / "gpu-0.lock").stat().st_mode) == 0o666
    assert [p.name for p in locks.parent.iterdir()] == ["locks"]  # no temporary left
    # another user opens this user's lock file without O_CREAT (fs.protected_regular)
    # and writes its record there
    cfg = {"devices": ["0", "1"], "lock_dir": str(locks), "other_user": str(tmp_path)}
    other = spawn(cfg)
    assert leased(other)["index"] == 0
    assert json.loads((locks / "gpu-0.lock").read_text())["pid"] == other.pid
    # a third user, finding card 0 taken, creates the lock file of card 1
    third = spawn(cfg)
    assert leased(third)["index"] == 1
    assert json.loads((locks / "gpu-1.lock").read_text())["pid"] == third.pid
    finish(other)
    finish(third)


def test_read_only_lock_file_of_another_user_still_locks(tmp_path, spawn, monkeypatch):
    locks = tmp_path / "locks"
    locks.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "host": os.uname().nodename, "user": "x", "job": "999"}
    (locks / "gpu-0.lock").write_text(json.dumps(stale))
    (locks / "gpu-0.lock").chmod(0o444)
    locks.chmod(0o555)
    try:
        child = spawn({"devices": ["0"], "lock_dir": str(locks), "other_user": str(tmp_path)})
        assert leased(child)["index"] == 0  # flock on a read-only descriptor
        # the record it could not overwrite is a dead process's: not a foreign job's lock
        env = {"SLURM_JOB_ID": "202", "SLURM_JOB_GPUS": "0"}
        with pytest.raises(TimeoutError, match="held by an unknown process"):
            with lease_device("cuda", devices=["0"], lock_dir=locks, timeout=0, env=env):
                pass
        finish(child)
        with lease_device("cuda", devices=["0"], lock_dir=locks, timeout=0, env=env) as d:
            assert d.index == 0
        # as another user, where no per-job lock can be created: the card lock alone
        with monkeypatch.context() as m:
            m.setattr(os, "open", other_user_open(tmp_path, os.open))
            with lease_device("cuda", devices=["0"], lock_dir=locks, timeout=0, env=env) as d:
                assert d.index == 0
                assert not any(".job-" in p.name for p in locks.iterdir())
                with pytest.raises(TimeoutError, match="held by an unknown process"):
                    with lease_device("cuda", devices=["0"], lock_dir=locks, timeout=0, env=env):
                        pass
    finally:
        locks.chmod(0o755)


def test_read_only_open_when_writing_is_refused(tmp_path, monkeypatch):
    real_open = os.open

    def refuse_writing(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    (tmp_path / "gpu-0.lock").touch()
    monkeypatch.setattr(os, "open", refuse_writing)
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0) as d:
        assert d.index == 0
        with pytest.raises(TimeoutError):
            with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0):
                pass


def test_unwritable_lock_folder_gives_a_clear_error(tmp_path, monkeypatch):
    locks = tmp_path / "locks"
    locks.mkdir()
    locks.chmod(0o755)  # made by another user without the sticky 1777 mode
    monkeypatch.setattr(os, "open", other_user_open(tmp_path, os.open))
    with pytest.raises(PermissionError, match=f"chmod 1777.*{dev.LOCK_DIR_ENV}"):
        with lease_device("cuda", devices=["0"], lock_dir=locks, timeout=0):
            pass


# --- a scheduler's assignment ---


def test_foreign_job_lock_on_assigned_card_is_used_without_waiting(tmp_path, spawn, monkeypatch):
    # stale naming: two SLURM jobs each see their own card as "0" (no uuid to tell them apart)
    slurm = {"SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}
    child = spawn({"devices": ["0"], "lock_dir": str(tmp_path)}, {**slurm, "SLURM_JOB_ID": "101"})
    assert leased(child)["index"] == 0
    setenv(monkeypatch, {**slurm, "SLURM_JOB_ID": "202"})
    messages: list[str] = []
    with lease_device(
        "cuda", devices=["0"], lock_dir=tmp_path, timeout=0, log=messages.append
    ) as d:
        assert d == torch.device("cuda", 0)
        assert f"held by pid {child.pid} (user " in messages[0]
        assert "SLURM job 101" in messages[0] and "foreign" in messages[0]
        assert "using the card anyway" in messages[0]
        # a second process of job 202 must still wait: one card, one job process at a time
        with pytest.raises(TimeoutError, match=f"held by pid {os.getpid()} .*SLURM job 202"):
            with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0):
                pass
    # no bypass outside a scheduler job, nor when the scheduler did not assign the cards
    for env in ({}, {"SLURM_JOB_ID": "303"}):
        with pytest.raises(TimeoutError, match="SLURM job 101"):
            with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0, env=env):
                pass
    finish(child)


def test_processes_of_one_job_exclude_each_other(tmp_path, spawn, monkeypatch):
    # several Snakemake jobs inside one allocation share SLURM_JOB_ID
    slurm = {"SLURM_JOB_ID": "303", "SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}
    child = spawn({"devices": ["0"], "lock_dir": str(tmp_path)}, slurm)
    assert leased(child)["index"] == 0
    setenv(monkeypatch, slurm)
    with pytest.raises(TimeoutError, match=f"held by pid {child.pid} .*SLURM job 303"):
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0):
            pass
    with lease_device("cuda", devices=["0", "1"], lock_dir=tmp_path, timeout=0) as d:
        assert d.index == 1
    finish(child)
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0) as d:
        assert d.index == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-0.lock", "gpu-1.lock"]


# --- the bounded wait ---


def test_timeout_message_names_the_card_and_the_holder(tmp_path, spawn, monkeypatch):
    child = spawn({"lock_dir": str(tmp_path), "uuids": [UUID_A]}, {"SLURM_JOB_ID": "404"})
    assert leased(child)["index"] == 0
    fake_cuda(monkeypatch, [UUID_A])
    start = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        with lease_device("cuda", lock_dir=tmp_path, timeout=0.2):
            pass
    assert time.monotonic() - start >= 0.2
    message = str(err.value)
    assert f"cuda:0 = {UUID_A} (device uuid) held by pid {child.pid} " in message
    assert "SLURM job 404" in message and f"host {os.uname().nodename}" in message
    assert "stayed leased for 0.2 s" in message and str(tmp_path) in message
    finish(child)


# --- processes that end ---


def test_separate_processes_get_different_devices_and_dead_holder_frees(tmp_path, spawn):
    proc = spawn({"devices": FAKE, "lock_dir": str(tmp_path)})
    held = leased(proc)["index"]
    with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2) as mine:
        assert mine.index == 1 - held
        with pytest.raises(TimeoutError):
            with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2):
                pass
        finish(proc, "exit")  # leaves without releasing: the kernel frees the lock
        with lease_device("cuda", devices=FAKE, lock_dir=tmp_path, timeout=0.2) as again:
            assert again.index == held


def test_killed_holder_releases_its_lock(tmp_path, spawn):
    proc = spawn({"devices": ["0"], "lock_dir": str(tmp_path)}, {"SLURM_JOB_ID": "5"})
    assert leased(proc)["index"] == 0
    with pytest.raises(TimeoutError):
        with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0.1):
            pass
    proc.kill()
    proc.wait(5)
    # its per-job lock file is left behind, its lock is gone
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, timeout=0.5) as d:
        assert d == torch.device("cuda", 0)
    with lease_device("cuda", devices=["0"], lock_dir=tmp_path, env={"SLURM_JOB_ID": "5"}) as d:
        assert d == torch.device("cuda", 0)


# --- no GPU ---


def test_cpu_never_touches_locks(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("cpu must not lease")

    monkeypatch.setattr(dev, "_acquire", boom)
    monkeypatch.setattr(dev, "cuda_device_count", lambda: 4)
    with lease_device("cpu", devices=FAKE, lock_dir=tmp_path / "locks") as d:
        assert d == torch.device("cpu")
    assert not (tmp_path / "locks").exists()


def test_cuda_without_gpu_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "cuda_device_count", lambda: 0)
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


def test_resolve_threads():
    before = torch.get_num_threads()
    try:
        assert resolve_threads(2) == 2
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            resolve_threads(0)
    finally:
        torch.set_num_threads(before)
