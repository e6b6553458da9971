"""ChunkVault against rustus and @tus/server, side by side in one run.

Same 1 GiB random file, same clients (tuspy, tus-js-client; 8 MiB chunks), and ChunkVault's own
CLI over REST. For each server and client: MB/s (median of BENCH_RUNS runs, a fresh server and
data directory each), server CPU seconds and peak RSS (GNU time). Also the machine's limits in the
same run (disk write with fdatasync, SHA1 on one core, loopback TCP) and instant-upload hits/s.
Prints one table and the ratios the targets are stated in.
"""
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CV = os.environ.get("BENCH_CHUNKVAULT") or os.path.join(TARGET, "release", "chunkvault")
RUSTUS = os.environ.get("RUSTUS") or shutil.which("rustus") or "/var/tmp/bench-tools/bin/rustus"
NODE_DIR = os.path.join(ROOT, "bench", "node")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZE_MIB = int(os.environ.get("BENCH_SIZE_MIB", "1024"))
CHUNK = 8 << 20
CLI_FLAGS = os.environ.get("BENCH_CLI_FLAGS", "").split()
MB = 1e6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


# ---- the machine's limits ------------------------------------------------------------------

def disk_write(work, size):
    path = os.path.join(work, "dd.bin")
    block = os.urandom(8 << 20)
    start = time.monotonic()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.flush()
        os.fdatasync(f.fileno())
    t = time.monotonic() - start
    os.remove(path)
    return size / t / MB


def disk_write_direct(work, size):
    """The same with O_DIRECT (how ChunkVault writes tus and whole-file uploads): the disk's own
    rate, without the page cache's copy and page allocation in front of it."""
    import mmap
    path = os.path.join(work, "dd-direct.bin")
    block = mmap.mmap(-1, 8 << 20)  # page-aligned, as O_DIRECT needs
    block.write(os.urandom(8 << 20))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT)
    try:
        start = time.monotonic()
        for i in range(size // len(block)):
            os.pwrite(fd, block, i * len(block))
        os.fdatasync(fd)
        t = time.monotonic() - start
    finally:
        os.close(fd)
        os.remove(path)
    return size / t / MB


def sha1_one_core(size):
    block = os.urandom(8 << 20)
    h = hashlib.sha1()
    start = time.monotonic()
    for _ in range(size // len(block)):
        h.update(block)
    return size / (time.monotonic() - start) / MB


def loopback(size):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = [0]

    def sink():
        conn, _ = srv.accept()
        buf = bytearray(4 << 20)
        while True:
            n = conn.recv_into(buf)
            if not n:
                break
            got[0] += n
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    block = os.urandom(4 << 20)
    c = socket.create_connection(("127.0.0.1", port))
    start = time.monotonic()
    for _ in range(size // len(block)):
        c.sendall(block)
    c.shutdown(socket.SHUT_WR)
    t.join()
    elapsed = time.monotonic() - start
    c.close()
    srv.close()
    return got[0] / elapsed / MB


# ---- servers ---------------------------------------------------------------------------------

class Server:
    def __init__(self, kind, work):
        self.kind = kind
        self.dir = tempfile.mkdtemp(dir=work, prefix=kind + "-")
        self.timefile = os.path.join(self.dir, "time.txt")
        self.port = free_port()
        self.token = None
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        timed = ["/usr/bin/time", "-v", "-o", self.timefile]
        if kind == "chunkvault":
            cmd = [CV, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data, "--log", "warn"]
        elif kind == "rustus":
            cmd = [RUSTUS, "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", data,
                   "--info-dir", data, "--url", "/files", "--max-body-size", str(64 << 20),
                   "--log-level", "ERROR"]
        elif kind == "tus-node":
            cmd = ["node", os.path.join(NODE_DIR, "tus-node-server.mjs"), str(self.port), data]
        elif kind == "null-sink":
            cmd = [sys.executable, os.path.join(ROOT, "bench", "null_sink.py"), str(self.port)]
        else:
            raise ValueError(kind)
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(timed + cmd, stdout=self.log, stderr=self.log)
        wait_port(self.port, self.proc)
        self.base = f"http://127.0.0.1:{self.port}"
        if kind == "chunkvault":
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            call(self.base, "POST", "/user/signup", "username=bench&password=bench-password", form)
            _, body = call(self.base, "POST", "/user/signin", "username=bench&password=bench-password", form)
            self.token = json.loads(body)["data"]["Token"]

    @property
    def endpoint(self):
        return f"{self.base}/files/" if self.kind != "tus-node" else f"{self.base}/files"

    def stop(self):
        """Stops the server under GNU time; returns (cpu seconds, peak RSS MiB)."""
        try:
            children = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        except OSError:
            children = []
        if not children:
            raise RuntimeError(f"{self.kind} server died during the run (see {self.dir}/server.log)")
        for c in children:
            os.kill(int(c), signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()
        # ChunkVault shuts down cleanly on SIGTERM: anything else (a crash, a hang cut off) fails
        # the run. (Peers are only required to have been alive.)
        if self.kind == "chunkvault" and self.proc.returncode != 0:
            raise RuntimeError(f"chunkvault exited with status {self.proc.returncode} (see {self.dir}/server.log)")
        text = open(self.timefile).read()
        user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
        system = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
        shutil.rmtree(self.dir, ignore_errors=True)
        return user + system, rss


def call(base, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(urllib.parse.urlparse(base).netloc, timeout=120)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


# ---- clients ---------------------------------------------------------------------------------

TUSPY = """
import sys, time
from tusclient import client
endpoint, token, path, chunk = sys.argv[1:5]
headers = {} if token == "-" else {"Authorization": "Bearer " + token}
start = time.monotonic()
client.TusClient(endpoint, headers=headers).uploader(path, chunk_size=int(chunk), metadata={"filename": "bench-py.bin"}).upload()
print(f"{time.monotonic() - start:.3f}")
"""


def run_client(client, server, path):
    """Runs one upload; returns (upload seconds, hashing seconds or None, client CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, hashing = run_client_1(client, server, path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The servers are children too, but not reaped yet: this is the client's CPU alone.
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, hashing, cpu


def run_client_1(client, server, path):
    token = server.token or "-"
    if client == "tuspy":
        out = subprocess.run([sys.executable, "-c", TUSPY, server.endpoint, token, path, str(CHUNK)],
                             capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1]), None
    if client in ("tus-js-client", "tus-js-client-ietf"):
        protocol = "ietf-draft-05" if client.endswith("-ietf") else "tus-v1"
        out = subprocess.run(["node", os.path.join(NODE_DIR, "tusjs-upload.mjs"), server.endpoint, token, path, str(CHUNK), protocol],
                             capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1]), None
    if client == "chunkvault-cli":
        cfg = os.path.join(server.dir, "cli")
        env = {**os.environ, "CHUNKVAULT_CONFIG_DIR": cfg}
        subprocess.run([CV, "login", "--server", server.base, "-u", "bench", "--password", "bench-password"],
                       env=env, check=True, capture_output=True)
        out = subprocess.run([CV, "upload", path, "--parallel", "4", "--chunk-size", "8MiB"] + CLI_FLAGS,
                             env=env, capture_output=True, text=True, check=True)
        # "hashed 1.0 GiB in 0.80 s (…), sent 1.0 GiB in 2.13 s (…)" (older builds: "hashed in
        # 0.80 s (…), sent 1073741824 bytes in 2.13 s"): the two times.
        m = re.search(r"hashed [^,]*?in ([\d.]+) s.*sent .*?in ([\d.]+) s", out.stderr)
        return float(m.group(2)), float(m.group(1))
    raise ValueError(client)


def server_cpu(server):
    """CPU seconds the server process (the child of GNU time) has used so far."""
    pid = open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read().split()[0]
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(server, name):
    _, body = call(server.base, "GET", "/metrics")
    m = re.search(rf"^{name} (\d+)", body.decode(), re.M)
    return int(m.group(1)) if m else 0


def measure_first_claim(work, path, size):
    """The first instant upload (秒传) of a 1 GiB file another user uploaded, in proof mode (the
    default): POST /uploads (a challenge), the client's digests, POST /uploads/proof. Its
    collision verdict is computed in the background once the content is published; this
    measures how long that took and its CPU, then the claim."""
    server = Server("chunkvault", work)
    try:
        env = {**os.environ, "CHUNKVAULT_CONFIG_DIR": os.path.join(server.dir, "cli")}
        subprocess.run([CV, "login", "--server", server.base, "-u", "bench", "--password", "bench-password"],
                       env=env, check=True, capture_output=True)
        cpu0 = server_cpu(server)
        subprocess.run([CV, "upload", path, "--parallel", "4", "--chunk-size", "8MiB"], env=env, check=True,
                       capture_output=True)
        published, cpu1 = time.monotonic(), server_cpu(server)
        while metric(server, "chunkvault_collision_scans_total") < 1:
            if time.monotonic() - published > 120:
                raise RuntimeError("no collision verdict two minutes after publishing")
            time.sleep(0.02)
        verdict_s, cpu2 = time.monotonic() - published, server_cpu(server)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        call(server.base, "POST", "/user/signup", "username=second&password=bench-password", form)
        _, body = call(server.base, "POST", "/user/signin", "username=second&password=bench-password", form)
        auth = {"Authorization": "Bearer " + json.loads(body)["data"]["Token"], "Content-Type": "application/json"}
        sha1 = hashlib.sha1()
        with open(path, "rb") as f:
            while block := f.read(8 << 20):
                sha1.update(block)
        claim = json.dumps({"filename": "claimed.bin", "size": size, "sha1": sha1.hexdigest()})
        start = time.monotonic()
        status, body = call(server.base, "POST", "/uploads", claim, auth)
        asked = time.monotonic() - start
        challenge = json.loads(body)["data"]["challenge"]
        digests = []
        with open(path, "rb") as f:
            for a, b in challenge["ranges"]:
                f.seek(a)
                digests.append(hashlib.sha256(f.read(b - a)).hexdigest())
        status, body = call(server.base, "POST", "/uploads/proof",
                            json.dumps({"challenge": challenge["id"], "digests": digests}), auth)
        total = time.monotonic() - start
        if status != 200 or json.loads(body)["data"].get("instant") is not True:
            raise RuntimeError(f"first claim not instant: {status} {body[:300]}")
        scans = metric(server, "chunkvault_collision_scans_total")
    finally:
        server.stop()
    gib = size / (1 << 30)
    return (f"first instant upload of a {size >> 20} MiB file: POST /uploads answered in {asked * 1000:.1f} ms, "
            f"claim with proof {total * 1000:.1f} ms (target < 100 ms); its collision verdict was computed in the "
            f"background {verdict_s:.2f} s after publishing, {(cpu2 - cpu1) / gib:.2f} CPU s per GiB "
            f"(the upload itself: {(cpu1 - cpu0) / gib:.2f}); blobs scanned: {scans}")


def main():
    work = tempfile.mkdtemp(prefix="cv-bench-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    size = SIZE_MIB << 20
    try:
        print(f"machine limits ({SIZE_MIB} MiB each):", flush=True)
        buffered, direct = disk_write(work, size), disk_write_direct(work, size)
        print(f"  {'disk write + fdatasync':24} {buffered:8.0f} MB/s buffered, {direct:.0f} MB/s O_DIRECT", flush=True)
        # The disk's limit is the faster way of writing to it durably.
        limits = {"disk write + fdatasync": max(buffered, direct), "SHA1, one core": sha1_one_core(size),
                  "loopback TCP": loopback(size)}
        for k, v in list(limits.items())[1:]:
            print(f"  {k:24} {v:8.0f} MB/s", flush=True)
        path = os.path.join(work, "random.bin")
        with open(path, "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(1 << 20))

        # null-sink: a tus server that discards every byte (bench/null_sink.py), the client's
        # own ceiling on this machine.
        combos = [("chunkvault", "tuspy"), ("rustus", "tuspy"), ("tus-node", "tuspy"), ("null-sink", "tuspy"),
                  ("chunkvault", "tus-js-client"), ("rustus", "tus-js-client"), ("tus-node", "tus-js-client"),
                  ("null-sink", "tus-js-client"), ("chunkvault", "tus-js-client-ietf"), ("chunkvault", "chunkvault-cli")]
        # tus-js-client-ietf: the same client speaking the IETF resumable-upload draft (interop
        # version 6); none of the peers here speaks it (tusd has it behind a flag).
        # BENCH_ONLY=chunkvault/tuspy,rustus/tuspy: a subset, for quick comparisons while working.
        only = [c for c in os.environ.get("BENCH_ONLY", "").split(",") if c]
        if only:
            combos = [c for c in combos if "/".join(c) in only]
        results = {}
        # Round by round over all the combinations, so that a machine that gets faster or
        # slower during the run (page cache, other tenants) weighs on every server alike.
        runs = {c: [] for c in combos}
        for i in range(RUNS):
            for server_kind, client in combos:
                server = Server(server_kind, work)
                try:
                    seconds, hashing, client_cpu = run_client(client, server, path)
                finally:
                    cpu, rss = server.stop()
                runs[(server_kind, client)].append((size / seconds / MB, cpu, rss, hashing, client_cpu))
                print(f"  {server_kind:10} {client:15} run {i + 1}: {size / seconds / MB:7.0f} MB/s, "
                      f"server CPU {cpu:5.2f} s, peak RSS {rss:6.1f} MiB, client CPU {client_cpu:5.2f} s"
                      + (f", hashing {hashing:.2f} s" if hashing else ""), flush=True)
        for combo, rs in runs.items():
            results[combo] = {
                "mbps": statistics.median(r[0] for r in rs),
                "cpu": statistics.median(r[1] for r in rs) / (SIZE_MIB / 1024),
                "rss": max(r[2] for r in rs),
                "hashing": statistics.median(r[3] for r in rs) if rs[0][3] else None,
                "client_cpu": statistics.median(r[4] for r in rs) / (SIZE_MIB / 1024),
            }

        first_claim = None
        if not only or "first-claim" in only:
            first_claim = measure_first_claim(work, path, size)

        instant = []
        if not only or "instant" in only:
            # Instant upload: content the server holds, claimed again and again by 16 clients.
            # Trusted (--instant-upload trusted): one request. Proof of ownership (the default):
            # the claim, the client's digests of the challenged ranges, and POST /uploads/proof.
            small = os.path.join(work, "small.bin")
            with open(small, "wb") as f:
                f.write(os.urandom(1 << 20))
            sha1 = hashlib.sha1(open(small, "rb").read()).hexdigest()
            for mode in ["trusted", "proof"]:
                os.environ["CHUNKVAULT_INSTANT_UPLOAD"] = mode
                server = Server("chunkvault", work)
                del os.environ["CHUNKVAULT_INSTANT_UPLOAD"]
                cfg = os.path.join(server.dir, "cli")
                env = {**os.environ, "CHUNKVAULT_CONFIG_DIR": cfg}
                subprocess.run([CV, "login", "--server", server.base, "-u", "bench", "--password", "bench-password"], env=env, check=True, capture_output=True)
                subprocess.run([CV, "upload", small], env=env, check=True, capture_output=True)
                env = {**os.environ, "CHUNKVAULT_BENCH_URL": server.base, "CHUNKVAULT_BENCH_TOKEN": server.token,
                       "CHUNKVAULT_BENCH_SHA1": sha1, "CHUNKVAULT_BENCH_SIZE": str(1 << 20)}
                if mode == "proof":
                    env["CHUNKVAULT_BENCH_FILE"] = small
                out = subprocess.run(["cargo", "bench", "--quiet", "-p", "chunkvault-server", "--bench", "instant"],
                                     cwd=ROOT, env=env, capture_output=True, text=True)
                server.stop()
                lines = [l for l in out.stdout.splitlines() if l.startswith("instant upload")]
                instant.append(lines[0] if lines else f"instant upload ({mode}) bench failed: {out.stderr[-2000:]}")
                print("  " + instant[-1], flush=True)

        print()
        # Client CPU tells a client-bound run (one core's worth per second of upload) from a
        # server-bound one; the CLI's includes its hashing phase.
        print(f"| server | client | MB/s (median of {RUNS}) | server CPU s/GiB | server peak RSS MiB "
              "| client CPU s/GiB |")
        print("|---|---|---:|---:|---:|---:|")
        for (s, c), r in results.items():
            print(f"| {s} | {c} | {r['mbps']:.0f} | {r['cpu']:.2f} | {r['rss']:.1f} | {r['client_cpu']:.2f} |")
        print()
        for client in ["tuspy", "tus-js-client"]:
            if not all((s, client) in results for s in ["chunkvault", "rustus", "tus-node"]):
                continue
            ours = results[("chunkvault", client)]
            peer_name, peer = max(((s, results[(s, client)]) for s in ["rustus", "tus-node"]), key=lambda x: x[1]["mbps"])
            print(f"{client}: chunkvault/{peer_name} = {ours['mbps'] / peer['mbps']:.2f}x MB/s (target >= 1.3x); "
                  f"CPU per GiB {ours['cpu']:.2f} s vs {peer['cpu']:.2f} s")
            ceiling = results.get(("null-sink", client))
            if ceiling:
                print(f"{client}: its ceiling (null sink) {ceiling['mbps']:.0f} MB/s; chunkvault "
                      f"{ours['mbps'] / ceiling['mbps']:.0%} of it (target >= 90%), best peer "
                      f"{peer['mbps'] / ceiling['mbps']:.0%}; 1.3x the peer would be "
                      f"{1.3 * peer['mbps'] / ceiling['mbps']:.0%} of the ceiling")
        ietf, tus_mode = results.get(("chunkvault", "tus-js-client-ietf")), results.get(("chunkvault", "tus-js-client"))
        if ietf and tus_mode:
            print(f"tus-js-client, IETF draft (interop 6) against tus 1.0 on chunkvault: "
                  f"{ietf['mbps'] / tus_mode['mbps']:.2f}x MB/s, server CPU per GiB {ietf['cpu']:.2f} s vs {tus_mode['cpu']:.2f} s")
        cli = results.get(("chunkvault", "chunkvault-cli"))
        limit = min(limits.values())
        if cli:
            print(f"chunkvault CLI upload phase: {cli['mbps']:.0f} MB/s = {cli['mbps'] / limit:.0%} of min(limits) "
                  f"{limit:.0f} MB/s (target >= 60%); hashing phase {cli['hashing']:.2f} s "
                  f"({size / cli['hashing'] / MB:.0f} MB/s)")
        worst = max((r["rss"] for (s, _), r in results.items() if s == "chunkvault"), default=0)
        print(f"chunkvault peak RSS during a {SIZE_MIB} MiB upload: {worst:.1f} MiB (target < 64 MiB)")
        for line in instant:
            print(line)
        if first_claim:
            print(first_claim)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
