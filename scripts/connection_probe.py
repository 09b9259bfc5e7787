#!/usr/bin/env python3
"""Hostile-connection probes against a running rosey dashboard (loopback only).

The figures in docs/performance.md ("Connections under abuse") come from these runs:

  connection_probe.py heads --port P --pid PID [--clients 1000] [--bytes 300000]
      N connections each send an unfinished request head of BYTES; prints the host's VmRSS
      before and while they are held, and how the server answered (431, closed, nothing).
  connection_probe.py churn --port P --pid PID [--clients 2000] [--rounds 20]
      ROUNDS times: N /events clients connect, wait for their first event, disconnect.
      Prints VmRSS before, after each round, and 15 s after the last.
  connection_probe.py hold --port P [--clients 1100]
      N /events clients connect and stay; counts 200 / 503 / no answer, then asks /health.
  connection_probe.py idle --port P [--preface h1|h2|none] [--limit 90]
      One connection sends nothing (or only the h2c preface): seconds until the server closes.

Standard library only; each probe needs about N descriptors (ulimit -n).
"""

import argparse
import selectors
import socket
import sys
import time

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fd_count(pid):
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def pump(socks, outgoing, until, stop_when=None):
    """Send what is queued, read what comes; returns {sock: bytes received, or None if closed}."""
    received = {s: b"" for s in socks}
    closed = set()
    selector = selectors.DefaultSelector()
    for s in socks:
        selector.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if outgoing.get(s) else 0))
    while time.monotonic() < until:
        if stop_when and stop_when(received, closed):
            break
        for key, events in selector.select(timeout=0.2):
            s = key.fileobj
            if events & selectors.EVENT_WRITE and outgoing.get(s):
                try:
                    sent = s.send(outgoing[s][:65536])
                    outgoing[s] = outgoing[s][sent:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    outgoing[s] = b""
                if not outgoing[s]:
                    selector.modify(s, selectors.EVENT_READ)
            if events & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    received[s] += data
                else:
                    closed.add(s)
                    selector.unregister(s)
    selector.close()
    return received, closed


def heads(args):
    before = vm_rss_kib(args.pid)
    socks, outgoing = [], {}
    for _ in range(args.clients):
        s = connect(args.port)
        socks.append(s)
        outgoing[s] = b"GET /api/metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * args.bytes
    received, closed = pump(socks, outgoing, time.monotonic() + args.seconds)
    held = vm_rss_kib(args.pid)
    answered_431 = sum(1 for s in socks if received[s].startswith(b"HTTP/1.1 431"))
    unsent = sum(len(outgoing[s]) for s in socks)
    print(f"HEADS clients={args.clients} bytes_each={args.bytes} rss_before_kib={before} "
          f"rss_held_kib={held} answered_431={answered_431} closed_by_server={len(closed)} "
          f"bytes_not_accepted={unsent}")
    for s in socks:
        s.close()
    time.sleep(3)
    print(f"HEADS rss_after_close_kib={vm_rss_kib(args.pid)}")


def open_events(port, count):
    socks, outgoing = [], {}
    request = f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for _ in range(count):
        s = connect(port)
        socks.append(s)
        # Sent at once, like a browser: a refused client gets its 503 and frees its connection.
        s.send(request)
        outgoing[s] = b""
    return socks, outgoing


def first_event_or_refusal(received, closed):
    return all(b"event: snapshot" in r or r.startswith(b"HTTP/1.1 503") or s in closed
               for s, r in received.items())


def churn(args):
    print(f"CHURN rss_start_kib={vm_rss_kib(args.pid)} fds={fd_count(args.pid)}")
    for round_no in range(1, args.rounds + 1):
        socks, outgoing = open_events(args.port, args.clients)
        received, closed = pump(socks, outgoing, time.monotonic() + 60, first_event_or_refusal)
        ok = sum(1 for r in received.values() if b"event: snapshot" in r)
        for s in socks:
            s.close()
        time.sleep(1)
        print(f"CHURN round={round_no} streams={ok} rss_kib={vm_rss_kib(args.pid)} fds={fd_count(args.pid)}")
    time.sleep(15)
    print(f"CHURN rss_15s_after_kib={vm_rss_kib(args.pid)} fds={fd_count(args.pid)}")


def health(port, timeout):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            return answer.split(b"\r\n", 1)[0].decode() or "closed without an answer"
    except OSError as e:
        return f"no answer ({e})"


def hold(args):
    socks, outgoing = open_events(args.port, args.clients)
    received, closed = pump(socks, outgoing, time.monotonic() + args.seconds, first_event_or_refusal)
    streams = sum(1 for r in received.values() if b"event: snapshot" in r)
    refused = sum(1 for r in received.values() if r.startswith(b"HTTP/1.1 503"))
    silent = sum(1 for s, r in received.items() if not r and s not in closed)
    print(f"HOLD clients={args.clients} streams={streams} refused_503={refused} "
          f"closed_silently={sum(1 for s in closed if not received[s])} no_answer={silent}")
    print(f"HOLD health_while_held: {health(args.port, 5)}")
    for s in socks:
        s.close()


def idle(args):
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", args.port))
    if args.preface == "h2":
        s.sendall(H2_PREFACE)
    elif args.preface == "h1":
        s.sendall(b"GET /health HTTP/1.1\r\n")
    s.settimeout(args.limit)
    try:
        while s.recv(4096):
            pass
        print(f"IDLE preface={args.preface} closed_after_s={time.monotonic() - start:.1f}")
    except socket.timeout:
        print(f"IDLE preface={args.preface} still_open_after_s={args.limit}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    for name, clients in (("heads", 1000), ("churn", 2000), ("hold", 1100)):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--clients", type=int, default=clients)
        if name != "hold":
            p.add_argument("--pid", type=int, required=True)
    sub.choices["heads"].add_argument("--bytes", type=int, default=300_000)
    sub.choices["heads"].add_argument("--seconds", type=float, default=10)
    sub.choices["churn"].add_argument("--rounds", type=int, default=20)
    sub.choices["hold"].add_argument("--seconds", type=float, default=30)
    p = sub.add_parser("idle")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--preface", choices=["none", "h1", "h2"], default="none")
    p.add_argument("--limit", type=float, default=90)
    args = parser.parse_args()
    {"heads": heads, "churn": churn, "hold": hold, "idle": idle}[args.probe](args)


if __name__ == "__main__":
    sys.exit(main())
