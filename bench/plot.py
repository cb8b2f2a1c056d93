#!/usr/bin/env python3
"""Renders bench results (the --json files of the weir-bench-* binaries, and
bench/ab.py comparisons) into PNG bar charts with gnuplot (Debian's
gnuplot-nox, installed by .ci/setup).

  bench/plot.py --out docs/img w0.json w1.json micro.json ab-w0.json

One chart per file, named after the workload (w0.png, ...; an A/B comparison
becomes <its file name>.png): events/s per contender, the baseline loop in
grey, each bar labelled with its value and its ratio to the baseline.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

WEIR_COLOR = "0x2f6fdf"
BASELINE_COLOR = "0x9aa4af"
AFTER_COLOR = "0xe07b24"


def human(value):
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gnuplot(script, rows, out):
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.join(scratch, "data.tsv")
        with open(data, "w") as f:
            for row in rows:
                f.write("\t".join(quote(str(c)) if isinstance(c, str) else repr(c) for c in row))
                f.write("\n")
        subprocess.run(["gnuplot"], input=script.replace("DATA", quote(data)).replace(
            "OUT", quote(out)), text=True, check=True)


HEADER = """
set terminal pngcairo size {width},{height} font "DejaVu Sans,10" background rgb "white" noenhanced
set output OUT
set rmargin {rmargin}
set title {title} font "DejaVu Sans,12"
set style fill solid 0.85 border -1
set boxwidth 0.7
set grid ytics lc rgb "#e6e9ed"
set border 3
set xtics nomirror rotate by -25 left
set ytics nomirror
set key off
set datafile separator "\\t"
set format y "%.0s%c"
"""


def RightMargin(rows):
    """Room (in characters) for the last, rotated x label."""
    return max(8, int(len(rows[-1][0]) * 0.8) - 6)


def plot_results(doc, out):
    """A weir-bench-* JSON: events/s of each result."""
    results = doc["results"]
    baselines = [r for r in results if r["name"] == "baseline"]

    def baseline_of(result):
        # W1 has a baseline per variant family ("tumbling" for "tumbling-memory").
        for b in baselines:
            if result["variant"] == b["variant"] or result["variant"].startswith(b["variant"] + "-"):
                return b["events_per_sec"]
        return baselines[0]["events_per_sec"] if baselines else None

    several_parallelisms = len({r["parallelism"] for r in results}) > 1
    rows = []
    for r in results:
        label = r["variant"] + (" (baseline)" if r["name"] == "baseline" else "")
        if r["name"] != "baseline" and several_parallelisms:
            label += f' p={r["parallelism"]}'
        value = r["events_per_sec"]
        baseline = baseline_of(r)
        note = human(value) + (f" ({value / baseline:.2f}x)" if baseline and r["name"] != "baseline"
                               else "")
        color = int(BASELINE_COLOR if r["name"] == "baseline" else WEIR_COLOR, 16)
        rows.append((label, value, color, note))
    top = max(r[1] for r in rows) * 1.18
    events = doc.get("events", 0)
    title = f'{doc["workload"]}: ' + (f"{events:,} events, " if events else "") + \
        "events/s (higher is better)"
    script = HEADER.format(width=max(720, 130 * len(rows) + 260), height=480,
                           rmargin=RightMargin(rows), title=quote(title)) + f"""
set yrange [0:{top}]
set ylabel "events/s"
plot DATA using 0:2:3:xtic(1) with boxes lc rgb variable, \\
     DATA using 0:2:4 with labels offset 0,0.8 font "DejaVu Sans,9"
"""
    gnuplot(script, rows, out)


def plot_ab(doc, out):
    """A bench/ab.py comparison: median ratio to the baseline loop, before and after."""
    rows = []
    index = 0
    for r in doc["results"]:
        label = f'{r["variant"]} p={r["parallelism"]}'
        if r.get("metric", "events_per_sec") != "events_per_sec":
            label += " (per CPU-s)"
        if "a" in r:
            rows.append((f"{label} before", r["a"], int(WEIR_COLOR, 16), f'{r["a"]:.3f}x', index))
            rows.append((f"{label} after", r["b"], int(AFTER_COLOR, 16),
                         f'{r["b"]:.3f}x ({-r["b_slower_percent"]:+.1f}%)', index + 1))
            index += 3
        else:
            rows.append((label, r["b"], int(AFTER_COLOR, 16), f'{r["b"]:.3f}x', index))
            index += 2
    top = max(r[1] for r in rows) * 1.2
    workload = doc.get("workload", os.path.basename(doc["b"]))
    script = HEADER.format(width=max(720, 100 * len(rows) + 260), height=480,
                           rmargin=RightMargin(rows),
                           title=quote(f'{workload} before (blue) and after (orange): median of '
                                       f'{doc["results"][0]["rounds"]} alternating runs')) + f"""
set yrange [0:{top}]
set format y "%.2f"
set ylabel "events/s relative to the baseline loop"
plot DATA using 5:2:3:xtic(1) with boxes lc rgb variable, \\
     DATA using 5:2:4 with labels offset 0,0.8 font "DejaVu Sans,9"
"""
    gnuplot(script, rows, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".", help="directory for the PNG files")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    if shutil.which("gnuplot") is None:
        sys.exit("gnuplot is not installed (Debian: gnuplot-nox; .ci/setup installs it)")
    os.makedirs(args.out, exist_ok=True)
    for path in args.files:
        with open(path) as f:
            doc = json.load(f)
        if "a" in doc and "b" in doc:
            name = os.path.splitext(os.path.basename(path))[0]
            plot = plot_ab
        elif "workload" in doc:
            name = doc["workload"].lower()
            plot = plot_results
        else:
            sys.exit(f"{path}: neither a bench result nor a bench/ab.py comparison")
        out = os.path.join(args.out, name + ".png")
        plot(doc, out)
        print(out)


if __name__ == "__main__":
    main()
