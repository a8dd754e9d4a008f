import Foundation
import Testing

@testable import FerryCore

@Suite("Drive care: thinning plans, scrub status, capacity warnings and their commands")
struct DriveCareTests {
    let now = try! Date("2026-12-01T12:00:00Z", strategy: .iso8601)

    @Test("the commands of thinning, catch-up from a drive and scrubs, exactly")
    func argv() {
        #expect(
            Zfs.sendRange("a/laptop/tank", from: "s1", to: "s9").description == "/usr/sbin/zfs send -I a/laptop/tank@s1 a/laptop/tank@s9")
        #expect(Zfs.destroySnapshot("a/laptop/tank", named: "s1").description == "/usr/sbin/zfs destroy a/laptop/tank@s1")
        #expect(Zpool.scrub(pool: "a").description == "/usr/sbin/zpool scrub a")
        #expect(Zpool.scrub(pool: "a", stop: true).description == "/usr/sbin/zpool scrub -s a")
        #expect(Zpool.status(pool: "a").description == "/usr/sbin/zpool status -v a")
        #expect(
            Zfs.get(DriveThinner.properties, of: ["a"], recursive: true).description
                == "/usr/sbin/zfs get -H -p -o name,property,value,source -r guid,createtxg,creation,userrefs,origin a")
    }

    func rows(_ lines: [(String, String, String)]) -> [PropertyRow] {
        lines.map { PropertyRow(dataset: $0.0, property: $0.1, value: $0.2, source: "-") }
    }

    /// Four daily snapshots s1..s4 of a/laptop/tank, with s1 held.
    func pool(held: String = "s1", origin: String? = nil) -> [PropertyRow] {
        var lines: [(String, String, String)] = [("a/laptop/tank", "origin", "-")]
        for index in 1...4 {
            let name = "a/laptop/tank@s\(index)"
            lines += [
                (name, "guid", "\(100 + index)"), (name, "createtxg", "\(10 * index)"),
                (name, "creation", "\(Int(now.timeIntervalSince1970) - (5 - index) * 86400)"),
                (name, "userrefs", "s\(index)" == held ? "1" : "0"),
            ]
        }
        if let origin { lines.append(("a/laptop/clone", "origin", "a/laptop/tank@\(origin)")) }
        return rows(lines)
    }

    @Test("a plan keeps the held, the clone's origin, another drive's base and the admin's own; per-dataset schedules win")
    func plan() throws {
        let policy = RetentionPolicy(keep: try .parse("1"))
        let received: [String: Set<UInt64>] = ["laptop/tank": [101, 102, 103, 104]]
        let all = DriveThinner.plan(rows: pool(), pool: "a", policy: policy, received: received, bases: [:], now: now)
        #expect(all.destroy.map(\.1) == ["s2", "s3"])
        #expect(all.kept == 2)
        let guarded = DriveThinner.plan(
            rows: pool(origin: "s2"), pool: "a", policy: policy, received: ["laptop/tank": [101, 102, 104]],
            bases: ["laptop/tank": ["s2": ["b"]]], now: now)
        #expect(guarded.destroy.isEmpty)
        let override = DriveThinner.plan(
            rows: pool(held: ""), pool: "a", policy: RetentionPolicy(keep: try .parse("1"), datasets: ["laptop/tank": try .parse("3")]),
            received: received, bases: [:], now: now)
        #expect(override.destroy.map(\.1) == ["s1"])
    }

    @Test(
        "zfs-fuse's and OpenZFS's scrub lines, and the files with errors",
        arguments: [
            (
                "  pool: a\n state: ONLINE\n scrub: none requested\nconfig:\n",
                ScrubStatus(state: .none, repaired: nil, errors: 0, files: [])
            ),
            (
                " scrub: scrub in progress for 0h0m, 41.05% done, 0h0m to go\n",
                ScrubStatus(state: .running, repaired: nil, errors: 0, files: [])
            ),
            (
                " scrub: scrub completed after 0h0m with 0 errors on Tue Dec  1 09:10:01 2026\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\ta           ONLINE       0     0     0\n\t  /dev/loop3  ONLINE       0     0     0\n\nerrors: No known data errors\n",
                ScrubStatus(state: .completed, repaired: nil, errors: 0, files: [])
            ),
            (
                "  scan: scrub repaired 0B in 00:00:01 with 2 errors on Tue Dec  1 09:10:01 2026\nconfig:\n\n\tNAME   STATE  READ WRITE CKSUM\n\ta      ONLINE    0     0     4\n\nerrors: Permanent errors have been detected in the following files:\n\n        /a/laptop/tank/f\n",
                ScrubStatus(state: .completed, repaired: "0B", errors: 4, files: ["/a/laptop/tank/f"])
            ),
            (
                " scrub: scrub stopped after 0h0m with 0 errors on Tue Dec  1 09:10:01 2026\n",
                ScrubStatus(state: .stopped, repaired: nil, errors: 0, files: [])
            ),
        ])
    func scrubStatus(text: String, expected: ScrubStatus) {
        #expect(ScrubStatus.parse(text) == expected)
    }

    @Test("a scrub is due when none completed within scrub-after, or none ever did; not while one runs")
    func scrubDue() {
        let dock = DriveDock(context: FakeWorld().context())
        let now = FixedClock().now()
        func finished(daysAgo: Double, _ state: ScrubResult.State = .completed) -> ScrubResult {
            ScrubResult(state: state, started: nil, finished: now.addingTimeInterval(-daysAgo * 86400).rfc3339)
        }
        #expect(dock.scrubDue(nil))
        #expect(!dock.scrubDue(finished(daysAgo: 10)))
        #expect(dock.scrubDue(finished(daysAgo: 31)))
        #expect(dock.scrubDue(finished(daysAgo: 1, .stopped)), "a stopped scrub did not complete")
        #expect(!dock.scrubDue(ScrubResult(state: .running, started: now.rfc3339)))
    }

    @Test("a drive past drive-warn-percent and a scrub with errors are warnings")
    func warnings() {
        var drive = EnrolledDrive(pool: "a", guid: "1", enrolled: "2026-11-01T00:00:00Z", place: .dock, since: "2026-11-30T00:00:00Z")
        drive.capacity = DriveCapacity(size: 1000, used: 850, free: 150, seen: "2026-12-01T11:00:00Z")
        drive.scrub = ScrubResult(state: .completed, finished: "2026-12-01T10:00:00Z", errors: 1, files: ["/a/laptop/tank/f"])
        var away = EnrolledDrive(pool: "b", guid: "2", enrolled: "2026-11-01T00:00:00Z", place: .offsite, since: "2026-11-30T00:00:00Z")
        away.capacity = DriveCapacity(size: 1000, used: 100, free: 900, seen: "2026-11-30T00:00:00Z")
        let warnings = RotationPolicy(FerryConfig.Rotation()).warnings(
            drives: [drive, away], store: PacketCount(), diskBytes: nil, now: now)
        #expect(
            warnings == [
                "drive a is 85% full (850 B of 1000 B, as of 2026-12-01T11:00:00Z), past drive-warn-percent 80: thin it or replace it",
                "drive a's scrub (2026-12-01T10:00:00Z) found 1 error(s); files with errors: /a/laptop/tank/f: the drive is failing; replace it",
            ])
    }
}

@Suite("Catch-up from a drive in the dock, with zfs faked")
struct DriveCatchUpTests {
    static let source = "backup-a/laptop/tank/root"
    static let target = "backup-b/laptop/tank/root"

    /// Drive B holds s1 of the root; drive A holds the snapshots `source`,
    /// the last of them named s3.
    static func world(source: [UInt64]) -> (FakeWorld, FerryContext, PresentDrive, PresentDrive) {
        let world = FakeWorld()
        let context = world.context()
        let a = PresentDrive(drive: EnrolledDrive(pool: "backup-a", guid: "1", enrolled: "2026-11-01T00:00:00Z", place: .dock))
        let b = PresentDrive(drive: EnrolledDrive(pool: "backup-b", guid: "2", enrolled: "2026-11-01T00:00:00Z", place: .dock))
        world.runner.answer(
            Zfs.get(["createtxg", "creation"], of: ["backup-a"], recursive: true), with: .output("\(Self.source)@s3\tcreatetxg\t30\t-\n"))
        world.runner.answer(StoreOrderTests.listSnapshots(Self.source), with: StoreOrderTests.snapshots(Self.source, source))
        world.runner.answer(StoreOrderTests.listSnapshots(Self.target), with: StoreOrderTests.snapshots(Self.target, [0x10]))
        world.runner.answer(
            Zfs.probeReceive(options: context.config.receive.zfsReceiveOptions, target: "backup-b/ferry-probe"), with: .output(""))
        return (world, context, a, b)
    }

    @Test("a drive one dataset behind takes one zfs send -I from its newest to the source's newest, then is made read-only")
    func incremental() async throws {
        let (world, context, a, b) = Self.world(source: [0x10, 0x20, 0x30])
        let runner = world.runner
        let send = Zfs.sendRange(Self.source, from: "s1", to: "s3")
        let receive = Zfs.receive(into: Self.target, options: context.config.receive.zfsReceiveOptions)
        runner.answer(send, with: .output(""))
        runner.answer(receive, with: .output(""))
        runner.answer(Zfs.get(["readonly", "canmount"], of: [Self.target]), with: .output(""))
        runner.answer(Zfs.set("readonly", "on", on: Self.target), with: .output(""))
        runner.answer(Zfs.set("canmount", "noauto", on: Self.target), with: .output(""))

        let outcome = try await DriveDock(context: context).catchUpFromPresent(b, sources: [a])
        #expect(outcome == StoreApplier.Outcome(applied: 1, failures: []))
        #expect(runner.calls.filter { $0.arguments.first == "send" || $0.arguments == receive.arguments } == [send, receive])
        #expect(runner.calls.suffix(2) == [Zfs.set("readonly", "on", on: Self.target), Zfs.set("canmount", "noauto", on: Self.target)])
    }

    @Test("a source that no longer holds the drive's newest snapshot is passed over: the store is tried instead")
    func baseGone() async throws {
        let (world, context, a, b) = Self.world(source: [0x20, 0x30])
        let runner = world.runner
        let outcome = try await DriveDock(context: context).catchUpFromPresent(b, sources: [a])
        #expect(outcome == StoreApplier.Outcome())
        #expect(!runner.calls.contains { $0.arguments.first == "send" })
    }
}
