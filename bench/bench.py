#!/usr/bin/env python3
"""SecretSync benchmark driver (started by bench/run.sh, which provides the servers).

For each size N:
  (a) Vault read: seed N secrets in N/20 folders under a fresh KV v2 mount, then time
      `secretsync pipeline --merge-only --dry-run --output json` (median of BENCH_REPEAT runs).
      For reference, a raw concurrent read of the same secrets (Python threads, plain HTTP)
      shows what this Vault serves on this machine.
  (b) Sync: secretsync (product defaults) into an empty prefix, then no-change re-syncs.
  (c) Baseline: bench/baseline_sync.py (hvac + boto3, sequential) into its own empty prefix,
      full sync then no-change re-syncs, measured the same way.
  Optionally (BENCH_TUNED_WPS, default 1000; 0 disables) a second secretsync full sync with
  `writes_per_second` raised to what moto takes (it has no write quota), reported on its own goal
  line beside the default-pacing one.

Each measured command runs as its own child under `/usr/bin/time -f %M` (peak RSS); without
GNU time the driver polls /proc/<pid>/status VmHWM instead. Wall time is measured around the
child; CPU seconds of the child, of OpenBao and of moto (BENCH_BAO_PID / BENCH_MOTO_PID) and of
the rest of the machine are recorded for each run, as are moto's HTTP 500s (BENCH_MOTO_LOG).
moto is reset before each tool's full sync: its lookups scan every secret of the region, so
each tool must work in an account holding only its own secrets.

Results: a markdown report on stdout and in bench/results/latest.md, raw numbers in
bench/results/latest.json. Goals are reported, not asserted: the exit code is 0 unless something
crashed or a run gave an incorrect result (wrong counts, or the two tools' values differ).

Only stdlib + boto3 (moto reset and the ListSecrets/BatchGet reference reads) are used here.
"""

import argparse
import http.client
import json
import math
import os
import platform
import random
import resource
import secrets as pysecrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "secretsync")
PY = sys.executable
BASELINE = os.path.join(ROOT, "bench", "baseline_sync.py")
GNU_TIME = "/usr/bin/time"
START_LOAD = os.getloadavg()


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- Vault over plain HTTP


class Vault:
    """Minimal thread-safe Vault HTTP client (one keep-alive connection per thread)."""

    def __init__(self, addr: str, token: str):
        u = urllib.parse.urlparse(addr)
        self.host, self.port = u.hostname, u.port or 8200
        self.token = token
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.conn = c
        return c

    def req(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-Vault-Token": self.token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(3):
            c = self._conn()
            try:
                c.request(method, "/v1/" + path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError, OSError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def secret_value(i: int, folder: int) -> dict:
    # Mixed JSON types, ASCII only (so Python's and Rust's canonical JSON are byte-identical).
    return {
        "username": f"svc-{i:06d}",
        "password": pysecrets.token_hex(16),
        "port": 5000 + i % 1000,
        "enabled": i % 2 == 0,
        "tags": ["bench", f"f{folder:05d}"],
    }


def seed(vault: Vault, mount: str, sub: str, n: int, threads: int = 16) -> tuple[float, int]:
    """Creates a fresh KV v2 mount and N secrets in N/20 folders; returns (seconds, folders)."""
    st, body = vault.req("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}})
    if st not in (200, 204):
        raise RuntimeError(f"cannot enable mount {mount}: {st} {body}")
    folders = max(1, n // 20)
    # A new KV v2 mount upgrades itself for a moment; wait until a write succeeds.
    for _ in range(200):
        st, _ = vault.req("POST", f"{mount}/data/{sub}__probe", {"data": {"x": 1}})
        if st in (200, 204):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"mount {mount} never became writable")
    vault.req("DELETE", f"{mount}/metadata/{sub}__probe")

    def write(i: int) -> None:
        folder = i % folders
        path = f"{mount}/data/{sub}f{folder:05d}/s{i:06d}"
        st, body = vault.req("POST", path, {"data": secret_value(i, folder)})
        if st not in (200, 204):
            raise RuntimeError(f"seed write {path}: {st} {body}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(write, range(n)))
    return time.perf_counter() - t0, folders


def raw_read_floor(vault: Vault, mount: str, sub: str, threads: int = 16) -> tuple[float, int]:
    """Lists and reads the folder with plain concurrent HTTP: what this Vault serves here."""
    t0 = time.perf_counter()
    st, body = vault.req("LIST", f"{mount}/metadata/{sub}")
    dirs = [k for k in body["data"]["keys"] if k.endswith("/")]

    def list_dir(d):
        return [d + k for k in vault.req("LIST", f"{mount}/metadata/{sub}{d}")[1]["data"]["keys"]]

    with ThreadPoolExecutor(threads) as ex:
        paths = [p for ps in ex.map(list_dir, dirs) for p in ps]

        def read(p):
            st, _ = vault.req("GET", f"{mount}/data/{sub}{p}")
            if st != 200:
                raise RuntimeError(f"raw read {p}: {st}")

        list(ex.map(read, paths))
    return time.perf_counter() - t0, len(paths)


# ---------------------------------------------------------------- measuring a child


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid) -> float:
    """CPU seconds (user + system) used so far by a process, 0 if unknown."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> float:
    """CPU seconds all CPUs spent not idle since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


def moto_errors() -> int:
    """HTTP 500 responses moto has logged so far (its own bugs under concurrency)."""
    path = os.environ.get("BENCH_MOTO_LOG")
    if not path:
        return 0
    try:
        with open(path, errors="replace") as f:
            return sum(1 for ln in f if " 500 -" in ln or "POST / 500" in ln)
    except OSError:
        return 0


def measure(cmd: list, env: dict, label: str, logdir: str) -> dict:
    """Runs cmd as one child. Wall seconds, peak RSS (MB), and where the CPU went meanwhile:
    the tool itself, OpenBao, moto, and everything else on the machine."""
    stem = os.path.join(logdir, label)
    out_f, err_f = open(stem + ".out", "w+"), open(stem + ".err", "w+")
    rss_kb = None
    bao_pid, moto_pid = os.environ.get("BENCH_BAO_PID"), os.environ.get("BENCH_MOTO_PID")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    bao0, moto0, busy0, err0 = proc_cpu(bao_pid), proc_cpu(moto_pid), machine_busy(), moto_errors()
    t0 = time.perf_counter()
    if os.access(GNU_TIME, os.X_OK):
        tf = stem + ".time"
        p = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", tf] + cmd, env=env, stdout=out_f, stderr=err_f)
        rc = p.wait()
        wall = time.perf_counter() - t0
        with open(tf) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        rss_kb = int(lines[-1]) if lines and lines[-1].strip().isdigit() else None
    else:
        # No GNU time: poll the child's high-water mark (VmHWM only grows).
        p = subprocess.Popen(cmd, env=env, stdout=out_f, stderr=err_f)
        hwm = 0
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for ln in f:
                        if ln.startswith("VmHWM:"):
                            hwm = max(hwm, int(ln.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)
        rc = p.returncode
        wall = time.perf_counter() - t0
        rss_kb = hwm or None
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tool = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    bao, moto = proc_cpu(bao_pid) - bao0, proc_cpu(moto_pid) - moto0
    busy = machine_busy() - busy0
    out_f.seek(0)
    stdout = out_f.read()
    out_f.close()
    err_f.seek(0)
    stderr_tail = err_f.read()[-3000:]
    err_f.close()
    if rc != 0:
        raise RuntimeError(f"{label}: exit code {rc}\n--- stderr (tail) ---\n{stderr_tail}")
    return {
        "wall": wall,
        "rss_mb": (rss_kb / 1024.0) if rss_kb else None,
        "cpu": {"tool": tool, "bao": bao, "moto": moto,
                "other": max(0.0, busy - tool - bao - moto), "capacity": wall * (os.cpu_count() or 1)},
        "moto_500": moto_errors() - err0,
        "stdout": stdout,
    }


# ---------------------------------------------------------------- configs and checks


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: str, mount: str, sub: str, prefix: str, n: int, wps: int | None) -> None:
    extra = f"    writes_per_second: {wps}\n" if wps else ""
    with open(path, "w") as f:
        f.write(
            "# generated by bench/bench.py\n"
            "vault_sources:\n"
            f"  - mount: {mount}/{sub}\n"
            "    name: bench\n"
            f"    max_secrets: {max(10000, 2 * n)}\n"
            "targets:\n"
            "  - name: bench-target\n"
            "    type: aws_secretsmanager\n"
            "    region: us-east-1\n"
            f"    secret_prefix: {prefix}\n"
            "    imports: [bench]\n" + extra
        )


def ss_result(doc: dict) -> dict:
    """The numbers the benchmark needs from `pipeline --output json` (tolerant of where the
    per-target fields sit: on the target or under its `result`)."""
    t = doc["targets"][0]
    res = t.get("result") or {}

    def pick(key, default=None):
        return t[key] if t.get(key) is not None else res.get(key, default)

    return {
        "aws_calls": doc["aws_calls"],
        "vault_requests": doc.get("vault_requests"),
        "summary": doc["summary"],
        "created": res.get("created", 0),
        "updated": res.get("updated", 0),
        "target_ms": pick("duration_ms"),
        "failed": t.get("failed"),
    }


def check(cond: bool, what: str) -> None:
    if not cond:
        raise RuntimeError(f"incorrect result: {what}")


class Moto:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint)

    def reset(self) -> None:
        u = urllib.parse.urlparse(self.endpoint)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.request("POST", "/moto-api/reset")
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"moto reset: {r.status}")

    def list_prefix(self, prefix: str) -> tuple[float, int, int]:
        """ListSecrets (100 per page, Name filter) over a prefix: seconds, entries, pages."""
        t0, n, pages, token = time.perf_counter(), 0, 0, None
        while True:
            kw = {"MaxResults": 100, "IncludePlannedDeletion": True,
                  "Filters": [{"Key": "name", "Values": [prefix]}]}
            if token:
                kw["NextToken"] = token
            r = self.sm.list_secrets(**kw)
            pages += 1
            n += sum(1 for s in r["SecretList"] if s["Name"].startswith(prefix))
            token = r.get("NextToken")
            if not token:
                break
        return time.perf_counter() - t0, n, pages

    def values(self, names: list) -> dict:
        out = {}
        for i in range(0, len(names), 20):
            r = self.sm.batch_get_secret_value(SecretIdList=names[i:i + 20])
            for v in r["SecretValues"]:
                out[v["Name"]] = v["SecretString"]
        return out


# ---------------------------------------------------------------- one size


def run_size(n: int, a, vault: Vault, moto: Moto, env: dict, logdir: str, tag: str) -> dict:
    mount, sub = f"bench-{tag}-n{n}", "app/"
    log(f"N={n}: seeding {n} secrets in {max(1, n // 20)} folders under {mount}/{sub}")
    seed_s, folders = seed(vault, mount, sub, n)
    log(f"N={n}: seeded in {seed_s:.1f}s ({n / seed_s:.0f} writes/s)")
    r = {"n": n, "folders": folders, "seed_s": seed_s}

    # (a) Vault read: merge-only, dry-run.
    cfg_mo = os.path.join(logdir, f"n{n}-merge.yaml")
    write_config(cfg_mo, mount, sub, f"bench/{tag}/mo-n{n}/", n, None)
    mo = []
    for i in range(a.repeat):
        m = measure([BIN, "pipeline", "--config", cfg_mo, "--merge-only", "--dry-run", "--output", "json"],
                    env, f"n{n}-merge-only-{i}", logdir)
        doc = json.loads(m["stdout"])
        got = len(doc["targets"]["bench-target"])
        check(got == n, f"merge-only returned {got} secrets, expected {n}")
        m["vault_requests"] = doc.get("vault_requests")  # not in the merge-only schema today
        m.pop("stdout")
        mo.append(m)
        log(f"N={n}: merge-only run {i + 1}: {m['wall']:.2f}s = {n / m['wall']:.0f} secrets/s, "
            f"RSS {m['rss_mb']:.0f} MB")
    r["merge_only"] = mo
    fl_s, fl_n = raw_read_floor(vault, mount, sub)
    check(fl_n == n, f"raw read found {fl_n}")
    r["raw_floor_s"] = fl_s
    log(f"N={n}: raw Python HTTP read (16 threads): {fl_s:.2f}s = {n / fl_s:.0f} secrets/s")

    # (b) secretsync full sync + re-syncs, product defaults.
    moto.reset()
    ss_prefix = f"bench/{tag}/ss-n{n}/"
    cfg = os.path.join(logdir, f"n{n}-sync.yaml")
    write_config(cfg, mount, sub, ss_prefix, n, None)
    ss_cmd = [BIN, "pipeline", "--config", cfg, "--output", "json"]
    log(f"N={n}: secretsync full sync (defaults) into {ss_prefix}")
    full = measure(ss_cmd, env, f"n{n}-ss-full", logdir)
    full.update(ss_result(json.loads(full.pop("stdout"))))
    check(full["created"] == n and not full["failed"], f"secretsync full sync created {full['created']}/{n}")
    log(f"N={n}: secretsync full: {full['wall']:.1f}s, {full['aws_calls']} AWS calls, "
        f"{full['vault_requests']} Vault requests, RSS {full['rss_mb']:.0f} MB")
    r["ss_full"] = full
    # With metrics served (`metrics:` on loopback) the same re-sync, interleaved with the plain
    # ones so that drift in the machine's load hits both alike (BENCH_METRICS=0 skips them).
    cfg_m = os.path.join(logdir, f"n{n}-sync-metrics.yaml")
    with open(cfg, encoding="utf-8") as src, open(cfg_m, "w", encoding="utf-8") as dst:
        dst.write(src.read() + f"metrics:\n  address: 127.0.0.1\n  port: {free_port()}\n")
    ms_cmd = [BIN, "pipeline", "--config", cfg_m, "--output", "json"]
    rs, rsm = [], []
    for i in range(a.repeat):
        runs = [("", ss_cmd, rs)] + ([(" with metrics", ms_cmd, rsm)] if a.metrics else [])
        for label, cmd, into in runs:
            m = measure(cmd, env, f"n{n}-ss-resync{label.replace(' ', '-')}-{i}", logdir)
            m.update(ss_result(json.loads(m.pop("stdout"))))
            check(m["summary"]["unchanged"] == n and m["created"] == 0 and m["updated"] == 0,
                  f"secretsync re-sync{label} was not a no-op: {m['summary']}")
            into.append(m)
            log(f"N={n}: secretsync re-sync{label} {i + 1}: {m['wall']:.2f}s, {m['aws_calls']} AWS calls, "
                f"target phase {m['target_ms']} ms, RSS {m['rss_mb']:.0f} MB")
    r["ss_resync"] = rs
    if rsm:
        r["ss_resync_metrics"] = rsm
    ls_s, ls_n, ls_pages = moto.list_prefix(ss_prefix)
    check(ls_n == n, f"ListSecrets found {ls_n} under {ss_prefix}")
    r["moto_list"] = {"s": ls_s, "pages": ls_pages}
    log(f"N={n}: reference: boto3 ListSecrets over the prefix: {ls_pages} pages in {ls_s:.2f}s")

    # Sample of what secretsync wrote, to compare with the baseline's values afterwards.
    rels = [f"f{i % folders:05d}/s{i:06d}" for i in random.Random(n).sample(range(n), min(n, 200))]
    ss_vals = moto.values([ss_prefix + x for x in rels])
    check(len(ss_vals) == len(rels), "secretsync's secrets are not all readable")

    # (c) baseline, in an empty account again: moto looks secrets up by scanning every secret
    # of the region, so each tool must see only its own N secrets to be compared fairly.
    moto.reset()
    py_prefix = f"bench/{tag}/py-n{n}/"
    py_cmd = [PY, BASELINE, "--mount", mount, "--path", sub, "--prefix", py_prefix]
    log(f"N={n}: baseline full sync into {py_prefix}")
    bfull = measure(py_cmd, env, f"n{n}-py-full", logdir)
    bfull.update(json.loads(bfull.pop("stdout")))
    check(bfull["created"] == n, f"baseline created {bfull['created']}/{n}")
    log(f"N={n}: baseline full: {bfull['wall']:.1f}s, {bfull['aws_calls']} AWS calls, RSS {bfull['rss_mb']:.0f} MB")
    r["py_full"] = bfull
    brs = []
    for i in range(a.baseline_repeat):
        m = measure(py_cmd, env, f"n{n}-py-resync-{i}", logdir)
        m.update(json.loads(m.pop("stdout")))
        check(m["unchanged"] == n and m["created"] == 0 and m["updated"] == 0,
              f"baseline re-sync was not a no-op: {m}")
        brs.append(m)
        log(f"N={n}: baseline re-sync {i + 1}: {m['wall']:.2f}s, {m['aws_calls']} AWS calls, RSS {m['rss_mb']:.0f} MB")
    r["py_resync"] = brs

    # Both tools reached equivalent states: same names, byte-identical values (sample).
    pv = moto.values([py_prefix + x for x in rels])
    check(len(pv) == len(rels) and all(ss_vals[ss_prefix + x] == pv[py_prefix + x] for x in rels),
          "secretsync and baseline wrote different values")
    r["equivalent_sample"] = len(rels)

    # Supplementary: secretsync with writes_per_second raised (informational only).
    if a.tuned_wps:
        moto.reset()
        t_prefix = f"bench/{tag}/sst-n{n}/"
        cfg_t = os.path.join(logdir, f"n{n}-sync-tuned.yaml")
        write_config(cfg_t, mount, sub, t_prefix, n, a.tuned_wps)
        t_cmd = [BIN, "pipeline", "--config", cfg_t, "--output", "json"]
        log(f"N={n}: secretsync full sync with writes_per_second={a.tuned_wps}")
        tf = measure(t_cmd, env, f"n{n}-sst-full", logdir)
        tf.update(ss_result(json.loads(tf.pop("stdout"))))
        check(tf["created"] == n and not tf["failed"], f"tuned full sync created {tf['created']}/{n}")
        log(f"N={n}: tuned full: {tf['wall']:.1f}s, {tf['aws_calls']} AWS calls")
        r["sst_full"] = tf
    moto.reset()
    return r


# ---------------------------------------------------------------- report


def med(xs):
    return statistics.median(xs)


def fmt(x, d=2):
    return "n/a" if x is None else f"{x:.{d}f}"


def machine_info(a) -> list:
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            return "?"

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemTotal:"):
                mem = f"{int(ln.split()[1]) / 1024 / 1024:.1f} GiB"
    load = START_LOAD
    bao = sh([os.path.join(ROOT, ".venv", "bin", "bao"), "version"]).split(" (")[0]
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; commit `{commit}`{' (+ uncommitted changes)' if dirty else ''}",
        f"- Machine: {os.cpu_count()} CPUs (`nproc`), {cpu}, {mem} RAM, {platform.system()} {platform.release()}; "
        f"load average at start {load[0]:.2f}",
        f"- secretsync: `{sh([BIN, '--version'])}` (release build); {sh(['rustc', '--version'])}",
        f"- Servers: {bao} (dev mode, in-memory), moto {metadata.version('moto')} (`moto_server`, one process)",
        f"- Baseline: Python {platform.python_version()}, boto3 {metadata.version('boto3')}, "
        f"hvac {metadata.version('hvac')}",
        f"- Re-runs: merge-only and secretsync's no-change re-sync run {a.repeat}×, the baseline's re-sync "
        f"{a.baseline_repeat}×; the median wall time is shown. A full sync runs once (it needs an empty prefix).",
        "- moto is reset (`POST /moto-api/reset`) before each tool's full sync, so each tool works in an account "
        "holding only its own N secrets.",
    ]


def report(results: list, a) -> tuple[str, list]:
    end_load = os.getloadavg()
    L = ["# SecretSync benchmark results", ""] + machine_info(a) + [
        f"- Load average at the end: {end_load[0]:.2f} (1 min), {end_load[2]:.2f} (15 min). The "
        "machine has 2 CPUs shared by the tool, OpenBao and moto; anything else running skews the numbers.", ""]
    L += ["## Vault read (merge phase only: `pipeline --merge-only --dry-run --output json`)", "",
          "| N | folders | wall s (median) | secrets/s | Vault requests¹ | peak RSS MB | Python 16-thread read² secrets/s |",
          "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        n, w = r["n"], med([m["wall"] for m in r["merge_only"]])
        L.append(f"| {n:,} | {r['folders']:,} | {w:.2f} | {n / w:,.0f} | {r['ss_full']['vault_requests']:,} | "
                 f"{max(m['rss_mb'] for m in r['merge_only']):.0f} | {n / r['raw_floor_s']:,.0f} |")
    L += ["", "¹ From the full-sync run's JSON (same reads); the merge-only JSON does not include a request count.",
          "² Reference only: a plain Python client (16 threads, keep-alive HTTP LIST + GET) reading the same secrets. "
          "It is CPU-bound itself here, so it is a lower bound on what this Vault serves, not a ceiling.", ""]

    L += ["## Sync into AWS Secrets Manager (moto): secretsync (defaults) vs baseline script", "",
          "| N | run | secretsync wall s | baseline wall s | speed-up | secretsync AWS calls | baseline AWS calls | "
          "secretsync peak RSS MB | baseline peak RSS MB |",
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        n = r["n"]
        sf, pf = r["ss_full"], r["py_full"]
        L.append(f"| {n:,} | full sync (empty target) | {sf['wall']:.2f} | {pf['wall']:.2f} | "
                 f"{pf['wall'] / sf['wall']:.2f}× | {sf['aws_calls']:,} | {pf['aws_calls']:,} | "
                 f"{sf['rss_mb']:.0f} | {pf['rss_mb']:.0f} |")
        sw, pw = med([m["wall"] for m in r["ss_resync"]]), med([m["wall"] for m in r["py_resync"]])
        L.append(f"| {n:,} | no-change re-sync | {sw:.2f} | {pw:.2f} | {pw / sw:.2f}× | "
                 f"{r['ss_resync'][0]['aws_calls']:,} | {r['py_resync'][0]['aws_calls']:,} | "
                 f"{max(m['rss_mb'] for m in r['ss_resync']):.0f} | {max(m['rss_mb'] for m in r['py_resync']):.0f} |")
    L += ["", "Where secretsync's time goes (from its JSON `duration_ms` of the target phase = list, diff, "
          "apply; the rest is start-up + Vault read + merge):", "",
          "| N | run | wall s | target phase s | before target phase s | moto ListSecrets alone s³ |",
          "|---:|---|---:|---:|---:|---:|"]
    for r in results:
        sf = r["ss_full"]
        tp = sf["target_ms"] / 1000 if sf["target_ms"] is not None else None
        L.append(f"| {r['n']:,} | full sync | {sf['wall']:.2f} | {fmt(tp)} | "
                 f"{fmt(None if tp is None else sf['wall'] - tp)} | |")
        m = sorted(r["ss_resync"], key=lambda x: x["wall"])[len(r["ss_resync"]) // 2]
        tp = m["target_ms"] / 1000 if m["target_ms"] is not None else None
        L.append(f"| {r['n']:,} | re-sync (median run) | {m['wall']:.2f} | {fmt(tp)} | "
                 f"{fmt(None if tp is None else m['wall'] - tp)} | "
                 f"{r['moto_list']['s']:.2f} ({r['moto_list']['pages']} pages) |")
    L += ["", "³ boto3 paging ListSecrets (100/page, name filter) over the same prefix, from Python: moto's own "
          "cost for the listing a re-sync needs.", ""]

    def mid(runs):
        return sorted(runs, key=lambda x: x["wall"])[(len(runs) - 1) // 2]

    L += ["CPU seconds used during each measured run (2 CPUs = 2 CPU-seconds per wall second are available): "
          "by the measured tool, by OpenBao, by moto, and by anything else on the machine; and HTTP 500s moto "
          "returned (each retried by the client):", "",
          "| N | run | wall s | tool CPU s | OpenBao CPU s | moto CPU s | other CPU s | moto 500s |",
          "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows = [("secretsync merge-only", mid(r["merge_only"])), ("secretsync full", r["ss_full"]),
                ("secretsync re-sync", mid(r["ss_resync"])), ("baseline full", r["py_full"]),
                ("baseline re-sync", mid(r["py_resync"]))]
        if "sst_full" in r:
            rows.append((f"secretsync full, writes_per_second {a.tuned_wps}", r["sst_full"]))
        for name, m in rows:
            c = m["cpu"]
            L.append(f"| {r['n']:,} | {name} | {m['wall']:.2f} | {c['tool']:.1f} | {c['bao']:.1f} | "
                     f"{c['moto']:.1f} | {c['other']:.1f} | {m['moto_500']} |")
    L.append("")
    if any("sst_full" in r for r in results):
        L += [f"Supplementary (reported as its own goal line): secretsync full sync with `writes_per_second: {a.tuned_wps}` "
              "(default: no ceiling, adaptive pacing):", "",
              "| N | secretsync wall s | baseline wall s | speed-up | AWS calls | peak RSS MB |",
              "|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            if "sst_full" in r:
                t = r["sst_full"]
                L.append(f"| {r['n']:,} | {t['wall']:.2f} | {r['py_full']['wall']:.2f} | "
                         f"{r['py_full']['wall'] / t['wall']:.2f}× | {t['aws_calls']:,} | {t['rss_mb']:.0f} |")
        L.append("")
    if any("ss_resync_metrics" in r for r in results):
        L += ["Metrics on (`metrics:` served on loopback for the whole run), the same no-change re-sync, "
              "runs interleaved with the plain ones:", "",
              "| N | re-sync wall s, metrics off (median) | metrics on (median) | difference | AWS calls on |",
              "|---:|---:|---:|---:|---:|"]
        for r in results:
            if "ss_resync_metrics" in r:
                off = med([m["wall"] for m in r["ss_resync"]])
                on = med([m["wall"] for m in r["ss_resync_metrics"]])
                L.append(f"| {r['n']:,} | {off:.2f} | {on:.2f} | {100 * (on - off) / off:+.1f}% | "
                         f"{r['ss_resync_metrics'][0]['aws_calls']:,} |")
        L.append("")

    # Goals
    goals = []
    by_n = {r["n"]: r for r in results}
    r10 = by_n.get(10000)
    if r10:
        rate = 10000 / med([m["wall"] for m in r10["merge_only"]])
        goals.append((rate >= 1500, f"merge-only ≥ 1,500 secrets/s at N=10,000: {rate:,.0f} secrets/s"))
    else:
        goals.append((None, "merge-only ≥ 1,500 secrets/s at N=10,000: N=10,000 not in BENCH_SIZES"))
    for r in results:
        n = r["n"]
        lim = math.ceil(n / 100) + 10
        calls = max(m["aws_calls"] for m in r["ss_resync"])
        goals.append((calls <= lim, f"N={n:,}: re-sync AWS calls ≤ ceil(N/100)+10 = {lim}: {calls}"))
        sp = med([m["wall"] for m in r["py_resync"]]) / med([m["wall"] for m in r["ss_resync"]])
        goals.append((sp >= 10, f"N={n:,}: re-sync ≥ 10× faster than baseline: {sp:.2f}×"))
        sp = r["py_full"]["wall"] / r["ss_full"]["wall"]
        goals.append((sp >= 2, f"N={n:,}: full sync ≥ 2× faster than baseline, default settings (adaptive pacing; moto has no quota): {sp:.2f}×"))
        if "ss_resync_metrics" in r:
            off = med([m["wall"] for m in r["ss_resync"]])
            on = med([m["wall"] for m in r["ss_resync_metrics"]])
            goals.append((on <= 1.10 * off, f"N={n:,}: re-sync with metrics on within 10% of metrics off: {100 * (on - off) / off:+.1f}%"))
        t = r.get("sst_full")
        if t:
            sp = r["py_full"]["wall"] / t["wall"]
            goals.append((sp >= 2, f"N={n:,}: full sync ≥ 2× faster than baseline, `writes_per_second` set to what the endpoint (moto) takes: {sp:.2f}×"))
    L += ["## Goals (reported, not asserted)", ""]
    for ok, text in goals:
        L.append(f"- **{'PASS' if ok else ('FAIL' if ok is False else 'N/A')}** {text}")
    L.append("")
    return "\n".join(L), goals


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1000 10000"))
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "3")))
    ap.add_argument("--baseline-repeat", type=int, default=int(os.environ.get("BENCH_BASELINE_REPEAT", "0")) or None)
    ap.add_argument("--metrics", type=int, default=int(os.environ.get("BENCH_METRICS", "1")))
    ap.add_argument("--tuned-wps", type=int, default=int(os.environ.get("BENCH_TUNED_WPS", "1000")))
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT") or os.path.join(ROOT, "bench", "results", "latest.md"))
    ap.add_argument("--logdir", default=None)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.replace(",", " ").split()]
    a.baseline_repeat = a.baseline_repeat or a.repeat
    vault_addr, token = os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"]
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    logdir = a.logdir or tempfile.mkdtemp(prefix="secretsync-bench-logs.")
    os.makedirs(logdir, exist_ok=True)
    log(f"logs and generated configs in {logdir}")
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "test")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    env.setdefault("AWS_REGION", "us-east-1")
    vault, moto = Vault(vault_addr, token), Moto(endpoint)
    tag = pysecrets.token_hex(3)
    results = []
    for n in sizes:
        results.append(run_size(n, a, vault, moto, env, logdir, tag))
    text, _ = report(results, a)
    with open(os.path.join(logdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(text)
    log(f"written {a.out}; raw numbers in {logdir}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
