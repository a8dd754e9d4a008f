import Foundation
import Testing

@testable import FerryCore

/// A DRR_BEGIN record as zfs writes it, little-endian.
func beginRecord(toGUID: UInt64, fromGUID: UInt64, name: String, versionInfo: UInt64 = 1, swapped: Bool = false) -> [UInt8] {
    var record = [UInt8](repeating: 0, count: StreamHeader.recordSize)
    func put64(_ value: UInt64, at offset: Int) {
        let value = swapped ? value.byteSwapped : value
        for index in 0..<8 { record[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
    put64(0x2_F5BA_CBAC, at: 8)
    put64(versionInfo, at: 16)
    put64(toGUID, at: 40)
    put64(fromGUID, at: 48)
    for (index, byte) in name.utf8.enumerated() { record[56 + index] = byte }
    return record
}

func endRecord(toGUID: UInt64) -> [UInt8] {
    var record = [UInt8](repeating: 0, count: StreamHeader.recordSize)
    record[0] = 5
    for index in 0..<8 { record[40 + index] = UInt8(truncatingIfNeeded: toGUID >> (8 * index)) }
    return record
}

@Suite("ZFS stream headers and dataset names")
struct StreamHeaderTests {
    @Test("DRR_BEGIN gives the GUIDs and the snapshot name, in either byte order")
    func parse() throws {
        for swapped in [false, true] {
            let header = try StreamHeader(parsing: beginRecord(toGUID: 7, fromGUID: 3, name: "tank/root@ferry-1", swapped: swapped))
            #expect(header.toGUID == 7)
            #expect(header.fromGUID == 3)
            #expect(header.toName == "tank/root@ferry-1")
            #expect(header.snapshot == "ferry-1")
            #expect(header.byteSwapped == swapped)
            #expect(!header.isFull)
        }
    }

    @Test("anything else is not a stream, and a compound stream is refused")
    func refusals() {
        #expect(throws: StreamError.notAStream("standard input is empty")) { try StreamHeader(parsing: []) }
        #expect(throws: StreamError.notAStream("it is only 10 bytes long")) { try StreamHeader(parsing: Array(repeating: 1, count: 10)) }
        #expect(throws: StreamError.notAStream("it does not start with the ZFS stream magic 0x2F5BACBAC")) {
            try StreamHeader(parsing: Array(repeating: 0, count: 312))
        }
        #expect(throws: StreamError.self) { try StreamHeader(parsing: beginRecord(toGUID: 1, fromGUID: 0, name: "x@y", versionInfo: 2)) }
        #expect(throws: StreamError.self) { try StreamHeader(parsing: beginRecord(toGUID: 1, fromGUID: 0, name: "../x@y")) }
        #expect(throws: StreamError.self) { try StreamHeader(parsing: beginRecord(toGUID: 1, fromGUID: 0, name: "tank/root")) }
        #expect(throws: StreamError.self) { try StreamHeader(parsing: beginRecord(toGUID: 0, fromGUID: 0, name: "a@b")) }
    }

    @Test("a stream is whole only when it ends in its own DRR_END")
    func end() throws {
        let header = try StreamHeader(parsing: beginRecord(toGUID: 42, fromGUID: 0, name: "a@b"))
        #expect(header.isEnd(endRecord(toGUID: 42)))
        #expect(!header.isEnd(endRecord(toGUID: 43)))
        #expect(!header.isEnd(endRecord(toGUID: 42).dropLast()))
        #expect(!header.isEnd([UInt8](repeating: 0, count: 312)))
    }

    @Test("dataset names: ZFS's characters, no .., no @, no empty part, nothing absolute")
    func names() throws {
        for good in ["laptop", "laptop/tank/root", "a-b_c.d:e/f"] { _ = try DatasetName(good) }
        for bad in ["", "/etc", "../etc", "a/../b", "a//b", "a/", "a@b", "a b", "a%b", "a\nb", "ä", String(repeating: "a", count: 256)] {
            #expect(throws: DatasetNameError.self, "\(bad)") { try DatasetName(bad) }
        }
        let name = try DatasetName("laptop/tank/root")
        #expect(name.isWithin(try DatasetName("laptop")))
        #expect(name.isWithin(try DatasetName("laptop/tank")))
        #expect(!name.isWithin(try DatasetName("lap")))
        #expect(!(try DatasetName("laptop2/x")).isWithin(try DatasetName("laptop")))
        #expect(name.parent == (try DatasetName("laptop/tank")))
        #expect(name.under("pool") == "pool/laptop/tank/root")
    }

    @Test("without -o, the properties move to zfs set after the receive")
    func receiveOptions() {
        let options = ReceiveOptions(configured: ["-u", "-o", "readonly=on", "-o", "compression=lz4"]).withoutPropertyOptions()
        #expect(options.arguments == ["-u"])
        #expect(options.setAfter.map { "\($0)=\($1)" } == ["compression=lz4", "readonly=on", "canmount=noauto"])
    }

    @Test("ferry's own snapshot names, and only those")
    func snapshotNames() {
        #expect(SnapshotSender.isOwnSnapshot("ferry-20261127T030000Z"))
        #expect(SnapshotSender.isOwnSnapshot("ferry-20261127T030000Z-12"))
        for other in ["ferry-20261127T030000Z-1", "ferry-20261127T030000", "ferry-2026112xT030000Z", "manual", "ferry-20261127T030000Z-x"] {
            #expect(!SnapshotSender.isOwnSnapshot(other), "\(other)")
        }
        #expect(SnapshotSender.order(of: "ferry-20261127T030000Z-12")! == ("20261127T030000Z", 12))
    }
}

@Suite("ferry receive's sender check")
struct ReceiveAuthorizationTests {
    @Test("a listed sender writes under its prefix; everyone else is refused, and kept queued when config could change")
    func check() throws {
        let nodes = TestNodes()
        var config = FerryConfig(path: "/etc/ferry/ferry.toml", role: .backupsvr)
        config.receive.senders = ["laptop": "laptop"]
        let receiver = StreamReceiver(context: FerryContext(config: config), nncp: nodes.config(of: "backupsvr"))
        let laptop = nodes.id("laptop")
        let accepted = try receiver.authorize(destination: "laptop/tank/root", senderID: laptop)
        #expect(accepted.sender == "laptop")
        #expect(accepted.dataset == (try DatasetName("laptop/tank/root")))
        let cases: [(String, String?, Bool)] = [
            ("laptop/x", nil, true), ("laptop/x", "NOTANODE", true), ("laptop/x", nodes.id("spooler"), true),
            ("laptop/x", nodes.id("backupsvr"), true),
            ("other/x", laptop, true), ("laptop2/x", laptop, true), ("../etc", laptop, false), ("laptop//x", laptop, false),
            ("laptop/x@y", laptop, false),
        ]
        for (destination, sender, keep) in cases {
            do {
                _ = try receiver.authorize(destination: destination, senderID: sender)
                Issue.record("\(destination) from \(sender ?? "nobody") was accepted")
            } catch {
                #expect(error.keepQueued == keep, "\(destination): \(error)")
            }
        }
    }
}
