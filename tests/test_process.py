"""Starting a server when an interrupt comes at the worst moment: between the fork and the exec."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from acceptloop.bench import congestion
from acceptloop.suite import process
from acceptloop.suite.process import (ServerProcess, children_of, cmdline_of, interrupts_held, pid_alive, terminate_all,
                                      wait_until, where_thread_stands)
from acceptloop.suite.registry import Implementation

SLEEPER = "import time; time.sleep(60)   # test_process"



def _my_sleepers() -> list[int]:
    """This test process's children running SLEEPER, known to the kit or not."""
    return [k for k in children_of(os.getpid()) if SLEEPER in (cmdline_of(k) or "")]


@pytest.mark.parametrize("signum, handler", [(signal.SIGINT, signal.default_int_handler),
                                             (signal.SIGTERM, congestion.stop)], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_between_fork_and_exec_leaves_the_server_known_so_terminate_all_stops_it(signum, handler):
    # The child signals its parent before it execs, while Popen waits for the exec: where a bench
    # stopped by SIGTERM the moment its first server was forked used to raise, and the server it
    # had just started ran on with no pid in LIVE (a fresh-clone CI run found one still alive).
    impl = Implementation(name="x", language="x", models=("event",), services=("echo",), command=("x",))
    srv = ServerProcess(impl, "echo", "event", argv=[sys.executable, "-c", SLEEPER],
                        preexec=lambda: os.kill(os.getppid(), signum))
    previous = signal.signal(signum, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            srv.spawn()
        assert srv.proc is not None and srv in process.LIVE, "the interrupt came before the kit knew the pid"
        pid = srv.pid
        assert terminate_all() == 1
        assert not pid_alive(pid)
        assert signal.getsignal(signum) is handler   # the hold is undone
    finally:
        signal.signal(signum, previous)
        for pid in _my_sleepers():   # what the kit lost track of (before the fix)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert wait_until(lambda: not _my_sleepers(), 5.0)


def test_an_interrupt_held_is_delivered_once_the_block_ends_and_not_before():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the signal")
        reached.append("after the block")   # not reached: the held interrupt raises as the block ends
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_that_was_ignored_stays_ignored_after_the_hold():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def _servers_of(pid: int) -> list[int]:
    """`pid`'s children that have exec'd a server (no longer a copy of the bench itself)."""
    return [kid for kid in children_of(pid) if (cmdline := cmdline_of(kid)) and "bench" not in cmdline]


def test_a_bench_killed_outright_leaves_no_server_running_and_the_next_puts_the_setting_back():
    machine = congestion.SYSCTL.read_text()
    bench = subprocess.Popen([sys.executable, "-m", "acceptloop", "bench", "--full", "--quiet", "--json", os.devnull],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers: list[int] = []
    try:
        assert wait_until(lambda: bool(servers.extend(_servers_of(bench.pid)) or servers), 60.0), "no server started"
        bench.kill()   # SIGKILL: no clean-up of its own runs
        bench.wait()
        assert wait_until(lambda: not any(pid_alive(p) for p in servers), 10.0), \
            f"the killed bench's server {servers} still runs"
        if congestion.MARKER.exists():   # it had changed the setting (root): the next bench puts it back
            congestion.put_back_what_a_killed_bench_left()
            assert congestion.SYSCTL.read_text() == machine and not congestion.MARKER.exists()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for pid in servers:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        congestion.put_back_what_a_killed_bench_left()


def _descendants(pid: int) -> list[int]:
    kids = children_of(pid)
    return kids + [d for k in kids for d in _descendants(k)]


@pytest.mark.parametrize("how", ["setpriv", "preexec_fn"])
def test_a_server_started_from_another_thread_outlives_that_thread(how):
    """The death signal comes when the thread that forked the server ends, not the kit: a server
    started from another thread than the main one must not ask for it (it was killed with its thread)."""
    procs: list[subprocess.Popen] = []
    argv = [sys.executable, "-c", f"print('on', flush=True); {SLEEPER}"]

    def start() -> None:
        if how == "setpriv":
            proc = subprocess.Popen(process.with_the_kits_death(argv), stdout=subprocess.PIPE, text=True)
        else:
            proc = subprocess.Popen(argv, preexec_fn=process.dies_with_the_kit(), stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline() == "on\n"   # the thread ends once setpriv has asked and exec'd the server
    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    # Gone from the kernel too (join returns once Python is done with the thread), so the signal,
    # had it been asked for, has been sent.
    assert wait_until(lambda: not os.path.exists(f"/proc/self/task/{starter.native_id}"), 5.0)
    [proc] = procs
    try:
        assert not wait_until(lambda: proc.poll() is not None, 0.5), f"it ended with its thread: {proc.returncode}"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_check_killed_outright_leaves_no_server_and_no_lane_running(jobs):
    """`acceptloop check` killed with SIGKILL runs no clean-up of its own: its servers (started with
    setpriv --pdeathsig) and its lanes (which ask for SIGTERM when the kit dies, and then stop their
    servers) go all the same. They used to run on (each server leads a session of its own)."""
    check = subprocess.Popen([sys.executable, "-m", "acceptloop", "check", "--quiet", "-j", jobs, "--impl", "c", "python",
                              "-k", "slow_reader or sigterm_transfer"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: set[int] = set()

    def servers() -> list[int]:
        return [d for d in _descendants(check.pid) if "acceptloop check" not in (cmdline_of(d) or "acceptloop check")]
    try:
        assert wait_until(lambda: bool(started.update(servers()) or started), 60.0), "no server started"
        everything = set(_descendants(check.pid)) | started
        check.kill()
        check.wait()
        assert wait_until(lambda: not any(pid_alive(p) for p in everything), 10.0), \
            f"the killed check's {sorted(p for p in everything if pid_alive(p))} still run"
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
        for pid in started:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_tree_of_a_server_with_worker_processes_holds_the_workers_that_serve():
    """ServerProcess.tree(), which the RSS, the CPU, the holder of a connection and the Starved
    watch are read over, takes in a server's worker processes (--workers): they serve. It used to
    stop at children() (which leaves workers out, for the zombie count), so a workers server's RSS
    growth read 0.00 MiB in robustness.slow_reader, its CPU 0 % in robustness.emfile, and a step a
    worker missed was watched on the supervisor."""
    from acceptloop.suite import registry
    from acceptloop.suite.scenarios.probes import holder
    from acceptloop.suite.client import Client
    [impl] = [i for i in registry.load() if i.name == "python-workers"]
    srv = ServerProcess(impl, "echo", "event")
    srv.start()
    try:
        assert len(srv.workers) == impl.worker_processes
        tree = srv.tree()
        assert tree[0] == srv.pid and srv.workers <= set(tree), (tree, srv.workers)
        with open(f"/proc/{srv.pid}/status") as status:   # the supervisor's alone
            alone = int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) * 1024
        assert srv.rss_bytes() > alone * 1.5, (srv.rss_bytes(), alone)
        c = Client(srv.address, label="held")
        c.send(b"x")
        assert c.recv_exactly(1) == b"x"
        assert holder(c, tree) in srv.workers
        c.close()
    finally:
        srv.stop()


def test_a_stop_that_had_to_kill_a_server_with_workers_says_where_each_worker_stood():
    """A supervisor killed because it waited for a worker (here one SIGSTOPped, so it cannot end)
    is shown with where its workers stood, not its own state alone (php-workers'
    reset_before_accept was 'killed after 2 s (state S (sleeping), in poll_schedule_timeout...)':
    the supervisor's, waiting, and nothing of the worker it waited for)."""
    from acceptloop.suite import registry
    [impl] = [i for i in registry.load() if i.name == "python-workers"]
    srv = ServerProcess(impl, "echo", "event")
    srv.start()
    stuck, *_ = sorted(srv.workers)
    try:
        os.kill(stuck, signal.SIGSTOP)
        assert wait_until(lambda: where_thread_stands(stuck, stuck).startswith("T "), 5.0)
        assert srv.stop(0.5) is None
        assert f"; its other processes: pid {stuck}: T in " in srv.how_stopped(), srv.how_stopped()
    finally:
        for pid in srv.workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        srv.kill()
