#!/usr/bin/env python3
"""usb-stick: the spooler's visit on a throttled USB stick, in the system test's guest.

    python3 bench/usb-stick.py --deb .build/deb/ferry_VERSION_amd64.deb [--packets 200 --kib 1024 ...]

(bench/usb-stick.sh runs it with the package `make deb` built.) Boots the
system test's Debian guest (Tests/system/system-test, imported: its Guest,
image cache, payload disk and stick images), installs the .deb, makes the
guest the spooler with a queue of packets for backupsvr, and plugs in an
enrolled ext4 stick whose qemu drive is throttled like a cheap USB 2.0
stick (a throttle-group: bps-write, bps-read, iops-total). Then, side by
side, medians of --rounds rounds, the order of the sides turned each round:

- udev:   ferry@.service as installed, started by udev: from device_add
          (host clock, carried into the guest's by guest-get-time) to
          ferry's "safe to remove" in the guest's journal;
- handle: `ferry handle DEVNODE` run by hand in the guest, with ferry's udev
          rule overridden so that the unit stays out;
- hand:   DESIGN.md section 2's spooler steps by hand (mount with ferry's
          options, nncp-xfer -rx, nncp-toss, nncp-xfer -tx -keep -mkdir
          -node backupsvr, sync, umount);
- copy:   cp of the same packets + sync (the physical limit).

Between sides the stick's nncp/ is removed (as bench/exchange.sh does), and
the guest's caches are dropped before each timed side. Not a test: nothing
here fails on a slow machine. Needs root; take the machine's lock
(/run/ferry-itest.lock): it boots a guest.
"""

import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GUEST_SCRIPT = os.path.join(HERE, "usb-stick-guest.sh")
SERIAL = "FERRYBENCH1"
MB = 1000 * 1000


def load_harness():
    """Tests/system/system-test, imported as a module (its main() runs only
    as a script)."""
    path = os.path.join(ROOT, "Tests", "system", "system-test")
    loader = importlib.machinery.SourceFileLoader("system_test", path)
    spec = importlib.util.spec_from_loader("system_test", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


harness = load_harness()


def log(text):
    print(f"usb-stick: {text}", flush=True)


class Interrupted(Exception):
    pass


def interrupted(signum, frame):
    # One signal is enough: a second (bench/usb-stick.sh passes on what it
    # gets) must not break into the cleanup that this one starts.
    for other in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(f"signal {signum}")


class Bench:
    sides = ("udev", "handle", "hand", "copy")

    def __init__(self, guest, stick, limits):
        self.guest = guest
        self.stick = stick
        self.limits = limits
        self.device = None

    def step(self, name, *arguments, timeout=900):
        return self.guest.step(name, *arguments, timeout=timeout, script=os.path.basename(GUEST_SCRIPT)).strip()

    def clock_offset(self):
        """The guest's clock minus the host's, from the quickest of five
        guest-get-time calls; and half that call's round trip, the error."""
        best = None
        for _ in range(5):
            before = time.time()
            guest_time = self.guest.agent.command("guest-get-time") / 1e9
            after = time.time()
            if best is None or after - before < best[1] * 2:
                best = (guest_time - (before + after) / 2, (after - before) / 2)
        return best

    def plug(self):
        plugged_at = self.guest.plug("stick", self.stick, SERIAL, limits=self.limits)
        self.device = self.guest.step("device", SERIAL, "part").strip()
        return plugged_at

    def pull(self):
        self.guest.pull("stick")
        self.device = None

    def unit(self):
        return f"ferry@{os.path.basename(self.device)}.service"

    def enroll(self):
        self.step("bench_rule", "off")
        self.plug()
        code, out, err = self.guest.agent.execute(["/usr/bin/ferry", "enroll", self.device], 300)
        if code != 0:
            raise harness.GuestError(f"ferry enroll {self.device}: {err.strip() or out.strip()}")
        log(f"stick enrolled at the spooler: {self.device}")

    def prepare(self, side):
        """An empty stick (nncp/ removed); for the udev side, unplugged, with
        ferry's rule on; the guest settled, its caches dropped."""
        if self.device is None:
            self.plug()
        self.step("bench_wipe", self.device)
        if side == "udev":
            self.pull()
            self.step("bench_rule", "on")
        self.step("bench_settle")

    def udev(self):
        offset, error = self.clock_offset()
        since = self.guest.now()
        plugged_at = self.plug()
        unit = self.unit()
        self.step("bench_wait_safe", unit, since)
        self.guest.step("wait_unit", unit, since)
        entries = self.guest.journal(since, unit)
        self.step("bench_rule", "off")
        def stamp(entry):  # when it was logged, not when journald got it, where the journal knows
            return int(entry.get("_SOURCE_REALTIME_TIMESTAMP", entry["__REALTIME_TIMESTAMP"])) / 1e6

        safe = [stamp(e) for e in entries if e.get("_SYSTEMD_UNIT") == unit and "safe to remove" in e["MESSAGE"]]
        started = [stamp(e) for e in entries
                   if e.get("UNIT") == unit and e.get("_PID") == "1" and e["MESSAGE"].startswith("Starting ")]
        done = [e for e in entries if e.get("UNIT") == unit and e.get("JOB_TYPE") == "start"
                and e.get("JOB_RESULT") == "done"]
        if not safe or not done:
            lines = [e["MESSAGE"] for e in entries if e.get("_SYSTEMD_UNIT") == unit][-5:]
            raise harness.GuestError(f"{unit} did not finish with \"safe to remove\": {'; '.join(lines)}")
        plugged = plugged_at + offset
        self.udev_start = started[0] - plugged if started else None

        # Where the visit's time went, from ferry's own lines: its steps up
        # to the copy, the copy, the journal, the sync.
        def first(text):
            return min((stamp(e) - plugged for e in entries
                        if e.get("_SYSTEMD_UNIT") == unit and e["MESSAGE"].startswith(text)), default=None)
        self.phases = {"unit started": self.udev_start, "sending": first("sending to "),
                       "journal": first("reading the journal"), "syncing": first("syncing the stick"),
                       "safe": safe[0] - plugged}
        self.clock_error = error
        return safe[0] - plugged

    def measure(self, side):
        self.prepare(side)
        if side == "udev":
            seconds = self.udev()
        else:
            seconds = float(self.step("bench_side", side, self.device))
        carried = int(self.step("bench_count", self.device))
        return seconds, carried


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deb", required=True, help="the package to install in the guest")
    parser.add_argument("--packets", type=int, default=200)
    parser.add_argument("--kib", type=int, default=1024, help="each packet's payload, KiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-mbs", type=float, default=10, help="the stick's bps-write, MB/s")
    parser.add_argument("--read-mbs", type=float, default=30, help="the stick's bps-read, MB/s")
    parser.add_argument("--iops", type=int, default=300, help="the stick's iops-total")
    parser.add_argument("--work", help="an empty scratch directory to use (and remove); a new one by default")
    parser.add_argument("--logs", default="/var/tmp/ferry-usb-stick-logs",
                        help="where the guest's journal and console stay afterwards")
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("usb-stick: run as root (the image cache, qemu)")
    limits = {"bps-write": int(options.write_mbs * MB), "bps-read": int(options.read_mbs * MB),
              "iops-total": options.iops}
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, interrupted)
    began = time.time()
    image, built = harness.image_path()
    log(f"image {image}" + (f", built in {built:.0f} s" if built else ", cached"))
    shutil.rmtree(options.logs, ignore_errors=True)
    os.makedirs(options.logs)
    work = options.work or tempfile.mkdtemp(prefix="ferry-usb-stick.", dir="/var/tmp")
    guest = None
    results = {side: [] for side in Bench.sides}
    splits = []
    try:
        harness.make_payload(work, options.deb, GUEST_SCRIPT)
        total_mib = options.packets * options.kib // 1024
        stick_mib = max(256, total_mib * 2 + 64)
        stick = os.path.join(work, "stick.img")
        # Inode tables and journal written now: a lazy init would write the
        # stick, through the throttle, while the sides are timed.
        harness.make_stick(stick, "ext4", "FERRY-BENCH", mib=stick_mib,
                           ext4_options=("-E", "lazy_itable_init=0,lazy_journal_init=0"))
        booting = time.time()
        guest = harness.Guest(image, work, options.logs)
        state = guest.boot()
        log(f"guest up ({state}) in {time.time() - booting:.0f} s")
        log(guest.step("setup", timeout=600).strip())
        bench = Bench(guest, stick, limits)
        queuing = time.time()
        queued = bench.step("bench_queue", str(options.packets), str(options.kib), timeout=1800)
        log(f"{queued} (made in {time.time() - queuing:.0f} s)")
        bench.enroll()
        settings = (f"{options.packets} packets of {options.kib} KiB, {stick_mib} MiB ext4 stick throttled to "
                    f"bps-write {options.write_mbs:g} MB/s, bps-read {options.read_mbs:g} MB/s, "
                    f"iops-total {options.iops}; TCG guest, 2 vCPUs, 1 GiB")
        log(settings)
        for round in range(options.rounds):
            turn = round % len(Bench.sides)
            order = Bench.sides[turn:] + Bench.sides[:turn]
            for side in order:
                seconds, carried = bench.measure(side)
                results[side].append(seconds)
                extra = ""
                if side == "udev":
                    splits.append(bench.udev_start)
                    marks = ", ".join(f"{name} {at:.2f}" for name, at in bench.phases.items() if at is not None)
                    extra = f" (s after device_add: {marks}; clock offset known to {bench.clock_error * 1000:.1f} ms)"
                log(f"round {round + 1}: {side} {seconds:.3f} s, {carried} packets on the stick{extra}")
                if carried != options.packets:
                    raise harness.GuestError(f"{side} left {carried} packets on the stick, not {options.packets}")
    except (harness.GuestError, TimeoutError, Interrupted) as error:
        log(f"stopped: {error}")
        results = None
    finally:
        # The cleanup is bounded (power_off kills qemu after 90 s): a second
        # signal must not cut it short and leave the guest behind.
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        if guest:
            guest.power_off()
            log(f"qemu (pid {guest.qemu.pid}) ended")
        shutil.rmtree(work, ignore_errors=True)
    if not results:
        sys.exit(1)
    median = {side: statistics.median(values) for side, values in results.items()}
    log(f"done in {time.time() - began:.0f} s; the guest's journal is in {options.logs}")
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + f", {settings}, medians of {options.rounds} rounds")
    names = {"udev": "ferry@.service (device_add to \"safe to remove\")", "handle": "ferry handle by hand",
             "hand": "hand-run NNCP steps", "copy": "cp + sync"}
    for side in Bench.sides:
        print(f"  {names[side]:<50} {median[side]:8.3f} s   rounds: "
              + " ".join(f"{value:.3f}" for value in results[side]))
    if splits and None not in splits:
        print(f"  of ferry@.service's time, device_add to the unit's start: median {statistics.median(splits):.2f} s")
    for side in ("udev", "handle"):
        print(f"  {side}: ferry/hand {median[side] / median['hand']:.2f}  ferry/cp {median[side] / median['copy']:.2f}")


if __name__ == "__main__":
    main()
