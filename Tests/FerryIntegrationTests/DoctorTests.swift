import FerryCore
import FerryDemo
import Foundation
import Testing

/// A clock stopped at one moment.
struct StoppedClock: WallClock {
    var date: Date
    func now() -> Date { date }
}

@Suite(
    "ferry doctor names each problem with its fix", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly), .zfsAnswers)
struct DoctorTests {
    /// Runs `ferry doctor` at `host` with `break` done, expects exit 1 and a
    /// line holding `problem` and `fix`, then undoes it and expects a clean
    /// bill again.
    func broken(
        _ hosts: FreshHosts, _ host: String, _ what: String, problem: String, fix: String, break breakIt: () throws -> Void,
        restore: () throws -> Void
    ) async throws {
        try breakIt()
        let run = try await hosts.ferry(host, "doctor")
        #expect(run.status == 1, "\(what): \(run.output)")
        let line = run.output.split(separator: "\n").first { $0.contains(problem) }
        #expect(line?.contains("fix: \(fix)") == true, "\(what): \(run.output) \(run.error)")
        try restore()
        let again = try await hosts.ferry(host, "doctor")
        #expect(again.status == 0, "after restoring \(what): \(again.output)")
    }

    func edit(_ path: String, _ change: (String) -> String) throws -> () throws -> Void {
        let original = try String(contentsOfFile: path, encoding: .utf8)
        try change(original).write(toFile: path, atomically: true, encoding: .utf8)
        return { try original.write(toFile: path, atomically: true, encoding: .utf8) }
    }

    @Test(
        "each check broken in turn on paired hosts: config, NNCP config, name, peer, exec, senders, spool, drives, sticks, a laptop's via and handler; units, zfs and the clock in process"
    )
    func eachCheck() async throws {
        try await TestBed.with { bed in
            let hosts = FreshHosts(bed: bed)
            let stick = try await bed.stick("doctor-stick")
            try await hosts.pairAll(stick: stick)
            let drivePool = "dd\(getpid())"
            _ = try await bed.pool(drivePool, ownAltroot: true)
            #expect(try await hosts.ferry("backupsvr", "drive", "enroll", drivePool).status == 0)
            for host in ["spooler", "backupsvr"] { #expect(try await hosts.ferry(host, "handle", stick.devnode).status == 0) }
            for host in ["laptop", "spooler", "backupsvr"] {
                let clean = try await hosts.ferry(host, "doctor")
                try #require(clean.status == 0, "\(host): \(clean.output)")
            }
            let config = hosts.config("backupsvr")
            let nncp = hosts.nncp("backupsvr")
            var undo: () throws -> Void = {}

            try await broken(
                hosts, "backupsvr", "config", problem: "key \"junk\" is not a known setting", fix: "ferry init ROLE --name NAME",
                break: { undo = try edit(config) { "junk = 1\n" + $0 } }, restore: { try undo() })
            let hjson = hosts.root + "/backupsvr.hjson"
            try await bed.runner.check(Command("/bin/sh", ["-c", "\(Tool.nncpCfgdir) -load \(nncp) > \(hjson)"]))
            try await broken(
                hosts, "backupsvr", "an HJSON file", problem: "is one HJSON file", fix: "nncp-cfgdir -cfg \(hjson) -dump",
                break: {
                    undo = try edit(config) { $0.replacingOccurrences(of: "nncp-config = \"\(nncp)\"", with: "nncp-config = \"\(hjson)\"") }
                },
                restore: { try undo() })
            try await broken(
                hosts, "backupsvr", "no name", problem: "has no name for this node", fix: "add name = \"NAME\"",
                break: { undo = try edit(config) { $0.replacingOccurrences(of: "name = \"backupsvr\"\n", with: "") } },
                restore: { try undo() })
            try await broken(
                hosts, "backupsvr", "no peer", problem: "no peer is set", fix: "ferry pair DEVNODE --accept FINGERPRINT",
                break: { undo = try edit(config) { $0.replacingOccurrences(of: "peer = \"spooler\"\n", with: "") } },
                restore: { try undo() })
            try await broken(
                hosts, "backupsvr", "a handler without --config", problem: "zfsreceive lacks --config \(config)",
                fix: "write \(nncp)/neigh/laptop/exec/zfsreceive",
                break: {
                    undo = try edit(nncp + "/neigh/laptop/exec/zfsreceive") {
                        $0.split(separator: "\n").prefix(2).joined(separator: "\n") + "\n"
                    }
                },
                restore: { try undo() })
            try await broken(
                hosts, "backupsvr", "senders", problem: "laptop may run zfsreceive, but [receive].senders does not name it",
                fix: "add laptop = \"laptop\" to [receive] senders",
                break: {
                    undo = try edit(config) { $0.replacingOccurrences(of: "senders = { \"laptop\" = \"laptop\" }", with: "senders = {}") }
                },
                restore: { try undo() })
            let spool = hosts.home("backupsvr") + "/spool"
            try await broken(
                hosts, "backupsvr", "spool mode", problem: "is writable by others", fix: "chmod go-w \(spool)",
                break: { chmod(spool, 0o777) }, restore: { chmod(spool, 0o700) })
            try await broken(
                hosts, "backupsvr", "spool owner", problem: "is owned by uid 65534", fix: "chown -R 0: \(spool)",
                break: { chown(spool, 65534, 65534) }, restore: { chown(spool, 0, 0) })
            try await broken(
                hosts, "backupsvr", "no drive", problem: "no backup drive is enrolled", fix: "ferry drive enroll POOL",
                break: { undo = try edit(hosts.home("backupsvr") + "/state/drives.json") { _ in "[]" } }, restore: { try undo() })
            try await broken(
                hosts, "spooler", "no stick", problem: "no enrolled stick has visited this host yet", fix: "ferry enroll DEVNODE",
                break: { undo = try edit(hosts.home("spooler") + "/state/sticks.json") { _ in "[]" } }, restore: { try undo() })

            let laptopNeighbour = hosts.nncp("laptop") + "/neigh/backupsvr"
            try await broken(
                hosts, "laptop", "no via", problem: "backupsvr has no via", fix: "write the spooler's name into \(laptopNeighbour)/via",
                break: { unlink(laptopNeighbour + "/via") },
                restore: { try "spooler\n".write(toFile: laptopNeighbour + "/via", atomically: true, encoding: .utf8) })
            let restoreHandler = laptopNeighbour + "/exec/zfsrestore"
            try await broken(
                hosts, "laptop", "no zfsrestore", problem: "backupsvr's exec handler zfsrestore is missing",
                fix: "write \(restoreHandler) with one word a line",
                break: {
                    undo = try edit(restoreHandler) { $0 }; unlink(restoreHandler)
                }, restore: { try undo() })
            let stateHandler = laptopNeighbour + "/exec/ferrystate"
            try await broken(
                hosts, "laptop", "a ferrystate not running ferry state",
                problem: "backupsvr's exec handler ferrystate does not run ferry state",
                fix: "write \(stateHandler) with one word a line",
                break: { undo = try edit(stateHandler) { $0.replacingOccurrences(of: "\nstate\n", with: "\nreceive\n") } },
                restore: { try undo() })
            let resultHandler = nncp + "/neigh/laptop/exec/ferrystate"
            try await broken(
                hosts, "backupsvr", "no ferrystate for the laptop's verify results",
                problem: "laptop's exec handler ferrystate is missing", fix: "write \(resultHandler) with one word a line",
                break: {
                    undo = try edit(resultHandler) { $0 }; unlink(resultHandler)
                }, restore: { try undo() })

            // What the ferry binary here cannot be made to see: systemd, a
            // host without zpool, and a clock set back, through the same
            // checks run in process.
            let scratch = hosts.root + "/system"
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            func findings(layout: SystemLayout, clock: any WallClock = SystemClock()) async -> [DoctorFinding] {
                await FerryCore.Doctor(configPath: config, runner: bed.runner, clock: clock, layout: layout).run().filter { !$0.ok }
            }
            let units = await findings(layout: SystemLayout(root: scratch, systemdRunning: true))
            #expect(units.map(\.check) == ["units", "zfs"])
            #expect(
                units.first?.line
                    == "units: the udev rule 90-ferry.rules is not installed — fix: make install (as root), then systemctl daemon-reload and udevadm control --reload"
            )
            #expect(units.last?.line == "zfs: /usr/sbin/zpool is missing — fix: apt-get install zfsutils-linux (or zfs-fuse)")
            let clock = await findings(layout: SystemLayout(), clock: StoppedClock(date: Date(timeIntervalSince1970: 1_000_000_000)))
            #expect(clock.map(\.check) == ["clock"])
            #expect(clock.first?.problem?.hasPrefix("the clock says 2001-09-09T01:46:40Z, before this host's last visit at") == true)
        }
    }
}
