"""The load generator's I/O modes side by side: what each costs the client per operation, against
what the server spends, with the modes and the servers interleaved round by round.

    .venv/bin/python loadgen/compare_io.py --impl epoll-floor c --workload echo-64B-c256 connect-c16 --rounds 5

Each run starts a fresh server of the registry (its event model) pinned to the first CPU, and runs
the generator pinned to the second (as `acceptloop bench` does), once per I/O mode; the table gives
medians over the rounds: operations per second, the server's and the client's share of a CPU, their
CPU per operation and the client's divided by the server's. Above 1, one core of generator cannot
saturate one core of that server, however quiet the machine: the figure docs/performance.md reads.
"""
from __future__ import annotations

import argparse
import os
import statistics

from acceptloop.bench.loadgen import LOAD_IOS, run_load
from acceptloop.bench.plan import offers, parse_workload_id
from acceptloop.suite import registry
from acceptloop.suite.process import ServerProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", nargs="+", required=True, help="registry names")
    parser.add_argument("--workload", nargs="+", required=True, help="bench workload ids: echo-64B-c256, connect-c16")
    parser.add_argument("--io", nargs="+", default=list(LOAD_IOS), choices=LOAD_IOS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--duration", type=float, default=1.0)
    args = parser.parse_args()
    impls = {i.name: i for i in registry.load()}
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, -1)
    seen: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for w in map(parse_workload_id, args.workload):
            for name in args.impl:
                if not offers(impls[name], w, "event"):   # a TCP-only server has no datagram run
                    continue
                for io in args.io:
                    pin = (lambda: os.sched_setaffinity(0, {server_cpu})) if server_cpu is not None else None
                    srv = ServerProcess(impls[name], w.service, "event", preexec=pin, transport=w.transport).start()
                    try:
                        host, port = srv.address
                        r = run_load(host, port, w.kind, w.connections, message_size=w.size or None,
                                     warmup=args.warmup, duration=args.duration, cpu=client_cpu,
                                     watch_pid=srv.pid, io=io)
                    finally:
                        srv.stop()
                        srv.close()
                    if not r["ops"] or r["server_cpu_s"] is None or r["server_cpu_s"] < 0:
                        print(f"{w.id} {name} {io}: no operation measured ({r['errors']})")
                        continue
                    ops, elapsed = r["ops"], r["elapsed_s"]
                    seen.setdefault((w.id, name, io), []).append({
                        "ops_s": r["ops_per_s"], "server_pct": r["server_cpu_s"] / elapsed * 100,
                        "client_pct": r["client_cpu_pct"], "server_us": r["server_cpu_s"] / ops * 1e6,
                        "client_us": r["client_cpu_s"] / ops * 1e6, "errors": sum(r["errors"].values())})
    print(f"{'workload':14} {'server':18} {'io':5} {'ops/s':>9} {'server':>7} {'client':>7} "
          f"{'server µs/op':>12} {'client µs/op':>12} {'client÷server':>13} errors")
    for (wid, name, io), runs in seen.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{wid:14} {name:18} {io:5} {m['ops_s']:9.0f} {m['server_pct']:6.0f}% {m['client_pct']:6.0f}% "
              f"{m['server_us']:12.2f} {m['client_us']:12.2f} {m['client_us'] / m['server_us']:13.2f} "
              f"{sum(r['errors'] for r in runs):.0f}")


if __name__ == "__main__":
    main()
