import Foundation
import Synchronization
import Testing

@testable import FerryCore

/// `ferry handle` of an enrolled stick with every side effect faked: the
/// NNCP commands each role runs, and in what order (DESIGN.md section 2).
@Suite("The visit's commands, in order, for each role")
struct VisitOrderTests {
    let incoming = String(repeating: "I", count: 52)
    let outgoing = String(repeating: "O", count: 52)

    /// What the outgoing packet holds: an NNCP 8 packet's magic, then bytes.
    static let outgoingBytes = Array("NNCPE".utf8) + [0, 0, 6] + Array("outgoing".utf8)

    /// A stick at /dev/sdz1 enrolled by the spooler, carrying one packet for
    /// `node` from `peer`; `node`'s spool holds one packet for `peer`. The
    /// fake nncp-xfer moves the incoming packet from the stick into the
    /// spool's rx/ on -rx; ferry copies the outgoing one itself.
    func world(_ role: Role, node: String, peer: String) throws -> (world: FakeWorld, context: FerryContext, nncp: NNCPConfig) {
        var world = FakeWorld()
        world.devices["/dev/sdz1"] = .stick()
        let fixture = world.scratch.path + "/fixture"
        let identity = try StickIdentity.make(for: .stick(), nncp: world.nodes.config(of: "spooler"), at: Date())
        world.scratch.write("fixture/.ferry/identity", String(decoding: try identity.encoded(), as: UTF8.self))
        let me = world.nodes.id(node)
        let them = world.nodes.id(peer)
        world.scratch.write("fixture/nncp/\(me)/\(them)/\(incoming)", "incoming")
        world.scratch.write("spool/\(them)/tx/\(outgoing)", String(decoding: Self.outgoingBytes, as: UTF8.self))
        world.mounter.serve("/dev/sdz1", from: fixture)

        var nncp = world.nodes.config(of: node)
        nncp.spool = world.scratch.path + "/spool"
        var context = world.context(role: role, as: node, peer: peer)
        context.config.nncpUser = ""
        context.nncpSource = FixedNNCP(config: nncp)

        let stick = context.config.mountRoot + "/sdz1/nncp"
        let timeout = context.config.exchange.commandTimeout
        let incoming = incoming
        let received = "\(nncp.spool)/\(them)/rx"
        world.runner.onRun(NNCP.xferReceive(config: nncp.path, directory: stick, timeout: timeout)) {
            try? FileManager.default.removeItem(atPath: "\(stick)/\(me)/\(them)/\(incoming)")
            try? FileManager.default.createDirectory(atPath: received, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: "\(received)/\(incoming)", contents: Data("incoming".utf8))
        }
        return (world, context, nncp)
    }

    /// The outgoing packet as the visit left it on the stick, in nncp-xfer's layout.
    func outgoingOnStick(_ world: FakeWorld, node: String, peer: String) -> Data? {
        world.mounter.leftOnMedium["nncp/\(world.nodes.id(peer))/\(world.nodes.id(node))/\(outgoing)"]
    }

    @Test("at the spooler: rx, toss (ACKs release kept packets), then ferry's own tx copy; nothing is removed from the spool")
    func spooler() async throws {
        let (world, context, nncp) = try world(.spooler, node: "spooler", peer: "backupsvr")
        let stick = context.config.mountRoot + "/sdz1/nncp"
        let timeout = context.config.exchange.commandTimeout
        let expected = [
            NNCP.xferReceive(config: nncp.path, directory: stick, timeout: timeout),
            NNCP.toss(config: nncp.path, timeout: timeout),
        ]
        for command in expected { world.runner.answer(command, with: .output("")) }

        let recognition = try await Handler(context: context).handle(devnode: "/dev/sdz1")

        #expect(recognition.verdict == .stick)
        #expect(world.runner.calls == expected)
        let report = try #require(try VisitReport.last(stateDir: context.config.stateDir))
        #expect(report.received.packets == 1)
        #expect(report.sent.packets == 1)
        #expect(outgoingOnStick(world, node: "spooler", peer: "backupsvr") == Data(Self.outgoingBytes))
        #expect(FileManager.default.fileExists(atPath: nncp.spool + "/\(world.nodes.id("backupsvr"))/tx/\(outgoing)"))
    }

    @Test(
        "at backupsvr: rx, ack, ferry's own tx copy, then with the stick unmounted rm of what went onto it and the toss; no zpool with no drive enrolled"
    )
    func backupsvr() async throws {
        let (world, context, nncp) = try world(.backupsvr, node: "backupsvr", peer: "spooler")
        let stick = context.config.mountRoot + "/sdz1/nncp"
        let timeout = context.config.exchange.commandTimeout
        let toss = NNCP.toss(config: nncp.path, timeout: nil)
        let expected = [
            NNCP.xferReceive(config: nncp.path, directory: stick, timeout: timeout),
            NNCP.ack(config: nncp.path, node: "spooler", timeout: timeout),
            NNCP.removePackets(config: nncp.path, node: "spooler", timeout: timeout),
            toss,
        ]
        for command in expected { world.runner.answer(command, with: .output("")) }
        let unmountedBeforeToss = Mutex<Bool?>(nil)
        let unmountedBeforeRemoval = Mutex<Bool?>(nil)
        let mounter = world.mounter
        world.runner.onRun(toss) { unmountedBeforeToss.withLock { $0 = !mounter.unmounts.isEmpty } }
        world.runner.onRun(NNCP.removePackets(config: nncp.path, node: "spooler", timeout: timeout)) {
            // Both mounts, the look and the exchange, are undone by then.
            unmountedBeforeRemoval.withLock { $0 = mounter.unmounts.count == 2 }
        }

        let recognition = try await Handler(context: context).handle(devnode: "/dev/sdz1")

        #expect(recognition.verdict == .stick)
        #expect(world.runner.calls == expected)
        #expect(unmountedBeforeToss.withLock { $0 } == true)
        #expect(unmountedBeforeRemoval.withLock { $0 } == true, "nncp-rm is not part of the user's wait")
        let report = try #require(try VisitReport.last(stateDir: context.config.stateDir))
        #expect(report.received.packets == 1)
        #expect(report.sent.packets == 1)
        #expect(outgoingOnStick(world, node: "backupsvr", peer: "spooler") == Data(Self.outgoingBytes))
    }
}
