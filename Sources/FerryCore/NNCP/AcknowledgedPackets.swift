import Foundation

/// ferry's own record of the packets NNCP acknowledged on this host, by hash
/// and sender (`state-dir/acknowledged.json`).
///
/// A packet whose ACK was lost comes back on a later stick, and nncp-xfer
/// drops it there as already seen (`spool/SENDER/rx/seen/PKT`), so nncp-ack
/// never confirms it again. ferry does, with `nncp-ack -pkt`. But nncp-toss
/// writes `seen/` entries for ACK packets too, and an ACK must never be
/// acknowledged: only hashes that nncp-ack itself confirmed once, and so
/// knew to be data packets, are confirmed again.
struct AcknowledgedPackets {
    static let file = "acknowledged.json"

    var stateDir: String
    private var file: StateFile<[String: Set<String>]> { StateFile(Self.file, stateDir: stateDir) }

    /// Hashes by sender id.
    func load() throws -> [String: Set<String>] {
        try file.load() ?? [:]
    }

    /// Adds `hashes` from `sender`, and forgets those the spool holds
    /// neither in rx nor in rx/seen: a pruned seen/ would let a resent copy
    /// run again anyway, so the record grows no larger than seen/ does.
    /// Returns the record as written.
    @discardableResult
    func record(_ hashes: [String], from sender: String, spool: Spool) throws -> [String: Set<String>] {
        var known = try load()
        known[sender, default: []].formUnion(hashes)
        for (node, names) in known {
            // Two directory listings, not a stat for each hash the record holds.
            let held = spool.receivedNames(from: node)
            known[node] = names.filter(held.contains)
        }
        let kept = known.filter { !$0.value.isEmpty }
        try file.write(kept)
        return kept
    }

    /// The hashes an nncp-ack run says it made an ACK for: its log line for
    /// each reads "ACK to NODE of HASH is sent" (NNCP 8.8.2, `TxACK`). Read
    /// from the bytes: at 10,000 packets the log is a megabyte.
    static func confirmed(inLog log: [UInt8]) -> [String] {
        let sent = Array(" is sent".utf8)
        let of = Array(" of ".utf8)
        let ackTo = Array("ACK to ".utf8)
        return log.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard line.count > sent.count + 52, line.suffix(sent.count).elementsEqual(sent), line.contains(ackTo) else { return nil }
            let hash = line.dropLast(sent.count).suffix(52)
            guard line.dropLast(sent.count + 52).suffix(of.count).elementsEqual(of) else { return nil }
            let name = String(decoding: hash, as: UTF8.self)
            return Spool.isPacketName(name) ? name : nil
        }
    }
}
