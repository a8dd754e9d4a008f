import Foundation
import Testing

@testable import FerryCore

/// The stream store applied to a drive with zfs faked: what arrives out of
/// order goes onto the drive in chain order, parents first.
@Suite("The stream store: the order streams go onto a drive")
struct StoreOrderTests {
    static let pool = "backup-a"
    static let root = "backup-a/laptop/tank/root"
    static let home = "backup-a/laptop/tank/root/home"

    static func missing(_ dataset: String) -> CommandResult {
        CommandResult(status: .exited(1), standardError: Array("cannot open '\(dataset)': dataset does not exist\n".utf8))
    }
    static func snapshots(_ dataset: String, _ guids: [UInt64]) -> CommandResult {
        .output(
            guids.enumerated().map { index, guid in
                "\(dataset)@s\(index + 1)\tguid\t\(guid)\t-\n\(dataset)@s\(index + 1)\tcreatetxg\t\(index + 10)\t-\n"
            }.joined())
    }
    static func listSnapshots(_ dataset: String) -> Command { Zfs.get(["guid", "createtxg", "creation"], of: [dataset], depth: 1) }

    /// Stores a stream of `dataset` (HOST/DATASET) that arrived at `received`.
    func store(_ store: StreamStore, _ dataset: String, to: UInt64, from: UInt64, received: String) throws {
        let header = try StreamHeader(parsing: beginRecord(toGUID: to, fromGUID: from, name: "tank/x@s\(to)"))
        let id = StoredStream.id(for: header)
        let file = try store.create(id)
        try writeAll(file.rawValue, (beginRecord(toGUID: to, fromGUID: from, name: "tank/x@s\(to)") + endRecord(toGUID: to))[...])
        let stream = StoredStream(
            id: id, sender: "laptop", dataset: try DatasetName(dataset), header: header, bytes: 624, received: received, applied: [])
        try store.commit(stream, file: file)
        try file.close()
    }

    @Test("a child's full stream that arrived first waits for its parent's full stream and that one's increment; then the store is empty")
    func parentsFirst() async throws {
        let world = FakeWorld()
        let context = world.context()
        let drive = EnrolledDrive(pool: Self.pool, guid: "42", enrolled: "2026-11-01T00:00:00Z", place: .dock)
        try context.drives.enroll(drive)
        let store = try StreamStore(stateDir: context.config.stateDir)
        try self.store(store, "laptop/tank/root/home", to: 0x30, from: 0, received: "2026-11-01T00:00:01Z")
        try self.store(store, "laptop/tank/root", to: 0x10, from: 0, received: "2026-11-01T00:00:02Z")
        try self.store(store, "laptop/tank/root", to: 0x20, from: 0x10, received: "2026-11-01T00:00:03Z")

        let runner = world.runner
        let receiveRoot = Zfs.receive(into: Self.root, options: ["-u"])
        let receiveHome = Zfs.receive(into: Self.home, options: ["-u"])
        // Before its full stream the root does not exist (asked twice: is it
        // ready, is something in the way); then it holds s1, then s1 and s2.
        runner.answer(
            Self.listSnapshots(Self.root), with: Self.missing(Self.root), Self.missing(Self.root), Self.snapshots(Self.root, [0x10]),
            Self.snapshots(Self.root, [0x10, 0x20]))
        runner.answer(Self.listSnapshots(Self.home), with: Self.missing(Self.home))
        for dataset in [Self.root, Self.home] {
            runner.answer(Self.listSnapshots(dataset + "/%recv"), with: Self.missing(dataset + "/%recv"))
            runner.answer(Zfs.get(["readonly", "canmount"], of: [dataset]), with: .output(""))
            runner.answer(Zfs.set("readonly", "on", on: dataset), with: .output(""))
            runner.answer(Zfs.set("canmount", "noauto", on: dataset), with: .output(""))
        }
        for container in ["backup-a/laptop", "backup-a/laptop/tank"] {
            runner.answer(Self.listSnapshots(container), with: Self.missing(container))
            runner.answer(Zfs.createContainer(container), with: .output(""))
        }
        runner.answer(receiveRoot, with: .output(""))
        runner.answer(receiveHome, with: .output(""))

        let outcome = try await StoreApplier(context: context, store: store).applyPending(
            present: [PresentDrive(drive: drive)], options: ReceiveOptions(configured: ["-u"]))

        #expect(outcome == StoreApplier.Outcome(applied: 3, failures: []))
        let order = runner.calls.filter { $0.arguments.first == "receive" || $0.arguments.first == "create" }
        #expect(
            order == [
                Zfs.createContainer("backup-a/laptop"), Zfs.createContainer("backup-a/laptop/tank"), receiveRoot, receiveRoot,
                receiveHome,
            ])
        // Each receive is made read-only and unmountable before the next one.
        let afterFirst = runner.calls.drop { $0 != receiveRoot }.dropFirst().prefix(3)
        #expect(
            Array(afterFirst) == [
                Zfs.get(["readonly", "canmount"], of: [Self.root]), Zfs.set("readonly", "on", on: Self.root),
                Zfs.set("canmount", "noauto", on: Self.root),
            ])
        #expect(try store.streams().isEmpty)
        #expect(
            try ReceivedDatasets(stateDir: context.config.stateDir).load().map(\.dataset) == ["laptop/tank/root", "laptop/tank/root/home"])
    }
}

/// What the store lets go of: a stream every drive holds, or one a drive
/// away can get from a drive in the dock.
@Suite("The stream store: what it keeps for the drives away")
struct StoreKeepTests {
    static let root = "backup-a/laptop/tank/root"

    func world(awayBase: String?) throws -> (FakeWorld, FerryContext, StreamStore, EnrolledDrive, EnrolledDrive) {
        let world = FakeWorld()
        let context = world.context()
        let a = EnrolledDrive(pool: "backup-a", guid: "1", enrolled: "2026-11-01T00:00:00Z", place: .dock)
        var b = EnrolledDrive(pool: "backup-b", guid: "2", enrolled: "2026-11-01T00:00:00Z", place: .offsite)
        b.datasets = awayBase.map { [DriveDataset(dataset: "laptop/tank/root", snapshot: $0, created: nil)] } ?? []
        try context.drives.enroll(a)
        try context.drives.enroll(b)
        let store = try StreamStore(stateDir: context.config.stateDir)
        try StoreOrderTests().store(store, "laptop/tank/root", to: 0x20, from: 0x10, received: "2026-11-01T00:00:01Z")
        var stream = try #require(try store.streams().first)
        stream.applied = [a.guid]
        try store.save(stream)
        // A holds s1 (0x10) and s2 (0x20).
        world.runner.answer(StoreOrderTests.listSnapshots(Self.root), with: StoreOrderTests.snapshots(Self.root, [0x10, 0x20]))
        return (world, context, store, a, b)
    }

    @Test("a drive away whose newest snapshot is on a drive in the dock, or that has none of the dataset, gets it from that drive")
    func dropped() async throws {
        for base in ["s1", nil] as [String?] {
            let (world, context, store, a, b) = try world(awayBase: base)
            #expect(try store.streams().count == 1)
            try await StoreApplier(context: context, store: store).prune(enrolled: [a, b], present: [PresentDrive(drive: a)])
            #expect(try store.streams().isEmpty, "base \(base ?? "none")")
            withExtendedLifetime(world) {}
        }
    }

    @Test(
        "kept: when the away drive's newest is not on the drive in the dock, when no drive in the dock holds it, or when a lacking drive is here"
    )
    func kept() async throws {
        let (world, context, store, a, b) = try world(awayBase: "s0")
        defer { withExtendedLifetime(world) {} }
        try await StoreApplier(context: context, store: store).prune(enrolled: [a, b], present: [PresentDrive(drive: a)])
        #expect(try store.streams().count == 1)
        try await StoreApplier(context: context, store: store).prune(enrolled: [a, b], present: [])
        #expect(try store.streams().count == 1)
        var here = b
        here.place = .dock
        try await StoreApplier(context: context, store: store).prune(
            enrolled: [a, here], present: [PresentDrive(drive: a), PresentDrive(drive: here)])
        #expect(try store.streams().count == 1)
    }
}
