#!/usr/bin/env python3
"""Echo plugin for Rosey: `!echo hi` -> `alice said: hi`."""
import json
import sys

def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()  # the host only sees flushed lines

send({"type": "hello", "version": "1.0.0", "commands": ["echo"]})
for line in sys.stdin:  # the loop ends when the host closes stdin
    try:
        msg = json.loads(line)
    except ValueError:
        print(f"ignoring bad line: {line!r}", file=sys.stderr)  # goes to the host log
        continue
    if msg.get("type") == "command" and msg.get("command") == "echo":
        send({"type": "reply", "id": msg["id"], "text": f"{msg['user']} said: {msg['args']}"})
