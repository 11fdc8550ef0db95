#!/usr/bin/env python3
"""A soak of one host (#21): mixed traffic on loopback for a while, bounded in
rate and time, reporting memory over time, error counts and lost writes.

    python3 bench/soak.py [--minutes 30] [--rate 40] [--data-dir DIR] [--guards]

Builds and starts the release host (`ramanujan up`, replicas and the timeline
kept in a temporary data directory unless --data-dir), then, for --minutes,
sends about --rate requests a second, drawn in turn from: saturations of random
expressions, CRDT merges (counters, texts), text edits, submissions to the
agents (from a pool of SOAK_DISTINCT=100 expressions: replicas are grow-only,
so each distinct expression adds for good), status and submission reads,
timeline queries, and every 200th a rule-book addition; and
keeps one dashboard stream (`/api/metrics/stream`) open throughout. Every 10 s
it samples the host's resident memory (/proc/PID/status). At the end it checks
that every acknowledged write is still there: each accepted submission answers
on `/agents/submissions/{id}`, each added rule is in `/2tdx/rules`.

With --guards the host runs as an exposed one would: API keys (every request
carries the write key, the stream included) and a per-client rate limit set
well above --rate (so a 429 would be a finding, and counts as a failure).

Verdicts: RSS after warm-up (the first fifth of the run) stays within 10 % of
its value then; no 5xx; no lost acknowledged write. Standard library only.
"""

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# SOAK_KINDS (comma-separated) and SOAK_RULE_EVERY narrow the mix, to find
# what a finding comes from.
KINDS = os.environ.get("SOAK_KINDS", "saturate,saturate,merge,text,submit,submit,read,read,timeline").split(",")
RULE_EVERY = int(os.environ.get("SOAK_RULE_EVERY", "200"))
# Distinct expressions submitted to the agents (see `Soak.one`).
DISTINCT = int(os.environ.get("SOAK_DISTINCT", "100"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The write key every request carries with --guards (None: the host is open).
KEY = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, method, path, body=None, timeout=30):
    """(status, parsed JSON or None); status 0 when the host did not answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if KEY:
        req.add_header("authorization", f"Bearer {KEY}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None
    except (urllib.error.URLError, TimeoutError, ConnectionError, socket.timeout):
        return 0, None


def patient(base, method, path):
    """`request`, waiting out the rate limit (429) as a well-behaved client
    does: the final check reads every write back as fast as it can."""
    for _ in range(120):
        status, body = request(base, method, path)
        if status != 429:
            return status, body
        time.sleep(1)
    return status, body


def random_expr(rng, depth):
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(["a", "b", "c", "x", "y", str(rng.randint(0, 9))])
    op = rng.choice(["+", "*", "-"])
    return f"({op} {random_expr(rng, depth - 1)} {random_expr(rng, depth - 1)})"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, base, seed):
        self.base = base
        self.rng = random.Random(seed)
        self.counts = {}
        self.server_errors = []
        self.refused = []
        self.unanswered = 0
        self.submissions = []
        self.rules = []
        self.texts = []
        self.n = 0
        self.pool = [random_expr(self.rng, 3) for _ in range(DISTINCT)]

    def note(self, kind, status, answer):
        key = (kind, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        if status == 0:
            self.unanswered += 1
        elif status >= 500:
            self.server_errors.append((kind, status, answer))
        elif status in (401, 403, 429):
            # Every request carries a write key, within the rate limit.
            self.refused.append((kind, status, answer))

    def one(self):
        """One request of the mix."""
        rng = self.rng
        self.n += 1
        # A rule-book addition now and then (each reaches every agent, which
        # takes up its finished submissions again); the rest drawn in turn.
        kind = "rule" if self.n % RULE_EVERY == 0 else rng.choice(KINDS)
        if kind == "saturate":
            status, answer = request(self.base, "POST", "/egraph/saturate", {"expression": random_expr(rng, 3)})
        elif kind == "merge":
            states = [{"inner": {"dots": {a: rng.randint(1, 10**6)}}} for a in ("p", "q")]
            status, answer = request(self.base, "POST", "/crdt/merge", {"crdt_type": "GCounter", "states": states})
        elif kind == "text":
            body = {
                "crdt_type": "TextCRDT",
                "actor": str(rng.randint(1, 50)),
                "ops": [{"op": "insert", "index": 0, "text": f"soak {self.n} "}],
            }
            if self.texts:
                body["state"] = rng.choice(self.texts)
            status, answer = request(self.base, "POST", "/crdt/apply", body)
            if status == 200 and answer and "state" in answer:
                # A handful of documents, each growing a little.
                if len(self.texts) < 8:
                    self.texts.append(answer["state"])
                else:
                    self.texts[rng.randrange(8)] = answer["state"]
        elif kind == "submit":
            # From a fixed pool: the replicas are grow-only (a CRDT), so every
            # distinct expression adds for good (about 1,000 facts per replica
            # for a random depth-3 one); a pool keeps what a long run adds bounded.
            expression = self.pool[rng.randrange(len(self.pool))]
            status, answer = request(self.base, "POST", "/agents/submit", {"expression": expression})
            if status == 202 and answer and "id" in answer:
                self.submissions.append(answer["id"])
        elif kind == "read":
            if self.submissions and rng.random() < 0.5:
                status, answer = request(self.base, "GET", f"/agents/submissions/{rng.choice(self.submissions)}")
            else:
                status, answer = request(self.base, "GET", "/agents/status")
        elif kind == "timeline":
            status, answer = request(self.base, "GET", "/timeline/query?limit=50")
        else:
            k = self.n
            spec = {"name": f"soak-{k}", "lhs": f"(+ ?a {k})", "rhs": f"(+ {k} ?a)", "color": "RED"}
            status, answer = request(self.base, "POST", "/2tdx/rules", {"rules": [spec]})
            if status == 200 and answer:
                self.rules.extend(answer.get("added", []))
        self.note(kind, status, answer)


def stream_reader(base, stop, events):
    """Keeps the dashboard stream open, counting its updates, reopening it if it ends."""
    while not stop.is_set():
        try:
            req = urllib.request.Request(base + "/api/metrics/stream")
            if KEY:
                req.add_header("authorization", f"Bearer {KEY}")
            with urllib.request.urlopen(req, timeout=30) as resp:
                for line in resp:
                    if stop.is_set():
                        return
                    if line.startswith(b"data:"):
                        events[0] += 1
        except Exception:
            time.sleep(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=40, help="requests a second, at most")
    parser.add_argument("--data-dir", help="keep the host's data here (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--guards", action="store_true", help="API keys and a rate limit on")
    args = parser.parse_args()
    guards = []
    if args.guards:
        global KEY
        KEY = "soak-write-key-0123456789abcdef"
        burst = int(args.rate * 10)
        guards = ["--api-keys", f"write:{KEY},read:soak-read-key-0123456789abcdef",
                  "--rate-limit", str(int(args.rate * 5)), "--rate-limit-burst", str(burst)]

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ramanujan"], cwd=ROOT, check=True)
    data = args.data_dir or tempfile.mkdtemp(prefix="ramanujan-soak-")
    port = free_port()
    host = subprocess.Popen(
        [os.path.join(target, "release", "ramanujan"), "up", "--port", str(port), "--data-dir", data, *guards],
        env={**os.environ, "LOG_LEVEL": "warn"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        line = host.stdout.readline().decode()
        if not re.search(r"http://", line):
            sys.exit(f"the host did not start: {line!r}")
        soak = Soak(base, args.seed)
        stop, events = threading.Event(), [0]
        reader = threading.Thread(target=stream_reader, args=(base, stop, events), daemon=True)
        reader.start()

        started = time.monotonic()
        duration = args.minutes * 60
        warm_up = duration / 5
        samples, next_sample = [], started
        interval = 1.0 / args.rate
        next_request = started
        print(f"soak: {args.minutes} min at <= {args.rate} req/s against {base}, data in {data}"
              f"{', guards on' if args.guards else ''}", flush=True)
        while (now := time.monotonic()) - started < duration:
            if now >= next_sample:
                samples.append((now - started, rss_kib(host.pid)))
                t, kib = samples[-1]
                print(f"  t={t:7.0f} s  rss={kib / 1024:7.1f} MiB  requests={soak.n}  5xx={len(soak.server_errors)}"
                      f"  unanswered={soak.unanswered}  stream updates={events[0]}", flush=True)
                next_sample += 10
            soak.one()
            next_request += interval
            pause = next_request - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        stop.set()

        # Every acknowledged write is still there.
        lost_submissions = [i for i in soak.submissions if patient(base, "GET", f"/agents/submissions/{i}")[0] != 200]
        status, book = patient(base, "GET", "/2tdx/rules")
        held = {r["key"] for r in (book or {}).get("rules", [])}
        lost_rules = [k for k in soak.rules if k not in held]

        after = [kib for t, kib in samples if t >= warm_up]
        at_warm_up = after[0] if after else 0
        worst = max(after) if after else 0
        flat = at_warm_up > 0 and worst <= 1.10 * at_warm_up
        print("\nrequests by kind and status:")
        for (kind, code), n in sorted(soak.counts.items()):
            print(f"  {kind:9} {code}: {n}")
        print(f"\nRSS after warm-up ({warm_up:.0f} s): {at_warm_up / 1024:.1f} MiB; "
              f"highest after: {worst / 1024:.1f} MiB; last: {samples[-1][1] / 1024:.1f} MiB -> "
              f"{'flat within 10 %' if flat else 'NOT flat within 10 %'}")
        print(f"5xx: {len(soak.server_errors)}; unanswered: {soak.unanswered}; "
              f"refused for a key or the rate limit (401/403/429): {len(soak.refused)}")
        for e in soak.refused[:5]:
            print(f"  {e}")
        for e in soak.server_errors[:5]:
            print(f"  {e}")
        print(f"acknowledged submissions: {len(soak.submissions)}, lost: {len(lost_submissions)}; "
              f"added rules: {len(soak.rules)}, lost: {len(lost_rules)}; dashboard stream updates: {events[0]}")
        ok = flat and not soak.server_errors and not soak.refused and not lost_submissions and not lost_rules
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)
    finally:
        host.terminate()
        try:
            host.wait(timeout=30)
        except subprocess.TimeoutExpired:
            host.kill()


if __name__ == "__main__":
    main()
