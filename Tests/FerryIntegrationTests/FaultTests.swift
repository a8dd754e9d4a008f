import FerryCore
import FerryDemo
import Foundation
import Testing

/// A `ferry handle` running in the background, so that a test can kill it,
/// stop it or race it mid-visit.
final class BackgroundFerry: @unchecked Sendable {
    let process = Process()
    let log: String

    init(_ bed: TestBed, host: String, _ arguments: [String], name: String, environment: [String: String] = [:]) throws {
        log = "\(bed.directory)/\(name).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: FerryBinary.path)
        process.arguments = arguments + ["--config", bed.configPath(host)]
        // A ferry killed with SIGKILL cannot remove its private temporary
        // directory (the NNCP config dump): keep those inside the bed.
        let temporary = bed.directory + "/tmp"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporary]) { $1 }.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = process.standardOutput
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The processes in ferry's process group (ferry and the commands it runs).
    func group() -> [(pid: Int32, command: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { name -> (Int32, String)? in
            guard let pid = Int32(name),
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 3, fields[0] != "Z", Int32(fields[2]) == self.pid else { return nil }
            let command =
                (try? String(contentsOfFile: "/proc/\(name)/cmdline", encoding: .utf8))?.replacingOccurrences(of: "\0", with: " ") ?? ""
            return (pid, command)
        }
    }

    /// Waits until a command whose argv holds all of `words` runs under ferry.
    func waitForChild(_ words: [String], seconds: Double = 60) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, process.isRunning {
            if group().contains(where: { child in words.allSatisfy { child.command.contains($0) } }) { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    /// Waits until ferry's log holds `text`.
    func waitForLog(_ text: String, seconds: Double = 60) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, process.isRunning {
            if output.contains(text) { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return output.contains(text)
    }

    /// Sends `signal` to ferry alone, or to its whole process group as
    /// systemd does to a unit's control group.
    func kill(_ signal: Int32, wholeGroup: Bool) {
        if wholeGroup {
            for member in group() { Glibc.kill(member.pid, signal) }
        }
        Glibc.kill(pid, signal)
    }

    func exit(seconds: Double = 60) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else { return -1 }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

@Suite(
    "Faults during a visit: kills, stops, a read-only stick, two at once", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct FaultTests {
    /// Sends everything across until backupsvr has all of `payloads` and the
    /// spooler keeps nothing: nothing was lost.
    func finishTrips(_ bed: TestBed, _ stick: LoopDevice, _ payloads: [[UInt8]]) async throws {
        for _ in 0..<3 {
            for host in ["spooler", "backupsvr"] {
                let run = try await bed.ferry(host, "handle", stick.devnode)
                #expect(run.status == 0, "\(host): \(run.error)")
            }
        }
        #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
        #expect(Set(try bed.received()) == Set(payloads.map { Data($0) }))
        #expect(try bed.received().count == payloads.count, "nothing processed twice")
        #expect(try bed.queuedAtSpooler().isEmpty)
    }

    /// ferry's tx copy pauses after each chunk of a packet, so that a
    /// signal or a full stick lands inside it.
    static let slowCopy = ["FERRY_TEST_COPY_DELAY_MS": "300"]

    func mountPoint(_ bed: TestBed, _ host: String, _ stick: LoopDevice) -> String {
        "\(bed.directory)/\(host)/mnt/\(URL(fileURLWithPath: stick.devnode).lastPathComponent)"
    }

    func load(_ bed: TestBed) async throws -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        for _ in 0..<3 {
            payloads.append(try randomBytes(12 << 20))
            try await bed.laptopSends(payloads.last!)
        }
        return payloads
    }

    @Test("ferry killed with SIGKILL during tx at the spooler and during rx at backupsvr loses nothing")
    func sigkill() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)

            let tx = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "tx", environment: Self.slowCopy)
            #expect(try await tx.waitForLog("sending to backupsvr"))
            tx.kill(SIGKILL, wholeGroup: true)
            #expect(try await tx.exit() == 128 + SIGKILL)
            #expect(LinuxMounter().isMounted(mountPoint(bed, "spooler", stick)), "a killed ferry leaves its mount behind")

            let recovered = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(recovered.status == 0, "the next plug-in recovers: \(recovered.error)")
            let rx = try BackgroundFerry(bed, host: "backupsvr", ["handle", stick.devnode], name: "rx")
            #expect(try await rx.waitForChild(["nncp-xfer", "-rx"]))
            rx.kill(SIGKILL, wholeGroup: true)
            #expect(try await rx.exit() == 128 + SIGKILL)
            // The stick now travels to the spooler. Under systemd the killed
            // unit's private mount namespace, and the mount in it, die with
            // the unit; here the test drops the mount as that would.
            try LinuxMounter().unmount(mountPoint(bed, "backupsvr", stick), lazy: true)

            try await finishTrips(bed, stick, payloads)
        }
    }

    @Test(
        "SIGTERM (the stick pulled) stops the NNCP command, unmounts, says so, and exits 3, which the unit counts as success; the next plug-in recovers"
    )
    func sigterm() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)
            let visit = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "term", environment: Self.slowCopy)
            #expect(try await visit.waitForLog("sending to backupsvr"))
            visit.kill(SIGTERM, wholeGroup: false)
            let status = try await visit.exit(seconds: 30)
            #expect(status == 3 || status == 0, "\(visit.output)")
            if status != 0 { #expect(visit.output.contains("interrupted")) }
            #expect(!LinuxMounter().isMounted(mountPoint(bed, "spooler", stick)))
            #expect(visit.group().isEmpty, "no NNCP command outlives ferry")
            try await finishTrips(bed, stick, payloads)
        }
    }

    @Test(
        "SIGTERM inside journal verification, inside syncfs, or while packets are listed: never safe to remove, exit 3 (interrupted) within 2 s, unmounted",
        arguments: ["journal", "sync"])
    func sigtermAt(point: String) async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)
            if point == "journal" {
                // The largest journal a reader reads, all forged: verifying
                // it takes a while, and a SIGTERM must not wait for that.
                for host in ["spooler", "backupsvr"] {
                    #expect(try await bed.ferry(host, "handle", stick.devnode).status == 0)
                }
                try bed.tamper(stick) { root in
                    let path = root + "/.ferry/journal"
                    let line = try TestBed.forgedCopyOfLastLine(path)
                    let text = try String(contentsOfFile: path, encoding: .utf8)
                    try (text + String(repeating: line + "\n", count: 9_000)).write(toFile: path, atomically: false, encoding: .utf8)
                }
            }
            let visit = try BackgroundFerry(
                bed, host: "spooler", ["handle", stick.devnode], name: "term-\(point)", environment: ["FERRY_TEST_SYNC_DELAY": "30"])
            #expect(try await visit.waitForLog(point == "journal" ? "reading the journal" : "syncing the stick"), "\(visit.output)")
            visit.kill(SIGTERM, wholeGroup: false)
            let signalled = Date()
            let status = try await visit.exit(seconds: 30)
            let waited = Date().timeIntervalSince(signalled)
            #expect(status == 3, "\(visit.output)")
            #expect(waited < 2, "ferry took \(waited) s to stop")
            #expect(!visit.output.contains("safe to remove"), "\(visit.output)")
            #expect(visit.output.contains("interrupted"))
            #expect(!LinuxMounter().isMounted(mountPoint(bed, "spooler", stick)))
            try await finishTrips(bed, stick, payloads)
        }
    }

    @Test("a stick remounted read-only mid-transfer fails the visit clearly, and nothing is lost")
    func readOnly() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)
            let visit = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "ro", environment: Self.slowCopy)
            #expect(try await visit.waitForLog("sending to backupsvr"))
            // ext4 refuses the remount while a file is open for writing, so
            // it is retried until it lands between two packets.
            var remounted = false
            while !remounted, visit.process.isRunning, !visit.output.contains("syncing the stick") {
                let result = try await bed.runner.run(
                    Command("/usr/bin/mount", ["-o", "remount,ro", mountPoint(bed, "spooler", stick)], timeout: .seconds(10)), input: nil)
                remounted = result.status.succeeded
            }
            let status = try await visit.exit()
            if status == 1 {
                #expect(remounted)
                #expect(visit.output.lowercased().contains("read-only file system"), "\(visit.output)")
            } else {
                #expect(status == 0, "\(visit.output)")
            }
            #expect(!visit.output.contains("Fatal error"))
            #expect(!LinuxMounter().isMounted(mountPoint(bed, "spooler", stick)))
            try await finishTrips(bed, stick, payloads)
        }
    }

    /// The entries in the spooler's outgoing directory on the stick mounted at `mount`.
    func outgoing(_ bed: TestBed, at mount: String) throws -> [String] {
        let directory = "\(mount)/nncp/\(try bed.nodeID("backupsvr"))/\(try bed.nodeID("spooler"))"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test("a tx copy killed midway leaves only a temporary, which backupsvr's nncp-xfer -rx passes over; whole packets it takes")
    func killedCopy() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)
            let tx = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "killed", environment: Self.slowCopy)
            let mount = mountPoint(bed, "spooler", stick)
            let deadline = Date().addingTimeInterval(60)
            // Killed inside the copy of a packet after the first.
            func midway() throws -> Bool {
                let names = try outgoing(bed, at: mount)
                return names.contains { $0.hasPrefix("nncpxfer") } && names.contains(where: Spool.isPacketName)
            }
            while Date() < deadline, tx.process.isRunning, !(try midway()) {
                try await Task.sleep(for: .milliseconds(5))
            }
            tx.kill(SIGKILL, wholeGroup: true)
            #expect(try await tx.exit() == 128 + SIGKILL)
            let left = try outgoing(bed, at: mount)
            let whole = left.filter(Spool.isPacketName)
            #expect(left.contains { $0.hasPrefix("nncpxfer") }, "killed inside a copy: \(left)")
            #expect(!whole.isEmpty && whole.count < payloads.count, "\(left)")

            // backupsvr's own nncp-xfer, on the stick as the kill left it.
            let rx = try await bed.runner.run(
                NNCP.xferReceive(config: bed.network.config("backupsvr"), directory: mount + "/nncp", timeout: .seconds(60)), input: nil)
            #expect(rx.status.succeeded, "\(rx.errorTail())")
            let after = try outgoing(bed, at: mount)
            #expect(after.filter(Spool.isPacketName).isEmpty, "every whole packet is taken: \(after)")
            #expect(after.contains { $0.hasPrefix("nncpxfer") }, "the temporary is not: \(after)")
            let received = try FileManager.default.contentsOfDirectory(
                atPath: "\(bed.network.spool("backupsvr"))/\(try bed.nodeID("spooler"))/rx"
            ).filter(Spool.isPacketName)
            #expect(Set(received) == Set(whole))
            try LinuxMounter().unmount(mount, lazy: true)

            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            try bed.tamper(stick) { root in
                let names = try outgoing(bed, at: root)
                #expect(!names.contains { $0.hasPrefix("nncpxfer") }, "the next visit removes the temporary: \(names)")
            }
            try await finishTrips(bed, stick, payloads)
        }
    }

    @Test("a stick that fills up inside a tx copy: one clear line, no temporary left, the rest stays queued and follows")
    func fullMidCopy() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)
            let tx = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "full", environment: Self.slowCopy)
            #expect(try await tx.waitForLog("sending to backupsvr"))
            // root's dd takes the blocks reserved for root too, as ferry would.
            _ = try await bed.runner.run(
                Command("/usr/bin/dd", ["if=/dev/zero", "of=\(mountPoint(bed, "spooler", stick))/filler", "bs=1M"], timeout: .seconds(60)),
                input: nil)
            let status = try await tx.exit()
            #expect(status == 0, "\(tx.output)")
            #expect(tx.output.contains("the stick filled up sooner than planned"), "\(tx.output)")
            #expect(!tx.output.contains("Fatal error"))
            let visit = try bed.lastVisit("spooler")
            #expect(visit.sent.packets < payloads.count)
            #expect(visit.sent.packets + visit.stayedBehind.count == payloads.count)
            try bed.tamper(stick) { root in
                let names = try outgoing(bed, at: root)
                #expect(!names.contains { $0.hasPrefix("nncpxfer") }, "\(names)")
                try FileManager.default.removeItem(atPath: root + "/filler")
            }
            try await finishTrips(bed, stick, payloads)
        }
    }

    @Test("two ferry handle runs for the same stick never overlap: the second waits for the spool lock")
    func concurrent() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payloads = try await load(bed)
            let first = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "first")
            let second = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "second")
            #expect(try await first.exit() == 0, "\(first.output)")
            #expect(try await second.exit() == 0, "\(second.output)")
            #expect((first.output + second.output).contains("another ferry is using the NNCP spool; waiting for it"))
            try await finishTrips(bed, stick, payloads)
        }
    }
}
