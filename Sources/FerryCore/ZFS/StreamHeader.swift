/// The first record of a ZFS send stream, DRR_BEGIN, which says where the
/// stream sits in its dataset's chain of snapshots.
///
/// Every record of a stream is a `dmu_replay_record_t` of 312 bytes, the
/// same in every ZFS from zfs-fuse to OpenZFS 2.x:
///
/// | offset | field |
/// |---|---|
/// | 0 | drr_type (u32): 0 for DRR_BEGIN, 5 for DRR_END |
/// | 4 | drr_payloadlen (u32) |
/// | 8 | drr_magic (u64), 0x2F5BACBAC |
/// | 16 | drr_versioninfo (u64): the low two bits say substream or compound |
/// | 24 | drr_creation_time (u64) |
/// | 32 | drr_type (u32), drr_flags (u32) |
/// | 40 | drr_toguid (u64) |
/// | 48 | drr_fromguid (u64), 0 for a full stream |
/// | 56 | drr_toname (256 bytes, NUL-terminated) "pool/fs@snap" |
///
/// DRR_END carries the same toguid at offset 40. A stream was written in its
/// sender's byte order, which the magic tells.
public struct StreamHeader: Sendable, Equatable, Codable {
    public static let recordSize = 312
    static let magic: UInt64 = 0x2_F5BA_CBAC
    static let typeBegin: UInt32 = 0
    static let typeEnd: UInt32 = 5
    static let substream: UInt64 = 1
    static let compoundStream: UInt64 = 2

    /// The GUID of the snapshot the stream makes.
    public var toGUID: UInt64
    /// The GUID of the snapshot the stream is based on; 0 for a full stream.
    public var fromGUID: UInt64
    /// The snapshot's name on the sender, "pool/fs@snap".
    public var toName: String
    /// Whether the sender's byte order differs from this machine's.
    public var byteSwapped: Bool
    /// When the snapshot was taken, in seconds since 1970 (drr_creation_time).
    public var creationTime: UInt64 = 0

    public var isFull: Bool { fromGUID == 0 }

    /// The snapshot part of `toName`, after the `@`.
    public var snapshot: String { String(toName[toName.index(after: toName.firstIndex(of: "@")!)...]) }

    /// Reads the header from the first 312 bytes of a stream.
    public init(parsing record: [UInt8]) throws(StreamError) {
        guard record.count >= Self.recordSize else {
            throw StreamError.notAStream(record.isEmpty ? "standard input is empty" : "it is only \(record.count) bytes long")
        }
        let native = Self.u64(record, 8, swapped: false)
        let swapped: Bool
        if native == Self.magic {
            swapped = false
        } else if native.byteSwapped == Self.magic {
            swapped = true
        } else {
            throw StreamError.notAStream("it does not start with the ZFS stream magic 0x2F5BACBAC")
        }
        guard Self.u32(record, 0, swapped: swapped) == Self.typeBegin else {
            throw StreamError.notAStream("its first record is not DRR_BEGIN")
        }
        switch Self.u64(record, 16, swapped: swapped) & 0x3 {
        case Self.substream: break
        case Self.compoundStream:
            throw StreamError.unsupported("it is a compound stream (zfs send -R or -I with clones); send one dataset per stream")
        default:
            throw StreamError.notAStream("its header type is unknown")
        }
        let nameBytes = record[56..<312].prefix { $0 != 0 }
        guard nameBytes.count < 256, let name = String(validating: nameBytes, as: UTF8.self) else {
            throw StreamError.notAStream("its snapshot name is not terminated text")
        }
        let parts = name.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, (try? DatasetName(String(parts[0]))) != nil, DatasetName.isValidComponent(parts[1]) else {
            throw StreamError.notAStream("its snapshot name \"\(printable(name))\" is not a valid ZFS snapshot name")
        }
        toGUID = Self.u64(record, 40, swapped: swapped)
        fromGUID = Self.u64(record, 48, swapped: swapped)
        toName = name
        byteSwapped = swapped
        creationTime = Self.u64(record, 24, swapped: swapped)
        guard toGUID != 0, toGUID != fromGUID else {
            throw StreamError.notAStream("its snapshot GUIDs are not valid")
        }
    }

    /// Whether the last 312 bytes of a stream are its DRR_END record: a
    /// stream cut short anywhere ends in something else.
    public func isEnd(_ record: some Collection<UInt8>) -> Bool {
        let bytes = Array(record)
        guard bytes.count == Self.recordSize else { return false }
        return Self.u32(bytes, 0, swapped: byteSwapped) == Self.typeEnd
            && Self.u32(bytes, 4, swapped: byteSwapped) == 0
            && Self.u64(bytes, 40, swapped: byteSwapped) == toGUID
    }

    private static func u64(_ bytes: [UInt8], _ offset: Int, swapped: Bool) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * index) }
        return swapped ? value.byteSwapped : value
    }

    private static func u32(_ bytes: [UInt8], _ offset: Int, swapped: Bool) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[offset + index]) << (8 * index) }
        return swapped ? value.byteSwapped : value
    }
}

/// A stream ferry will not receive.
public enum StreamError: FerryError, Equatable {
    case notAStream(String)
    case unsupported(String)
    case truncated(expectedEndOf: String, bytes: UInt64)

    public var description: String {
        switch self {
        case .notAStream(let why): "standard input is not a ZFS send stream: \(why)"
        case .unsupported(let why): "the ZFS stream is not one ferry receives: \(why)"
        case .truncated(let name, let bytes):
            "the ZFS stream of \(printable(name)) is cut short after \(bytes) bytes: it does not end in its DRR_END record"
        }
    }
}
