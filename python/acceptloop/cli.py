"""The `acceptloop` command: check, bench, loadgen, report, generate."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Sequence

from acceptloop import _protocol as P
from acceptloop.bench import congestion
from acceptloop.suite.lanes import usable_cpus


# Lanes of the matrix run side by side: a cell mostly waits (for a timeout, a grace, a server to
# start), so three lanes per CPU keep the CPUs busy without crowding the servers they measure
# (on two CPUs: 6 lanes, the whole registry in about 5 minutes; 3 took 7 min 20 s).
DEFAULT_JOBS = 3 * usable_cpus()


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--implementations", metavar="FILE", type=Path, action="append", default=[],
                   help="another registry file; its entries join (or replace) implementations.toml's")
    p.add_argument("--impl", metavar="NAME", nargs="+", action="extend", help="only these implementations")
    p.add_argument("--model", metavar="M", nargs="+", action="extend", choices=P.MODELS, help="only these models")
    p.add_argument("--service", metavar="S", nargs="+", action="extend", choices=P.SERVICES, help="only these services")
    p.add_argument("-k", metavar="PATTERN", dest="keyword",
                   help="only cells whose id (impl-model-scenario) matches, as pytest's -k: 'php and echo'")


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    """`acceptloop bench`: the profiles, the CPU sets, the rounds and where the results go."""
    bench = sub.add_parser("bench", help="measure every implementation under load; write results/bench.json",
                           description="The C load generator against every implementation (the ports and the peers): "
                                       "server on --server-cpus (default CPU 0), client on --client-cpus (default "
                                       "CPU 1), implementations interleaved round by round. Writes JSON that `acceptloop report` turns into charts and ratios.")
    _add_selection(bench)
    speed = bench.add_mutually_exclusive_group()
    speed.add_argument("--quick", dest="profile", action="store_const", const="quick",
                       help="the cells every target needs (the default; about a minute)")
    speed.add_argument("--full", dest="profile", action="store_const", const="full",
                       help="every workload (about 36 minutes on two CPUs)")
    speed.add_argument("--scaling", dest="profile", action="store_const", const="scaling",
                       help="64 B echo at 256 connections with --workers 1, 2, 4, ... up to the server CPUs")
    speed.add_argument("--profile", dest="profile", choices=("quick", "full", "scaling"),
                       help="the profile by name (the same as --quick, --full, --scaling)")
    bench.add_argument("--server-cpus", metavar="LIST", help="the CPUs the server runs on, as 0, 0-3 or 0,2 "
                       "(default: the first CPU this process may use)")
    bench.add_argument("--client-cpus", metavar="LIST", help="the CPUs of the load generator, which runs on the "
                       "first of them (default: the next CPU after the server's)")
    bench.add_argument("--rounds", type=int, metavar="N", help="measured runs per cell (at least 3 for the report's "
                       "median, min and max; default: the profile's)")
    bench.add_argument("--json", metavar="FILE", type=Path, default=Path("results/bench.json"),
                       help="where to write the results (default: results/bench.json)")
    bench.add_argument("--congestion-control", metavar="NAME", default=congestion.DEFAULT,
                       help="the TCP congestion control to measure under, set for the run and put back after it "
                            "(needs root; otherwise the machine's, with a warning); 'keep': the machine's "
                            f"(default: {congestion.DEFAULT}; bbr makes loopback streams bistable)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_loadgen_parser(sub: argparse._SubParsersAction) -> None:
    """`acceptloop loadgen`: the C load generator once, against a server already running."""
    loadgen = sub.add_parser("loadgen", help="run the C load generator once against a server and print what it measured",
                             description="One thread, epoll, non-blocking sockets with TCP_NODELAY, closed loop. "
                                         "Prints the result as JSON.")
    loadgen.add_argument("--host", default="127.0.0.1")
    loadgen.add_argument("--port", type=int, required=True)
    loadgen.add_argument("--mode", default="echo", help="echo, connect, ingest, egress, idle or datagram (UDP echo)")
    loadgen.add_argument("--io", default="epoll", help="epoll (default) or uring (io_uring; echo, datagram and connect)")
    loadgen.add_argument("--connections", type=int, default=1)
    loadgen.add_argument("--size", type=int, help="echo: bytes per message (default 64)")
    loadgen.add_argument("--warmup", type=float, help="seconds before the measured window (default 1)")
    loadgen.add_argument("--duration", type=float, help="seconds in the measured window (default 5)")
    loadgen.add_argument("--cpu", type=int, default=-1, help="pin the generator to this CPU")
    loadgen.add_argument("--watch-pid", type=int, default=0, help="read this server's CPU and RSS at the window's edges")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acceptloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check", help="run the conformance scenarios and print the matrix",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every scenario against every implementation and model (or the server at --target); "
                    "print the matrix, the disagreements, and why each bad cell is bad, with the command that "
                    "reruns it.",
        epilog="grades: OK; NON-STRICT (a SHOULD not met); FAILED (a MUST broken); ERROR (the kit failed, not the\n"
               "server); INFO (shown, not graded: a case that cannot apply, or a check on a basis the server does\n"
               "not follow); MISSING (not offered).\n"
               "bases: rfc (the RFC's service on the wire), protocol (docs/protocol.md's choices), contract (the\n"
               "server contract); a registry entry says which it follows (--follows for --target).\n\n"
               "exit status: 0 nothing FAILED or ERROR; 1 a cell FAILED (or NON-STRICT with --strict); 2 a bad\n"
               "selection or registry, before any cell ran; 3 a cell is ERROR and none FAILED; 130 interrupted\n"
               "(Ctrl-C, SIGTERM): the results so far are written and every server the kit started is stopped.")
    _add_selection(check)
    check.add_argument("--target", metavar="HOST:PORT",
                       help="grade the server already running there (no registry file); give its --service")
    check.add_argument("--follows", metavar="BASIS", nargs="+", choices=("rfc", "protocol", "contract"),
                       help="with --target: the bases it follows besides rfc")
    check.add_argument("--cell", metavar="ID", nargs="+", action="extend", dest="cells",
                       help="exactly these cells (impl-model-scenario, as --list prints them)")
    check.add_argument("--list", action="store_true", help="print the ids of the cells the selection would run, and stop")
    check.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first FAILED or ERROR cell")
    check.add_argument("--lf", "--last-failed", dest="last_failed", action="store_true",
                       help="run only the cells that FAILED or were ERROR in the last run (.acceptloop/last-check.json)")
    check.add_argument("--strict", action="store_true", help="a NON-STRICT cell (a SHOULD not met) counts as a failure")
    check.add_argument("-j", "--jobs", type=int, metavar="N", default=DEFAULT_JOBS,
                       help=f"lanes run side by side, one per implementation and model (default {DEFAULT_JOBS}; "
                            "1: one cell at a time)")
    check.add_argument("--json", metavar="FILE", type=Path, help="write the results (with provenance) as JSON")
    check.add_argument("--junit", metavar="FILE", type=Path, help="write the results as JUnit XML")
    check.add_argument("--quiet", action="store_true", help="no progress lines")

    gen = sub.add_parser("generate", help="render protocol.toml into the Python, C and PHP constants files")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 naming any stale file")

    report = sub.add_parser("report", help="write the comparison report: report/index.html and report/REPORT.md",
                            description="Read the results of `acceptloop check --json` (and the benchmark's, once "
                                        "there are any) and write index.html, one self-contained page, and "
                                        "REPORT.md; print index.html's path. Exit 2 when the results cannot be read.")
    report.add_argument("--results", metavar="FILE", type=Path,
                        help="the results of `acceptloop check --json` (default: results/check.json)")
    report.add_argument("--bench", metavar="FILE", type=Path,
                        help="the benchmark's results (default: results/bench.json when it exists)")
    report.add_argument("--out", metavar="DIR", type=Path, help="where to write the report (default: report/)")
    _add_bench_parser(sub)
    _add_loadgen_parser(sub)
    return parser


def cmd_check(args: argparse.Namespace) -> int:
    from acceptloop import provenance
    from acceptloop.suite import session

    if args.jobs < 1:
        print("acceptloop check: --jobs must be at least 1", file=sys.stderr)
        return 2
    if args.follows and not args.target:
        print("acceptloop check: --follows goes with --target (a registry entry says it with 'follows')",
              file=sys.stderr)
        return session.EXIT_SELECTION
    sel = session.Selection(implementations=args.implementations, impl=args.impl, model=args.model,
                            service=args.service, keyword=args.keyword, cells=args.cells, target=args.target,
                            follows=args.follows, last_failed=args.last_failed)
    return session.run(sel, json_path=args.json, junit=args.junit, quiet=args.quiet, list_only=args.list,
                       first_failure=args.exitfirst, strict=args.strict, provenance=provenance.collect,
                       jobs=args.jobs)


def cmd_generate(args: argparse.Namespace) -> int:
    from acceptloop import generate

    return generate.main(check=args.check)


def cmd_report(args: argparse.Namespace) -> int:
    import shlex

    from acceptloop.paths import REPORT
    from acceptloop.report import build, performance, walkthrough
    from acceptloop.suite.results import ResultsError

    results = args.results or build.DEFAULT_RESULTS
    command = ["acceptloop", "report"]
    for option, value in (("--results", args.results), ("--bench", args.bench), ("--out", args.out)):
        if value is not None:
            command += [option, str(value)]
    try:
        index = build.write_report(results, args.bench, args.out or REPORT, command=command)
    except (ResultsError, performance.BenchError) as e:
        hint = "" if results.exists() else f" (run `acceptloop check --json {shlex.quote(str(results))}` first)"
        print(f"acceptloop report: {e}{hint}", file=sys.stderr)
        return P.EXIT_USAGE
    except walkthrough.WalkthroughError as e:
        print(f"acceptloop report: {e}", file=sys.stderr)
        return P.EXIT_FAILURE
    except OSError as e:
        print(f"acceptloop report: {e.filename}: {e.strerror}", file=sys.stderr)
        return P.EXIT_FAILURE
    print(index)
    return P.EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from acceptloop import provenance
    from acceptloop.bench import plan as bench_plan, runner as bench_runner, summary
    from acceptloop.suite import results as results_io, session
    from acceptloop.suite.process import terminate_all
    from acceptloop.suite.registry import RegistryError

    profile = bench_plan.PROFILES[args.profile or "quick"]
    try:
        congestion.check_name(args.congestion_control)
    except congestion.CongestionError as e:
        print(f"acceptloop bench: {e}", file=sys.stderr)
        return P.EXIT_USAGE
    if args.rounds is not None and args.rounds < 1:
        print("acceptloop bench: --rounds must be at least 1", file=sys.stderr)
        return P.EXIT_USAGE
    scaling = None
    try:
        pins = bench_runner.pinning(*(None if text is None else bench_runner.parse_cpus(text)
                                      for text in (args.server_cpus, args.client_cpus)))
        sel = session.Selection(implementations=args.implementations, impl=args.impl)
        impls = session.implementations(sel, include_peers=True)
        if not args.impl:
            impls = bench_plan.measured_by_default(impls)
        floors = session.floors(sel)
        if profile is bench_plan.SCALING:
            plan, scaling = bench_plan.scaling_plan(impls, len(pins["server_cpus"]) or 1, args.keyword,
                                                    args.rounds, floors)
        else:
            plan = bench_plan.plan(impls, profile, args.model, args.keyword, args.rounds, floors)
    except (RegistryError, session.SelectionError, ValueError) as e:
        print(f"acceptloop bench: {e}", file=sys.stderr)
        return P.EXIT_USAGE
    unavailable = {i.name: i.unavailable() for i in [*impls, *floors] if i.unavailable()}
    plan.cells = [c for c in plan.cells if c.impl.name not in unavailable]
    for name, why in unavailable.items():
        print(f"acceptloop bench: {name} left out: {why}", file=sys.stderr)
    if all(c.impl.role == "floor" for c in plan.cells):
        print("acceptloop bench: nothing matches that selection", file=sys.stderr)
        return P.EXIT_USAGE
    previous = signal.signal(signal.SIGTERM, congestion.stop)
    try:
        with congestion.congestion_control(args.congestion_control) as cc:
            runs, fairness = bench_runner.run(plan, quiet=args.quiet, pins=pins)
    except congestion.CongestionError as e:
        print(f"acceptloop bench: {e}", file=sys.stderr)
        return P.EXIT_USAGE
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the clean-up is bounded: SIGTERM, then SIGKILL
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        terminate_all()
        print("acceptloop bench: interrupted: no results written; every server it started is stopped",
              file=sys.stderr)
        return session.EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    # fairness() read the algorithm from /proc inside the block: what was in effect, not what was asked.
    fairness["tcp_congestion_control_how"] = cc["how"]
    if scaling is not None:
        fairness["many workers"] = scaling["verdict"]
    measured = {c.impl.name: c.impl for c in plan.cells}       # the control twin included
    impl_docs = [results_io.describe_impl(i) | {"role": i.role} for i in measured.values()]
    doc = summary.document(plan, runs, fairness, provenance.collect(), impl_docs)
    doc["left_out"] = unavailable
    if scaling is not None:
        doc["scaling"] = scaling
        print(f"scaling: {scaling['verdict']}")
    results_io.write_json(args.json, doc)
    failed = [c["id"] for c in doc["cells"] if any(f.startswith("failed") for f in c["flags"])]
    for t in doc["targets"]:
        state = "MISSED" if t["state"] == "missed" else t["state"]
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        print(f"target {state:>12}: {t['target']}: {value}")
    print(f"bench: {len(doc['cells'])} cells, {len(runs)} runs; results: {args.json}")
    if failed:
        print(f"acceptloop bench: {len(failed)} cell(s) failed to run: {', '.join(failed[:5])}", file=sys.stderr)
        return P.EXIT_FAILURE
    return P.EXIT_OK


def cmd_loadgen(args: argparse.Namespace) -> int:
    import json

    from acceptloop.bench.loadgen import run_load

    try:
        result = run_load(args.host, args.port, args.mode, args.connections, message_size=args.size,
                          warmup=args.warmup, duration=args.duration, cpu=args.cpu, watch_pid=args.watch_pid,
                          io=args.io)
    except ValueError as e:
        print(f"acceptloop loadgen: {e}", file=sys.stderr)
        return P.EXIT_USAGE
    except OSError as e:
        print(f"acceptloop loadgen: {e.strerror or e}", file=sys.stderr)
        return P.EXIT_FAILURE
    print(json.dumps(result, indent=1))
    return P.EXIT_OK


COMMANDS = {"check": cmd_check, "generate": cmd_generate, "report": cmd_report, "bench": cmd_bench,
            "loadgen": cmd_loadgen}


def main(argv: Sequence[str] | None = None) -> int:
    from acceptloop.suite.process import raise_fd_limit

    args = build_parser().parse_args(argv)
    raise_fd_limit()
    return COMMANDS[args.command](args)
