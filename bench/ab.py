#!/usr/bin/env python3
"""A/B comparison of two builds of one weir bench binary on a noisy machine.

Runs A and B alternately (A B A B ...), each with the same bench flags and
--json, and compares each weir result as a ratio to the baseline loop of the
same process run (so machine noise that hits a whole run cancels out). Prints,
per variant and parallelism, the median ratio of A and of B and how much
slower B is.

Example (what the metrics cost W0: the tree before and after, same flags):

  bench/ab.py --a /tmp/before/bench/weir-bench-w0 --b build/release/bench/weir-bench-w0 \
      --rounds 5 -- --events=20000000 --repeat=3

--json=FILE writes the comparison as JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(binary, flags, path):
    subprocess.run([binary, *flags, f"--json={path}"], check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def ratios(result, metric):
    """{(variant, parallelism): weir's `metric` / the baseline's} of one run."""
    baseline = [r for r in result["results"] if r["name"] == "baseline"]
    if not baseline or metric not in baseline[0]:
        sys.exit(f"the bench wrote no baseline result with {metric}")
    base = baseline[0][metric]
    return {(r["variant"], r["parallelism"]): r[metric] / base
            for r in result["results"] if r["name"] != "baseline"}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="the reference binary (before)")
    parser.add_argument("--b", required=True, help="the binary under test (after)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the comparison here")
    parser.add_argument("--metric", default="events_per_sec",
                        help="the result fields to compare, comma-separated "
                             "(e.g. events_per_sec,events_per_cpu_sec)")
    parser.add_argument("flags", nargs="*", help="bench flags (after --)")
    args = parser.parse_args()

    metrics = args.metric.split(",")
    samples = {"a": {}, "b": {}}
    workload = ""
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for side, binary in (("a", args.a), ("b", args.b)):
                result = run(binary, args.flags, os.path.join(scratch, f"{side}.json"))
                workload = result.get("workload", workload)
                for metric in metrics:
                    run_ratios = ratios(result, metric)
                    for (variant, parallelism), ratio in run_ratios.items():
                        samples[side].setdefault((metric, variant, parallelism), []).append(ratio)
                    print(f"round {round_index + 1} {side} {metric}: " +
                          ", ".join(f"{v} p={p} {r:.3f}x"
                                    for (v, p), r in sorted(run_ratios.items())), flush=True)

    rows = []
    print("\nmedian ratio to the baseline loop of the same run (higher is faster):")
    for key in sorted(set(samples["a"]) & set(samples["b"])):
        metric, variant, parallelism = key
        a = statistics.median(samples["a"][key])
        b = statistics.median(samples["b"][key])
        cost = (a - b) / a * 100
        rows.append({"metric": metric, "variant": variant, "parallelism": parallelism, "a": a,
                     "b": b, "b_slower_percent": cost, "rounds": args.rounds})
        print(f"  {metric:<20} {variant:<28} p={parallelism}  A {a:.3f}x  B {b:.3f}x  "
              f"B is {cost:+.1f}% slower")
    for key in sorted(set(samples["b"]) - set(samples["a"])):
        metric, variant, parallelism = key
        b = statistics.median(samples["b"][key])
        print(f"  {metric:<20} {variant:<28} p={parallelism}  B only {b:.3f}x")
        rows.append({"metric": metric, "variant": variant, "parallelism": parallelism, "b": b,
                     "rounds": args.rounds})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workload": workload, "a": args.a, "b": args.b, "flags": args.flags,
                       "metric": args.metric, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
