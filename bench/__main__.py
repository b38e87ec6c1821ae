"""``python -m bench [--smoke] [--only N,...] [--out PATH]``: run the benchmarks, write RESULTS.md.

``python -m bench --comfyui-url URL --comfyui-pid PID`` measures a real local ComfyUI instead (see
bench/real_comfyui.py) and replaces only that version's block in RESULTS.md.

The full run (default) produces the numbers that go into ``bench/RESULTS.md`` (target: under 20
minutes on a 2-core machine); ``--smoke`` runs every section for a few seconds so CI keeps the
harness working, without thresholds. A section that fails is reported as failed and the others
still run: one broken dependency must not hide six working measurements.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from .common import SectionResult, ensure_paths, machine_description

ensure_paths()

SECTIONS: list[tuple[str, str, str]] = [
    ("1", "bench.s1_cost", "1. Cost to ComfyUI"),
    ("2", "bench.s2_latency", "2. Detection latency"),
    ("3", "bench.s3_completeness", "3. Completeness under load"),
    ("4", "bench.s4_render", "4. /metrics render time and size"),
    ("5", "bench.s5_ingest", "5. Ingestion throughput"),
    ("6", "bench.s6_memory", "6. Memory"),
    ("7", "bench.s7_relay", "7. Relay burst"),
    ("8", "bench.s8_fleet", "8. Fleet"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per section, for CI")
    parser.add_argument("--only", default="", help="comma-separated section numbers, e.g. 1,4")
    parser.add_argument(
        "--out",
        default=None,
        help="RESULTS.md path (default bench/RESULTS.md; bench/RESULTS.smoke.md with --smoke)",
    )
    parser.add_argument("--comfyui-url", help="a real local ComfyUI (with the test node) to measure instead")
    parser.add_argument("--comfyui-pid", type=int, help="its process id (its CPU and bytes come from /proc)")
    parser.add_argument("--history", type=int, default=1000, help="history entries during the real run")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per window in the real run")
    parser.add_argument("--reps", type=int, default=2, help="repetitions in the real run")
    args = parser.parse_args(argv)
    if args.comfyui_url or args.comfyui_pid:
        return _real(args, parser)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    here = Path(__file__).resolve().parent
    out = Path(args.out) if args.out else here / ("RESULTS.smoke.md" if args.smoke else "RESULTS.md")

    from .report import write_report

    machine = machine_description()
    started = time.monotonic()
    results: list[SectionResult] = []
    for number, module_name, title in SECTIONS:
        if only and number not in only:
            continue
        print(f"== {title}{' (smoke)' if args.smoke else ''}", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(module_name)
            result: SectionResult = module.run(smoke=args.smoke, log=lambda m: print(m, flush=True))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # also pytest's skip/fail outcomes raised by the test helpers
            traceback.print_exc()
            result = SectionResult(
                module_name.rsplit(".", 1)[-1], title, error=f"{type(exc).__name__}: {exc}"
            )
        result.seconds = time.monotonic() - t0
        print(f"   {result.seconds:.1f} s{' FAILED: ' + result.error if result.error else ''}", flush=True)
        results.append(result)
    total = time.monotonic() - started
    write_report(out, results, machine, smoke=args.smoke, total_seconds=total, argv=sys.argv[1:])
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "machine": machine,
                "smoke": args.smoke,
                "seconds": total,
                "sections": [r.to_json() for r in results],
            },
            indent=1,
            default=str,
        )
    )
    print(f"wrote {out} ({total:.0f} s)")
    return 1 if any(r.error for r in results) else 0


def _real(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The real-ComfyUI run: one section, written into its own block of RESULTS.md and a JSON file."""
    if not (args.comfyui_url and args.comfyui_pid):
        parser.error("--comfyui-url and --comfyui-pid go together")
    from .real_comfyui import SMOKE, Profile, run_real, write_section

    prof = SMOKE if args.smoke else Profile(history=args.history, window_s=args.window, reps=args.reps)
    started = time.monotonic()
    result = run_real(args.comfyui_url, args.comfyui_pid, log=lambda m: print(m, flush=True), profile=prof)
    result.seconds = time.monotonic() - started
    version = result.title.rsplit(" ", 1)[-1]
    here = Path(__file__).resolve().parent
    out = Path(args.out) if args.out else here / ("RESULTS.smoke.md" if args.smoke else "RESULTS.md")
    m = machine_description()
    machine = ", ".join(str(m[k]) for k in ("cpu", "cores") if k in m) or "this machine"
    write_section(out, result, version, sys.argv[1:], machine)
    js = out.with_name(out.stem + ".real.json")
    data = json.loads(js.read_text()) if js.exists() else {}
    data[version] = result.to_json()
    js.write_text(json.dumps(data, indent=1, default=str))
    print(f"wrote ComfyUI {version} block into {out} and {js} ({result.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
