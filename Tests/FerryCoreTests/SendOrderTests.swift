import Foundation
import Testing

@testable import FerryCore

/// `ferry send` with zfs and nncp-exec faked: the `ferry:sent` mark is the
/// only record of what reached NNCP, so it must never run ahead of it.
@Suite("ferry send: the mark moves only after nncp-exec succeeds")
struct SendOrderTests {
    static let dataset = "tank/root"
    static let mark = "ferry-20261101T000000Z"
    static let new = "ferry-20261102T000000Z"

    /// A laptop whose dataset was last sent at `mark`, and whose new
    /// snapshot `new` is the one to go now.
    func world() -> (world: FakeWorld, sender: SnapshotSender, exec: Command, send: Command) {
        let world = FakeWorld()
        var context = world.context(role: .laptop, as: "laptop", peer: "backupsvr")
        context.config.nncpUser = ""
        context.config.send.host = "laptop"
        let nncp = world.nodes.config(of: "laptop")
        let d = Self.dataset
        world.runner.answer(Zfs.get([SnapshotSender.markProperty], of: [d]), with: .output("\(d)\tferry:sent\t\(Self.mark)\tlocal\n"))
        world.runner.answer(Zfs.snapshot(d, named: Self.new), with: .output(""))
        world.runner.answer(
            Zfs.get(["guid", "createtxg", "creation"], of: [d], depth: 1),
            with: .output(
                """
                \(d)@\(Self.mark)\tguid\t111\t-
                \(d)@\(Self.mark)\tcreatetxg\t10\t-
                \(d)@\(Self.mark)\tcreation\t1790000000\t-
                \(d)@\(Self.new)\tguid\t222\t-
                \(d)@\(Self.new)\tcreatetxg\t20\t-
                \(d)@\(Self.new)\tcreation\t1790086400\t-

                """))
        let send = Zfs.send(d, snapshot: Self.new, from: Self.mark)
        let exec = NNCP.exec(
            config: nncp.path, nice: SnapshotSender.niceness, node: "backupsvr", handle: SnapshotSender.handle, arguments: ["laptop/\(d)"])
        world.runner.answer(send, with: .output(""))
        return (world, SnapshotSender(context: context, nncp: nncp), exec, send)
    }

    @Test("a failing nncp-exec leaves the mark and every snapshot where they were")
    func execFails() async {
        let (world, sender, exec, send) = world()
        world.runner.answer(exec, with: CommandResult(status: .exited(1), standardError: Array("spool is full\n".utf8)))

        let result = await sender.send(Self.dataset, snapshot: Self.new)

        #expect(result.queued.isEmpty)
        #expect(result.error?.contains("nncp-exec failed for tank/root@\(Self.new)") == true)
        #expect(world.runner.calls.suffix(2) == [send, exec])
        #expect(!world.runner.calls.contains { $0.arguments.first == "set" || $0.arguments.first == "destroy" })
    }

    @Test("after nncp-exec succeeds the mark moves to the new snapshot, and only then is the old one pruned")
    func execSucceeds() async {
        let (world, sender, exec, send) = world()
        let setMark = Zfs.set(SnapshotSender.markProperty, Self.new, on: Self.dataset)
        let prune = Zfs.destroySnapshot(Self.dataset, named: Self.mark)
        world.runner.answer(exec, with: .output(""))
        world.runner.answer(setMark, with: .output(""))
        world.runner.answer(prune, with: .output(""))

        let result = await sender.send(Self.dataset, snapshot: Self.new)

        #expect(result.error == nil)
        #expect(result.queued == [Self.new])
        #expect(world.runner.calls.suffix(4) == [send, exec, setMark, prune])
    }
}
