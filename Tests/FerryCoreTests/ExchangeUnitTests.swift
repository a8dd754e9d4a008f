import Foundation
import SystemPackage
import Testing

@testable import FerryCore

@Suite("Capacity planning")
struct CapacityPlanTests {
    func packet(_ name: Character, _ size: UInt64, nice: UInt8 = 224, age: TimeInterval = 0) -> QueuedPacket {
        QueuedPacket(name: String(repeating: name, count: 52), size: size, nice: nice, queued: Date(timeIntervalSince1970: 1_000_000 - age))
    }

    @Test("packets go by niceness, then age, as many as fit; the rest stays behind")
    func order() {
        let queued = [
            packet("A", 4 << 20, age: 10), packet("B", 4 << 20, age: 20), packet("C", 1 << 20, nice: 96), packet("D", 4 << 20, age: 5),
        ]
        let plan = CapacityPlan(queued: queued, onStick: [], free: 10 << 20, total: 64 << 20, reserve: 1 << 20)
        #expect(plan.send.map(\.name.first) == ["C", "B"])
        #expect(plan.stayBehind.map(\.name.first) == ["A", "D"])
        #expect(!plan.sendsEverything)
    }

    @Test("within a niceness no younger packet passes one that stays behind, so parts go in order; other nicenesses still go")
    func inOrder() {
        let queued = [
            packet("A", 4 << 20, age: 30), packet("B", 4 << 20, age: 20), packet("C", 1 << 20, age: 10), packet("D", 1 << 20, nice: 160),
            packet("E", 100 << 20, age: 40),
        ]
        let plan = CapacityPlan(queued: queued, onStick: [], free: 7 << 20, total: 64 << 20, reserve: 1 << 20)
        #expect(plan.send.map(\.name.first) == ["D", "A"])
        #expect(plan.stayBehind.map(\.name.first) == ["B", "C"], "C would fit, but B, older, stays behind")
        #expect(plan.tooBig.map(\.name.first) == ["E"], "a packet that can never go holds nothing back")
    }

    @Test("a packet larger than the whole stick is set apart; one already on the stick is not sent again")
    func tooBigAndPresent() {
        let plan = CapacityPlan(
            queued: [packet("A", 100 << 20), packet("B", 1000), packet("C", 1000)], onStick: [String(repeating: "C", count: 52)],
            free: 60 << 20, total: 64 << 20, reserve: 1 << 20)
        #expect(plan.tooBig.map(\.name.first) == ["A"])
        #expect(plan.alreadyOnStick.map(\.name.first) == ["C"])
        #expect(plan.send.map(\.name.first) == ["B"])
        #expect(!plan.sendsEverything)
    }

    @Test(
        "a packet over the filesystem's largest file is too big for the stick, whatever its free space",
        arguments: [("vfat", false), ("exfat", true), ("ext4", true)])
    func largestFile(type: String, fits: Bool) {
        let fourGiB: UInt64 = 4 << 30
        let plan = CapacityPlan(
            queued: [packet("A", fourGiB), packet("B", fourGiB - 1)], onStick: [], free: 60 << 30, total: 64 << 30, reserve: 1 << 20,
            largestFile: StickFilesystem(type: type).largestFile)
        #expect(plan.tooBig.map(\.name.first) == (fits ? [] : ["A"]))
        #expect(plan.send.map(\.name.first) == (fits ? ["A", "B"] : ["B"]))
    }

    @Test("when everything fits, nncp-xfer may send the whole queue")
    func everything() {
        let plan = CapacityPlan(
            queued: [packet("A", 1000), packet("B", 2000)], onStick: [], free: 60 << 20, total: 64 << 20, reserve: 1 << 20)
        #expect(plan.sendsEverything)
        #expect(plan.sendBytes == 3000)
    }
}

@Suite("The stick's nncp tree and the spool")
struct StickTreeTests {
    let scratch = TemporaryDirectory()
    let me = String(repeating: "M", count: 52)
    let peer = String(repeating: "P", count: 52)
    let other = String(repeating: "O", count: 52)
    let packet = String(repeating: "K", count: 52)

    @Test("incoming, outgoing and foreign packets are counted; links and leftover temporaries are removed")
    func walk() throws {
        scratch.write("nncp/\(me)/\(peer)/\(packet)", "12345")
        scratch.write("nncp/\(peer)/\(me)/\(packet)", "x")
        scratch.write("nncp/\(peer)/\(me)/nncpxfer123", "partial")
        scratch.write("nncp/\(other)/\(me)/\(packet)", "x")
        try FileManager.default.createSymbolicLink(
            atPath: scratch.path + "/nncp/\(me)/\(peer)/" + String(repeating: "L", count: 52), withDestinationPath: "/etc/passwd")
        let (found, _) = try StickPackets.prepare(root: SafeDirectory(path: scratch.path), selfID: me, peerID: peer, owner: nil)
        #expect(found.incoming == [peer: [packet: 5]])
        #expect(found.outgoing == [packet])
        #expect(found.foreign == [other: 1])
        #expect(found.removed.count == 2)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/nncp/\(peer)/\(me)/nncpxfer123"))
    }

    @Test("names that are not UTF-8 are removed or left as any other, at every level of nncp/, and shown escaped")
    func namesThatAreNotUTF8() throws {
        scratch.write("nncp/\(me)/\(peer)/\(packet)", "12345")
        let levels = ["nncp", "nncp/\(me)", "nncp/\(me)/\(peer)"]
        for level in levels {
            let directory = Array((scratch.path + "/" + level + "/").utf8)
            try #require(rawPath(directory + Array("sym".utf8) + [0xFF]) { symlink("/etc/passwd", $0) } == 0)
            try #require(rawPath(directory + Array("fifo".utf8) + [0xFE]) { mkfifo($0, 0o600) } == 0)
            try #require(rawPath(directory + Array("dir".utf8) + [0xFF]) { mkdir($0, 0o700) } == 0)
        }
        let (found, _) = try StickPackets.prepare(root: SafeDirectory(path: scratch.path), selfID: me, peerID: peer, owner: nil)
        #expect(found.incoming == [peer: [packet: 5]])
        #expect(Set(found.removed) == Set(levels.flatMap { ["\($0)/sym\\xFF", "\($0)/fifo\\xFE"] }))
        #expect(Set(found.ignored) == Set(levels.map { "\($0)/dir\\xFF" }))
        for level in levels {
            let names = try SafeDirectory(path: scratch.path + "/" + level).entryNames().map(\.description)
            #expect(!names.contains { $0.hasPrefix("sym") || $0.hasPrefix("fifo") }, "\(level): \(names)")
            #expect(names.contains("dir\\xFF"))
        }
    }

    @Test("an entry name keeps its bytes and shows them escaped")
    func entryName() {
        let name = EntryName(bytes: Array("a\u{1B}[2J".utf8) + [0xFF, 0x41, 0xC3])
        #expect(name.string == nil)
        #expect(name.description == "a\\u{1B}[2J\\xFFA\\xC3")
        #expect(EntryName("plain").string == "plain" && EntryName("plain").description == "plain")
    }

    @Test("a new stick gets its nncp directory")
    func fresh() throws {
        let (found, directory) = try StickPackets.prepare(root: SafeDirectory(path: scratch.path), selfID: me, peerID: peer, owner: nil)
        #expect(found == StickPackets())
        #expect(directory.path.hasSuffix("/nncp"))
    }

    @Test("the niceness is read from the packet header")
    func niceness() throws {
        scratch.write("spool/\(peer)/tx/\(packet)", "NNCPE\0\0\u{6}\0\0\0\u{60}rest")
        scratch.write("spool/\(peer)/tx/junk", "x")
        let queued = try Spool(path: scratch.path + "/spool").queued(for: peer)
        #expect(queued.map(\.nice) == [96])
        #expect(queued.map(\.name) == [packet])
    }

    @Test("a tx directory that cannot be listed fails with its path and errno, never an empty queue")
    func unlistableQueue() throws {
        // Not a directory: an error that root meets as anyone does.
        scratch.write("spool/\(peer)/tx", "not a directory")
        #expect { try Spool(path: scratch.path + "/spool").queued(for: peer) } throws: {
            ($0 as? SpoolError)?.code == .unreadable(.notDirectory)
                && "\($0)" == "NNCP spool \(scratch.path)/spool/\(peer)/tx cannot be listed: \(Errno.notDirectory)"
        }
        // Permission denied, which root never gets from the kernel.
        var denied = Spool(path: scratch.path + "/spool")
        denied.listDirectory = { _ throws(Errno) in throw .permissionDenied }
        #expect { try denied.queued(for: peer) } throws: {
            ($0 as? SpoolError)?.code == .unreadable(.permissionDenied) && "\($0)".contains("/spool/\(peer)/tx cannot be listed: ")
        }
        // Nothing ever queued for the node: no tx directory, an empty queue.
        #expect(try Spool(path: scratch.path + "/spool").queued(for: "other") == [])
    }

    @Test("a toss has work only where some node's rx/ holds a packet; a spool that cannot be listed is tossed")
    func untossed() throws {
        let spool = Spool(path: scratch.path + "/spool")
        scratch.write("spool/\(peer)/tx/\(packet)", "queued for the peer: not a toss's")
        scratch.write("spool/\(peer)/rx/seen/\(packet)", "")
        scratch.write("spool/\(other)/rx/\(packet).part", "half received")
        #expect(!spool.holdsUntossed())
        scratch.write("spool/\(other)/rx/\(packet)", "received, not tossed")
        #expect(spool.holdsUntossed())
        var denied = Spool(path: scratch.path + "/empty")
        denied.listDirectory = { _ throws(Errno) in throw .permissionDenied }
        #expect(denied.holdsUntossed())
    }

    @Test("a missing spool is made; an unknown nncp-user is named")
    func spool() throws {
        let spool = Spool(path: scratch.path + "/spool")
        try spool.prepare(owner: "")
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/spool"))
        #expect { try Spool(path: scratch.path + "/other").prepare(owner: "no-such-user-here") } throws: {
            ($0 as? SpoolError)?.code == .noSuchUser && "\($0)".contains("nncp-user no-such-user-here does not exist")
        }
    }
}

@Suite("NNCP exchange commands")
struct ExchangeCommandTests {
    @Test("the spooler keeps its copies; backupsvr moves them")
    func xfer() {
        #expect(
            NNCP.xferSend(config: "/c", directory: "/s/nncp", node: "backupsvr", keep: true, timeout: .seconds(1)).arguments
                == ["-cfg", "/c", "-noprogress", "-tx", "-mkdir", "-keep", "-node", "backupsvr", "/s/nncp"])
        #expect(
            !NNCP.xferSend(config: "/c", directory: "/s", node: "spooler", keep: false, timeout: .seconds(1)).arguments.contains("-keep"))
        #expect(
            NNCP.xferReceive(config: "/c", directory: "/s/nncp", timeout: .seconds(1)).arguments == [
                "-cfg", "/c", "-noprogress", "-rx", "-mkdir", "/s/nncp",
            ])
    }

    @Test("nncp-ack's list on descriptor 4 comes out on standard output")
    func ack() {
        let command = NNCP.ack(config: "/c", node: "spooler", timeout: .seconds(1))
        #expect(command.executable == "/bin/sh")
        #expect(
            command.arguments == [
                "-c", "exec \"$@\" 4>&1 1>&2", "nncp-ack", "/usr/bin/nncp-ack", "-cfg", "/c", "-noprogress", "-node", "spooler",
            ])
    }

    @Test(
        "durations read as the config writes them",
        arguments: [("90s", 90), ("30m", 1800), ("6h", 21600), ("14d", 1_209_600), ("2w", 1_209_600)])
    func durations(text: String, seconds: Int64) {
        #expect(parseDuration(text) == .seconds(seconds))
    }

    @Test("bad durations are refused", arguments: ["", "14", "d", "-1d", "1y", "1.5h"])
    func badDurations(text: String) {
        #expect(parseDuration(text) == nil)
    }
}

/// Calls `body` with `bytes` as a NUL-terminated path: names that are not
/// UTF-8 cannot pass through a Swift String.
func rawPath(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> Int32) -> Int32 {
    (bytes + [0]).withUnsafeBufferPointer { buffer in buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
}
