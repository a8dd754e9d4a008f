import Crypto
import Foundation

/// The trailer `ferry send` writes after the data of each part of a split
/// stream (DESIGN.md section 9). A part is the packet of
/// `nncp-exec ... zfsreceive HOST/DATASET --stream ID --part N`; its input
/// is the part's data followed by these 116 bytes, all numbers big-endian:
///
/// | offset | field |
/// |---|---|
/// | 0 | magic, the 8 bytes `FERRYPRT` |
/// | 8 | version (u8), 1 |
/// | 9 | flags (u8): 1 when this is the last part |
/// | 10 | reserved (2 bytes), 0 |
/// | 12 | stream ID (16 bytes): random, one per send attempt |
/// | 28 | part number (u32), from 1 |
/// | 32 | this part's data length (u64) |
/// | 40 | SHA-256 of this part's data (32 bytes) |
/// | 72 | last part only: the part count (u32) |
/// | 76 | last part only: the whole stream's length (u64) |
/// | 84 | last part only: SHA-256 over the parts' SHA-256s, in order (32 bytes) |
///
/// A trailer, not a header: the sender learns that a part is the last only
/// when `zfs send` ends, after nncp-exec has started. Each part is checked
/// as it arrives; the last part's check of the whole then needs only the
/// parts' hashes, not a second read of the stream.
public struct PartTrailer: Sendable, Equatable {
    public static let size = 116
    static let magic = Array("FERRYPRT".utf8)
    static let version: UInt8 = 1

    public var stream: StreamID
    public var part: Int
    public var length: UInt64
    public var digest: [UInt8]
    /// Set on the last part only.
    public var whole: Whole?

    /// What the last part says of the whole stream.
    public struct Whole: Sendable, Equatable, Codable {
        public var parts: Int
        public var length: UInt64
        /// SHA-256 over the concatenated SHA-256s of the parts, in hex.
        public var digest: String

        public init(parts: Int, length: UInt64, digest: String) {
            self.parts = parts
            self.length = length
            self.digest = digest
        }
    }

    public init(stream: StreamID, part: Int, length: UInt64, digest: [UInt8], whole: Whole? = nil) {
        self.stream = stream
        self.part = part
        self.length = length
        self.digest = digest
        self.whole = whole
    }

    public var bytes: [UInt8] {
        var out = Self.magic + [Self.version, whole == nil ? 0 : 1, 0, 0] + stream.bytes
        out += Self.bigEndian(UInt64(part), width: 4) + Self.bigEndian(length, width: 8) + digest
        if let whole {
            out += Self.bigEndian(UInt64(whole.parts), width: 4) + Self.bigEndian(whole.length, width: 8)
            out += Hex.decode(whole.digest) ?? [UInt8](repeating: 0, count: 32)
        } else {
            out += [UInt8](repeating: 0, count: 44)
        }
        return out
    }

    /// Reads the trailer from the last `size` bytes of a part.
    public init(parsing bytes: [UInt8]) throws(PartError) {
        guard bytes.count == Self.size, Array(bytes[0..<8]) == Self.magic else {
            throw .damaged("it does not end in a ferry part trailer (cut short, or not a part)")
        }
        guard bytes[8] == Self.version else { throw .damaged("its trailer has version \(bytes[8]); this ferry reads version 1") }
        guard bytes[9] <= 1, bytes[10] == 0, bytes[11] == 0 else { throw .damaged("its trailer has unknown flags") }
        stream = StreamID(bytes: Array(bytes[12..<28]))
        part = Int(Self.number(bytes[28..<32]))
        length = Self.number(bytes[32..<40])
        digest = Array(bytes[40..<72])
        if bytes[9] == 1 {
            whole = Whole(
                parts: Int(Self.number(bytes[72..<76])), length: Self.number(bytes[76..<84]), digest: Hex.encode(bytes[84..<116]))
        } else {
            guard bytes[72..<116].allSatisfy({ $0 == 0 }) else { throw .damaged("its trailer has a whole-stream check but no last flag") }
        }
    }

    /// The check of the whole stream from its parts' hashes, in order.
    public static func wholeDigest(_ parts: [[UInt8]]) -> String {
        var hasher = SHA256()
        for digest in parts { hasher.update(data: digest) }
        return Hex.encode(hasher.finalize())
    }

    static func bigEndian(_ value: UInt64, width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(width - 1 - $0))) }
    }

    static func number(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// The identity of one attempt at sending a split stream: 128 random bits,
/// written as 32 hex digits in `--stream`.
public struct StreamID: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public static func random() -> StreamID {
        var generator = SystemRandomNumberGenerator()
        return StreamID(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// Parses `--stream`: exactly 32 lower-case hex digits.
    public init(_ text: String) throws(PartError) {
        guard text.utf8.count == 32, let bytes = Hex.decode(text) else {
            throw .badArguments("--stream \(printable(text)) is not 32 lower-case hex digits")
        }
        self.bytes = bytes
    }

    public var description: String { Hex.encode(bytes) }
}

/// Why a part is refused.
public enum PartError: FerryError, Equatable {
    case badArguments(String)
    case damaged(String)
    case disagrees(String)
    case complete(String)
    case checkFailed(String)

    public var description: String {
        switch self {
        case .badArguments(let why): why
        case .damaged(let why): "the part is damaged: \(why)"
        case .disagrees(let why): why
        case .complete(let why): why
        case .checkFailed(let why): "the reassembled stream fails its check: \(why)"
        }
    }
}
