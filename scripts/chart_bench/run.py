#!/usr/bin/env python3
"""Chart drawing benchmark: our own drawing (the functions of static/dashboard.js) against uPlot,
in headless Chromium driven by chromedriver, at 1,000 plugins (2,000 sparklines) and on a plugin
page (4 charts of 720 points). Prints the medians of RUNS fresh browser runs as JSON.

    scripts/chart_bench/run.py UPLOT_DIST_DIR [RUNS]

UPLOT_DIST_DIR holds uPlot.iife.min.js and uPlot.min.css (`npm pack uplot`, then unpack:
package/dist). Needs chromium and chromedriver (Debian's packages). docs/performance.md has the
figures and the method.
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD_JS = os.path.join(HERE, "..", "..", "static", "dashboard.js")
# What the drawing needs from static/dashboard.js, cut out of its closure as the unit test does.
FUNCTIONS = ["setText", "marked", "bound", "polylinePoints", "draw", "drawSparks", "niceCeiling", "axisValue", "drawChart"]
CONSTANTS = ["SPARK_SAMPLES", "SPARK_SERIES", "CHART_SERIES", "SVG", "boundCache", "clock"]


def own_js():
    source = open(DASHBOARD_JS).read()
    parts = []
    for name in CONSTANTS:
        # The declaration's line and its continuation lines (indented deeper).
        match = re.search(r"^  const " + name + r" = [^\n]*\n(?:    [^\n]*\n)*", source, re.M)
        parts.append(match.group(0))
    for name in FUNCTIONS:
        start = source.index("  function " + name + "(")
        end = source.index("\n  }\n", start) + len("\n  }\n")
        parts.append(source[start:end])
    return "".join(parts)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())["value"]


def one_run(page_dir):
    port = free_port()
    profile = tempfile.mkdtemp()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if call("GET", base + "/status")["ready"]:
                    break
            except OSError:
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--allow-file-access-from-files", "--window-size=1280,1000", f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"args": args}}}}
        session = call("POST", base + "/session", caps)["sessionId"]
        s = f"{base}/session/{session}"
        call("POST", s + "/url", {"url": "file://" + os.path.join(page_dir, "bench.html")})
        for _ in range(600):
            results = call("POST", s + "/execute/sync", {"script": "return window.results || null;", "args": []})
            if results:
                call("DELETE", s)
                return results
            time.sleep(0.5)
        raise SystemExit("the benchmark page gave no results")
    finally:
        driver.terminate()
        driver.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    uplot_dist, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    page_dir = tempfile.mkdtemp()
    shutil.copy(os.path.join(HERE, "bench.html"), page_dir)
    for name in ["uPlot.iife.min.js", "uPlot.min.css"]:
        shutil.copy(os.path.join(uplot_dist, name), page_dir)
    with open(os.path.join(page_dir, "own.js"), "w") as f:
        f.write(own_js())
    all_runs = [one_run(page_dir) for _ in range(runs)]
    if any("error" in r for r in all_runs):
        raise SystemExit(json.dumps(all_runs))
    summary = {}
    for key, value in all_runs[0].items():
        if isinstance(value, dict):
            summary[key] = {k: round(statistics.median(r[key][k] for r in all_runs), 2) for k in value}
        else:
            summary[key] = round(statistics.median(r[key] for r in all_runs), 2)
    print(json.dumps({"runs": runs, "medians": summary, "each": all_runs}, indent=1))
    shutil.rmtree(page_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
