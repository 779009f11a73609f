"""The one lock of a run folder (mla_plugin/utils/locks.py), with real processes."""

import os
import subprocess
import sys
import textwrap

import pytest

from mla_plugin.utils import locks

HOLD = textwrap.dedent(
    """
    import sys, time
    from mla_plugin.utils import locks
    fd = locks.acquire(sys.argv[1])
    print("held", flush=True)
    sys.stdin.readline()
    """
)

ADOPT = textwrap.dedent(
    """
    import sys
    from mla_plugin.utils import locks
    try:
        fd = locks.acquire(sys.argv[1])
    except locks.LockHeld as e:
        print("refused", e.holder)
    else:
        print("adopted", fd)
    """
)


def _python(code, *args, **kw):
    env = dict(kw.pop("env", os.environ))
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-c", code, *args], env


def test_a_second_process_is_refused_with_the_holder_pid_and_path(tmp_path):
    folder = str(tmp_path / "run")
    cmd, env = _python(HOLD, folder)
    holder = subprocess.Popen(
        cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert locks.is_locked(folder)
        assert locks.holder(folder) == str(holder.pid)
        with pytest.raises(locks.LockHeld) as e:
            locks.acquire(folder)
        assert e.value.holder == str(holder.pid)
        assert str(holder.pid) in str(e.value) and os.path.join(folder, ".lock") in str(e.value)
        # waiting gives up when told to stop, after reporting the holder once
        seen = []
        assert (
            locks.acquire(folder, wait=True, poll=0.01, on_wait=seen.append, stop=lambda: True)
            is None
        )
        assert seen == [str(holder.pid)]
    finally:
        holder.communicate("\n")
    # the kernel released the dead holder's lock: now it is ours, re-entrantly
    fd = locks.acquire(folder)
    assert locks.acquire(folder) == fd and locks.holder(folder) == str(os.getpid())
    locks.release(fd)
    assert not locks.is_locked(folder)


def test_a_child_adopts_the_parents_lock_only_through_the_environment(tmp_path):
    folder = str(tmp_path / "cell")
    fd = locks.acquire(folder)
    try:
        cmd, env = _python(ADOPT, folder)
        # without the variable the child is refused, even with the descriptor open
        plain = subprocess.run(cmd, env=env, pass_fds=(fd,), capture_output=True, text=True)
        assert plain.stdout.split() == ["refused", str(os.getpid())], plain.stderr
        # with it, the child writes under the parent's lock
        cmd, env = _python(ADOPT, folder, env=locks.child_env(fd))
        child = subprocess.run(cmd, env=env, pass_fds=(fd,), capture_output=True, text=True)
        assert child.stdout.split() == ["adopted", str(fd)], child.stderr
        # a variable naming a descriptor of another file is not trusted
        other = locks.acquire(str(tmp_path / "other"))
        cmd, env = _python(ADOPT, folder, env=locks.child_env(other))
        wrong = subprocess.run(cmd, env=env, pass_fds=(other,), capture_output=True, text=True)
        assert wrong.stdout.split()[0] == "refused", wrong.stderr
        locks.release(other)
    finally:
        locks.release(fd)
