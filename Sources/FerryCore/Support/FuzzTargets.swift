import Crypto
import Foundation

/// The parsers that read bytes from a stick or a stream, each fed the way
/// ferry feeds it, for the fuzz targets (`Sources/ferry-fuzz`,
/// `scripts/fuzz`). None of them may trap, whatever the bytes.
public enum FuzzTargets {
    public static let names = ["journal", "identity", "stream-header", "config", "state-message"]

    /// Runs the target `name` on `bytes`; false for an unknown name.
    public static func run(_ name: String, _ bytes: [UInt8]) -> Bool {
        switch name {
        case "journal": journal(bytes)
        case "identity": identity(bytes)
        case "stream-header": _ = try? StreamHeader(parsing: bytes)
        case "config": _ = try? FerryConfig.parse(String(decoding: bytes, as: UTF8.self), path: "/fuzz/ferry.toml")
        case "state-message": _ = try? StateMessage.decode(bytes)
        default: return false
        }
        return true
    }

    /// Each line through the verifier, as the reader streams them, then what
    /// a visit and `ferry journal` make of the result.
    static func journal(_ bytes: [UInt8]) {
        var verifier = Verifier(nncp: nodes)
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let torn = lines.last?.isEmpty == false
        if !torn { lines.removeLast() }
        for line in lines {
            if line.count > Journal.lineLimit {
                verifier.skipOverlong(hash: Journal.sha256(line))
            } else {
                verifier.consume(line)
            }
        }
        if torn { verifier.torn() }
        let journal = verifier.result
        _ = journal.latestTrusted(event: "visit", nodeID: writerID)?.decode(VisitReport.self)
        _ = JournalCommand.table(journal)
        _ = try? journal.jsonLines()
    }

    /// An identity file, decoded and checked as the first look does.
    static func identity(_ bytes: [UInt8]) {
        guard let identity = try? StickIdentity.decode(bytes, path: "/fuzz/identity") else { return }
        let device = BlockDevice(
            devnode: "/dev/fuzz", kernelName: "fuzz", size: 1 << 30,
            filesystem: FilesystemProbe(type: "ext4", label: "FERRY-1", uuid: identity.uuid))
        _ = try? identity.verify(device: device, nncp: nodes, trusting: "writer", path: "/fuzz/identity")
    }

    /// A fixed key, so that seeds signed with it (`seedJournal`) reach the
    /// paths of trusted records.
    static let seed = [UInt8](repeating: 7, count: 32)
    static var writerKey: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: seed) }
    static var writerID: String { Base32.encode(Array(SHA256.hash(data: writerKey.publicKey.rawRepresentation))) }
    static var nodes: NNCPConfig {
        let writer = NNCPNode(name: "writer", id: writerID, signPublicKey: Array(writerKey.publicKey.rawRepresentation))
        return NNCPConfig(
            path: "/fuzz/nncp.hjson", spool: "/fuzz/spool", log: "", selfID: writerID, signingSeed: seed,
            neighbours: ["self": writer, "writer": writer])
    }

    /// A journal of three signed visit records, for the fuzz corpus.
    public static func seedJournal(in directory: String) throws {
        let writer = JournalWriter(directory: try SafeDirectory(path: directory), nncp: nodes, clock: SystemClock())
        for _ in 0..<3 {
            var report = VisitReport(
                role: "backupsvr", node: "writer", peer: "spooler", stick: "FERRY-1 u", started: "2026-12-01T00:00:00Z")
            report.warnings = ["a warning"]
            try writer.append(event: "visit", role: "backupsvr", data: report)
        }
    }
}
