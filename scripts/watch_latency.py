#!/usr/bin/env python3
"""Reload on change (issue 21, item 6): how long from an editor-like save (5 writes of a
watched file in a row) to the finished reload, and how many reloads it made. Figures and
method: docs/performance.md, "Reload on change".

    scripts/watch_latency.py [ROSEY] [SAVES]    # default target/debug/rosey, 10 saves

Starts ROSEY with one Python plugin (tests/fixtures/versioned.py) watching a temporary
directory, dashboard on 127.0.0.1 and a free port; each save writes the plugin's VERSION file
five times, then the script polls /api/plugin/versioned until the reload log grows and waits
a second before the next save. Prints the median, fastest and slowest time and the reload
log's length at the end (one reload per save is right)."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/debug/rosey")
saves = int(sys.argv[2]) if len(sys.argv) > 2 else 10
work = tempfile.mkdtemp()
watched = os.path.join(work, "plugin")
os.makedirs(watched)
version_file = os.path.join(watched, "VERSION")
with open(version_file, "w") as f:
    f.write("1")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
config = {
    "dashboard": {"host": "127.0.0.1", "port": port},
    "chat": {"console": False},
    "plugins": [{"name": "versioned", "watch": [watched],
                 "command": ["python3", os.path.join(root, "tests/fixtures/versioned.py"), version_file]}],
}
config_path = os.path.join(work, "rosey.json")
with open(config_path, "w") as f:
    json.dump(config, f)
bot = subprocess.Popen([exe, "--config", config_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def plugin():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/plugin/versioned") as reply:
        return json.load(reply)


try:
    deadline = time.monotonic() + 20
    while True:
        try:
            if plugin()["version"] == "1":
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit("the plugin did not start within 20 s")
        time.sleep(0.05)
    times = []
    for save in range(2, saves + 2):
        before = len(plugin()["reload_log"])
        start = time.monotonic()
        for _ in range(5):
            with open(version_file, "w") as f:
                f.write(str(save))
        while len(plugin()["reload_log"]) == before:
            time.sleep(0.01)
        times.append(time.monotonic() - start)
        time.sleep(1)
    reloads = len(plugin()["reload_log"])
finally:
    bot.terminate()
    bot.wait()
times.sort()
print(f"{saves} saves of 5 writes each: save to reloaded median {times[len(times) // 2]:.2f} s, "
      f"fastest {times[0]:.2f} s, slowest {times[-1]:.2f} s; reload log {reloads} (one per save: {saves})")
