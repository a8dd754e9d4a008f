import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A stream kept on backupsvr until every enrolled drive has applied it.
public struct StoredStream: Sendable, Equatable, Codable {
    /// `TOGUID-FROMGUID` in hex: the file names in the store.
    public var id: String
    /// The NNCP node that sent it.
    public var sender: String
    /// Where it goes under each drive's pool: `HOST/DATASET`.
    public var dataset: DatasetName
    public var header: StreamHeader
    public var bytes: UInt64
    public var received: String
    /// The GUIDs of the drives that hold its snapshot.
    public var applied: [String]

    public static func id(for header: StreamHeader) -> String {
        Hex.encode(header.toGUID) + "-" + Hex.encode(header.fromGUID)
    }
}

extension StreamHeader {
    enum CodingKeys: String, CodingKey {
        case toGUID = "toguid", fromGUID = "fromguid", toName = "toname", byteSwapped = "byteswapped", creationTime = "creation"
    }

    // GUIDs are written as decimal strings, as zfs prints them: JSON numbers
    // past 2^53 lose digits in many readers.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let to = UInt64(try container.decode(String.self, forKey: .toGUID)),
            let from = UInt64(try container.decode(String.self, forKey: .fromGUID))
        else { throw DecodingError.dataCorruptedError(forKey: .toGUID, in: container, debugDescription: "not a GUID") }
        toGUID = to
        fromGUID = from
        toName = try container.decode(String.self, forKey: .toName)
        byteSwapped = try container.decode(Bool.self, forKey: .byteSwapped)
        creationTime = try container.decodeIfPresent(UInt64.self, forKey: .creationTime) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(String(toGUID), forKey: .toGUID)
        try container.encode(String(fromGUID), forKey: .fromGUID)
        try container.encode(toName, forKey: .toName)
        try container.encode(byteSwapped, forKey: .byteSwapped)
        try container.encode(creationTime, forKey: .creationTime)
    }
}

/// The stream store: `state-dir/streams/ID.zstream` holds a stream and
/// `ID.json` what ferry knows of it. A stream counts as stored once its
/// `.json` exists; that file is written last, after the stream is on disk.
public final class StreamStore: @unchecked Sendable {
    public static let directoryName = "streams"
    public let path: String
    private let directory: SafeDirectory

    public init(stateDir: String) throws {
        path = stateDir + "/" + Self.directoryName
        try LocalFiles.createDirectory(path, mode: 0o700)
        directory = try SafeDirectory(path: path)
    }

    /// Removes the files a receive cut short left: `.part` files, and
    /// streams without a `.json`. A split stream moved in without its
    /// `.json` (a crash in between) gets it back from its own copy. Only
    /// under the streams lock, where no receive is writing.
    public func removeLeftovers() {
        guard let names = try? directory.entries() else { return }
        let described = Set(names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })
        for name in names where name.hasSuffix(".part") || (name.hasSuffix(".zstream") && !described.contains(String(name.dropLast(8)))) {
            try? directory.remove(name)
        }
        for name in names where name.hasSuffix(Self.partsSuffix) && !described.contains(String(name.dropLast(Self.partsSuffix.count))) {
            let copy = path + "/" + name + "/" + PartStore.storedName
            if let data = FileManager.default.contents(atPath: copy), let stream = try? JSONDecoder().decode(StoredStream.self, from: data)
            {
                try? save(stream)
            }
        }
    }

    /// A split stream is kept as its parts, in `ID.parts/`, not joined into
    /// one file: the store never holds it twice.
    static let partsSuffix = ".parts"

    func partsDirectory(_ id: String) -> String { path + "/" + id + Self.partsSuffix }

    /// Every stored stream, oldest first.
    public func streams() throws -> [StoredStream] {
        let described = try directory.entries().filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }
        var streams: [StoredStream] = []
        for id in described.sorted() {
            let bytes = try directory.readFile(id + ".json", limit: 1 << 20)
            do {
                streams.append(try JSONDecoder().decode(StoredStream.self, from: Data(bytes)))
            } catch {
                throw ZFSError(.storeDamaged, problem: "\(path)/\(id).json is damaged (\(error)); move it and \(id).zstream aside")
            }
        }
        return streams.sorted { ($0.received, $0.id) < ($1.received, $1.id) }
    }

    public func contains(_ id: String) -> Bool {
        (try? directory.kind(of: id + ".json")) == .regular
    }

    /// A new, empty file for the stream `id`, to be committed or dropped.
    public func create(_ id: String) throws -> FileDescriptor {
        let name = path + "/" + id + ".zstream.part"
        unlink(name)
        let fd = Glibc.open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot create \(name): \(String(cString: strerror(errno)))")
        }
        return FileDescriptor(rawValue: fd)
    }

    /// Makes the stream `stream.id`, written to `file`, part of the store:
    /// the data reaches the disk before its description does.
    /// `writtenAs`: the name it was created under, when its ID was not
    /// known before it was written.
    public func commit(_ stream: StoredStream, file: FileDescriptor, writtenAs name: String? = nil) throws {
        let part = path + "/" + (name ?? stream.id) + ".zstream.part"
        guard fsync(file.rawValue) == 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot write \(part) to disk: \(String(cString: strerror(errno)))")
        }
        guard rename(part, path + "/" + stream.id + ".zstream") == 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot rename \(part): \(String(cString: strerror(errno)))")
        }
        try save(stream)
    }

    /// The first `count` bytes of the stream being written as `id`.
    public func prefix(ofPart id: String, count: Int) throws -> [UInt8] {
        let name = path + "/" + id + ".zstream.part"
        let fd = Glibc.open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot open \(name): \(String(cString: strerror(errno)))")
        }
        let file = FileDescriptor(rawValue: fd)
        defer { try? file.close() }
        return try StreamPump.readPrefix(file, count: count)
    }

    /// Drops a stream file that will not be kept.
    public func discard(_ id: String) {
        unlink(path + "/" + id + ".zstream.part")
    }

    /// Rewrites what ferry knows of a stored stream.
    public func save(_ stream: StoredStream) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try directory.writeFileAtomically(stream.id + ".json", bytes: Array(try encoder.encode(stream)), mode: 0o600)
    }

    /// Opens a stored stream for reading; a split stream reads through a
    /// pipe that its parts fill in order.
    public func open(_ id: String) throws -> FileDescriptor {
        if let parts = try? FileManager.default.contentsOfDirectory(atPath: partsDirectory(id)) {
            let files = parts.filter { $0.allSatisfy(\.isNumber) }.sorted().map { partsDirectory(id) + "/" + $0 }
            return try PartsReader.open(files)
        }
        let name = path + "/" + id + ".zstream"
        let fd = Glibc.open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot open \(name): \(String(cString: strerror(errno)))")
        }
        return FileDescriptor(rawValue: fd)
    }

    /// How many streams wait, and their bytes.
    public func size() throws -> PacketCount {
        let streams = try streams()
        return PacketCount(packets: streams.count, bytes: streams.reduce(0) { $0 + $1.bytes })
    }

    /// Removes a stream that every drive holds. The description goes
    /// first, so that a crash leaves a file that the next listing removes.
    public func remove(_ id: String) throws {
        try directory.remove(id + ".json")
        if (try? directory.kind(of: id + Self.partsSuffix)) == .directory {
            try LocalFiles.removeTree(partsDirectory(id))
        } else {
            try directory.remove(id + ".zstream")
        }
        try directory.syncDirectory()
    }
}
