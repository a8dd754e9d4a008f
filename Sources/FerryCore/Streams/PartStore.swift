internal import CLinuxShims
import Crypto
import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A split stream whose parts are arriving: `state-dir/streams/parts/KEY/`
/// holds the parts that are here (`00000001`, ...) and this description,
/// `stream.json`. KEY is the sender's NNCP node id and the stream ID, so
/// that streams of two senders never mix.
public struct IncomingStream: Sendable, Equatable, Codable {
    public struct Part: Sendable, Equatable, Codable {
        public var number: Int
        public var bytes: UInt64
        public var digest: String
    }

    public var sender: String
    public var senderID: String
    public var dataset: DatasetName
    public var stream: String
    /// When its first part arrived.
    public var since: String
    /// From part 1's DRR_BEGIN, once part 1 is here.
    public var header: StreamHeader?
    public var parts: [Part]
    /// From the last part, once it is here.
    public var whole: PartTrailer.Whole?

    public var bytes: UInt64 { parts.reduce(0) { $0 + $1.bytes } }

    /// The parts not here yet: all of them up to the count once the last
    /// part has come, else the gaps below the highest part here.
    public var missing: [Int] {
        let present = Set(parts.map(\.number))
        let upTo = whole?.parts ?? (parts.map(\.number).max() ?? 0)
        return (1...max(upTo, 1)).filter { !present.contains($0) }
    }

    public var isComplete: Bool {
        guard let whole else { return false }
        return Set(parts.map(\.number)) == Set(1...whole.parts)
    }
}

/// What `ferry status` shows of a split stream that is not complete yet.
public struct IncompleteStreamStatus: Sendable, Equatable, Codable {
    public var dataset: String
    public var sender: String
    public var stream: String
    /// Known once part 1 is here.
    public var snapshot: String?
    public var partsPresent: Int
    /// Known once the last part is here.
    public var partsTotal: Int?
    public var missing: [Int]
    /// Set when the last part has not arrived, so the count is not known.
    public var lastPartMissing: Bool
    public var bytes: UInt64
    public var since: String

    /// One line for `ferry status`.
    public var line: String {
        let total = partsTotal.map { "\(partsPresent) of \($0) parts" } ?? "\(partsPresent) part(s), count not known yet"
        var waits: [String] = []
        if !missing.isEmpty { waits.append("part(s) \(missing.map(String.init).joined(separator: ", ")) missing") }
        if lastPartMissing { waits.append("the last part has not arrived") }
        return "incomplete stream \(dataset)@\(snapshot ?? "?") from \(sender): \(total), \(humanSize(bytes)), since \(since)"
            + (waits.isEmpty ? "" : "; waits: " + waits.joined(separator: "; "))
    }
}

/// The parts of split streams on backupsvr, until each stream is complete
/// and joins the stream store.
public struct PartStore: Sendable {
    public static let directoryName = "parts"
    static let descriptionName = "stream.json"
    /// The complete stream's description, written into its directory before
    /// the directory moves into the store, so that a crash in between is
    /// repaired by the store's next listing.
    public static let storedName = "stored.json"

    public let path: String

    public init(store: StreamStore) throws {
        path = store.path + "/" + Self.directoryName
        try LocalFiles.createDirectory(path, mode: 0o700)
    }

    /// What became of a part.
    public enum Outcome: Sendable, Equatable {
        case stored(IncomingStream)
        /// The same part was here already; the copy is dropped.
        case duplicate(IncomingStream)
        /// The part completed its stream, which passed its check.
        case complete(IncomingStream, key: String)
        /// The part belongs to an abandoned attempt at a snapshot that has
        /// joined the chain already; its parts are dropped.
        case abandoned(IncomingStream)
    }

    static func key(senderID: String, stream: StreamID) -> String { "\(senderID)-\(stream)" }

    static func partName(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// Stores part `number` of `stream`, read from `input` to its end.
    /// Every refusal throws `PartError`; the input has been read by then.
    public func accept(
        part number: Int, of stream: StreamID, sender: String, senderID: String, dataset: DatasetName, input: FileDescriptor,
        now: Date
    ) throws -> Outcome {
        let key = Self.key(senderID: senderID, stream: stream)
        let directory = path + "/" + key
        guard number >= 1, number < 100_000_000 else {
            _ = StreamPump.drain(input)
            throw PartError.badArguments("--part \(number) is not a part number (1 to 99999999)")
        }
        if FileManager.default.fileExists(atPath: path + "/" + key + ".done") {
            _ = StreamPump.drain(input)
            throw PartError.complete("stream \(stream) from \(sender) is complete or was dropped already; part \(number) is a late copy")
        }
        var incoming = try description(key)
        if let incoming, incoming.dataset != dataset {
            _ = StreamPump.drain(input)
            throw PartError.disagrees("part \(number) of stream \(stream) claims \(dataset), but its stream began as \(incoming.dataset)")
        }
        try LocalFiles.createDirectory(directory, mode: 0o700)
        let temporary = directory + "/" + Self.partName(number) + ".tmp"
        let received = try receive(into: temporary, input: input)
        var keep = false
        defer { if !keep { unlink(temporary) } }

        let trailer = try PartTrailer(parsing: received.trailer)
        guard trailer.stream == stream, trailer.part == number else {
            throw PartError.disagrees(
                "its trailer names part \(trailer.part) of stream \(trailer.stream), but its arguments part \(number) of stream \(stream)")
        }
        guard trailer.length == received.bytes, trailer.digest == received.digest else {
            throw PartError.damaged("it holds \(received.bytes) bytes, and its trailer says \(trailer.length) bytes with another SHA-256")
        }
        var stream =
            incoming
            ?? IncomingStream(
                sender: sender, senderID: senderID, dataset: dataset, stream: "\(stream)", since: now.rfc3339, parts: [])
        let digest = Hex.encode(received.digest)
        if let present = stream.parts.first(where: { $0.number == number }) {
            guard present.digest == digest else {
                throw PartError.disagrees("part \(number) of stream \(stream.stream) came twice with different contents")
            }
            return .duplicate(stream)
        }
        if number == 1 {
            do {
                stream.header = try StreamHeader(parsing: received.first)
            } catch {
                throw PartError.damaged("part 1 does not begin a ZFS stream: \(error)")
            }
        }
        if let whole = trailer.whole {
            if let known = stream.whole, known != whole {
                throw PartError.disagrees("the parts of stream \(stream.stream) disagree about the stream's size")
            }
            guard whole.parts == number, stream.parts.allSatisfy({ $0.number < number }) else {
                throw PartError.disagrees(
                    "part \(number) of stream \(stream.stream) says it is the last of \(whole.parts), but parts up to "
                        + "\(stream.parts.map(\.number).max() ?? 0) are here")
            }
            stream.whole = whole
        } else if let whole = stream.whole, number >= whole.parts {
            throw PartError.disagrees("part \(number) of stream \(stream.stream) lies beyond its last part, \(whole.parts)")
        }
        stream.parts.append(.init(number: number, bytes: received.bytes, digest: digest))
        stream.parts.sort { $0.number < $1.number }

        if stream.isComplete {
            try check(stream, directory: directory, temporary: temporary, number: number, tail: received.tail)
        }
        guard rename(temporary, directory + "/" + Self.partName(number)) == 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot rename \(temporary): \(String(cString: strerror(errno)))")
        }
        keep = true
        try save(stream, key: key)
        incoming = stream
        if !stream.isComplete, let header = stream.header,
            FileManager.default.fileExists(atPath: joinedMarker(sender: sender, toGUID: header.toGUID))
        {
            try? FileManager.default.removeItem(atPath: directory)
            markDone(key)
            return .abandoned(stream)
        }
        return stream.isComplete ? .complete(stream, key: key) : .stored(stream)
    }

    /// The whole stream's check: its length, the hash of its parts' hashes,
    /// and its last record, DRR_END. A stream that fails loses its last part
    /// (which carries the check), so that a good copy of it can still come.
    private func check(_ stream: IncomingStream, directory: String, temporary: String, number: Int, tail: [UInt8]) throws {
        guard let whole = stream.whole, let header = stream.header else { return }
        var problem: String?
        if stream.bytes != whole.length {
            problem = "its parts hold \(stream.bytes) bytes, and its last part says \(whole.length)"
        } else if PartTrailer.wholeDigest(stream.parts.map { Hex.decode($0.digest) ?? [] }) != whole.digest {
            problem = "the SHA-256 of its parts does not match what its last part says"
        } else if !header.isEnd(number == whole.parts ? tail : (try? streamTail(directory: directory, stream: stream)) ?? []) {
            problem = "\(StreamError.truncated(expectedEndOf: header.toName, bytes: stream.bytes))"
        }
        guard let problem else { return }
        if number != whole.parts {
            var kept = stream
            kept.parts.removeAll { $0.number == whole.parts || $0.number == number }
            kept.whole = nil
            unlink(directory + "/" + Self.partName(whole.parts))
            try save(kept, key: Self.key(senderID: stream.senderID, stream: try StreamID(stream.stream)))
        }
        throw PartError.checkFailed(problem + "; the last part is dropped, and a good copy of it completes the stream")
    }

    /// The last record's worth of bytes of a stream whose last part is short.
    private func streamTail(directory: String, stream: IncomingStream) throws -> [UInt8] {
        var tail: [UInt8] = []
        for part in stream.parts.reversed() where tail.count < StreamHeader.recordSize {
            let fd = try FileDescriptor.open(FilePath(directory + "/" + Self.partName(part.number)), .readOnly)
            defer { try? fd.close() }
            let want = min(UInt64(StreamHeader.recordSize - tail.count), part.bytes)
            var buffer = [UInt8](repeating: 0, count: Int(want))
            _ = try readFully(fd.rawValue, into: &buffer, offset: Int(part.bytes - want))
            tail = buffer + tail
        }
        return tail
    }

    struct Received {
        var bytes: UInt64
        var digest: [UInt8]
        var trailer: [UInt8]
        /// The first record of the data, for part 1's DRR_BEGIN.
        var first: [UInt8]
        /// The last record of the data, for the last part's DRR_END.
        var tail: [UInt8]
    }

    /// Copies the input to `file`, holding back its last `PartTrailer.size`
    /// bytes: the data is hashed on the way, and reaches the disk before
    /// ferry says it is stored.
    private func receive(into file: String, input: FileDescriptor) throws -> Received {
        unlink(file)
        let fd = Glibc.open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            _ = StreamPump.drain(input)
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot create \(file): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var hasher = SHA256()
        var received = Received(bytes: 0, digest: [], trailer: [], first: [], tail: [])
        // One buffer, no allocation per read: the last `PartTrailer.size`
        // bytes seen are kept at its front, and each read lands after them.
        var buffer = [UInt8](repeating: 0, count: StreamPump.chunkSize + PartTrailer.size)
        var kept = 0
        var writtenBack: UInt64 = 0
        while true {
            let count: Int
            do {
                count = try retryingEINTR {
                    buffer.withUnsafeMutableBytes { read(input.rawValue, $0.baseAddress! + kept, StreamPump.chunkSize) }
                }
            } catch {
                throw ZFSError(.input(error), problem: "cannot read the part from standard input: \(error)")
            }
            if count == 0 { break }
            let filled = kept + count
            guard filled > PartTrailer.size else {
                kept = filled
                continue
            }
            let data = buffer[..<(filled - PartTrailer.size)]
            do {
                try writeAll(fd, data)
            } catch {
                _ = StreamPump.drain(input)
                throw ZFSError(.storeFile(error), problem: "cannot write \(file): \(error); the packet stays queued")
            }
            hasher.update(data: data)
            if received.first.count < StreamHeader.recordSize {
                received.first += data.prefix(StreamHeader.recordSize - received.first.count)
            }
            received.tail = Array((received.tail + data.suffix(StreamHeader.recordSize)).suffix(StreamHeader.recordSize))
            received.bytes += UInt64(data.count)
            buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: $0.baseAddress! + data.count, byteCount: PartTrailer.size) }
            kept = PartTrailer.size
            if received.bytes - writtenBack >= StreamPump.writebackEvery {
                _ = ferry_start_writeback(fd, Int64(writtenBack), Int64(received.bytes - writtenBack))
                writtenBack = received.bytes
            }
        }
        received.trailer = Array(buffer[..<kept])
        guard fsync(fd) == 0 else {
            throw ZFSError(.storeFile(Errno(rawValue: errno)), problem: "cannot write \(file) to disk: \(String(cString: strerror(errno)))")
        }
        received.digest = Array(hasher.finalize())
        return received
    }

    func description(_ key: String) throws -> IncomingStream? {
        let file = path + "/" + key + "/" + Self.descriptionName
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        do {
            return try JSONDecoder().decode(IncomingStream.self, from: data)
        } catch {
            throw ZFSError(.storeDamaged, problem: "\(file) is damaged (\(error)); move \(path)/\(key) aside")
        }
    }

    func save(_ stream: IncomingStream, key: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SafeDirectory(path: path + "/" + key).writeFileAtomically(
            Self.descriptionName, bytes: Array(try encoder.encode(stream)), mode: 0o600)
    }

    /// Moves a complete stream into the store, where it joins the chain like
    /// a stream that came whole. False when the store holds it already.
    public func join(_ key: String, as stored: StoredStream, into store: StreamStore) throws -> Bool {
        let directory = path + "/" + key
        defer { markDone(key) }
        if store.contains(stored.id) {
            try? FileManager.default.removeItem(atPath: directory)
            return false
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SafeDirectory(path: directory).writeFileAtomically(Self.storedName, bytes: Array(try encoder.encode(stored)), mode: 0o600)
        guard rename(directory, store.partsDirectory(stored.id)) == 0 else {
            throw ZFSError(
                .storeFile(Errno(rawValue: errno)), problem: "cannot move \(directory) into the store: \(String(cString: strerror(errno)))")
        }
        try store.save(stored)
        return true
    }

    /// The part files of the stream `key`, in order.
    public func partFiles(_ key: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path + "/" + key)) ?? []
        return names.filter { $0.allSatisfy(\.isNumber) }.sorted().map { path + "/" + key + "/" + $0 }
    }

    /// Lets go of a complete stream that was used where it is (a laptop's
    /// restore): its parts go, and later copies of them are refused.
    public func finish(_ key: String) {
        try? FileManager.default.removeItem(atPath: path + "/" + key)
        markDone(key)
    }

    /// Says that the sender's snapshot `toGUID` has joined the chain.
    func joinedMarker(sender: String, toGUID: UInt64) -> String {
        path + "/joined-" + Hex.encode(Array(sender.utf8)) + "-" + Hex.encode(toGUID)
    }

    /// Later copies of a finished or dropped stream's parts are refused.
    private func markDone(_ key: String) {
        let fd = Glibc.open(path + "/" + key + ".done", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
    }

    /// Every stream whose parts are arriving.
    public func incoming() -> [(key: String, stream: IncomingStream)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().filter { !$0.hasSuffix(".done") && !$0.hasPrefix("joined-") }.compactMap { name in
            (try? description(name)).flatMap { $0 }.map { (name, $0) }
        }
    }

    /// Drops the parts of abandoned attempts (a `ferry send` killed between
    /// parts) once `stream` has joined the chain: those of the same sender
    /// and dataset that make the same snapshot, or start from the same base.
    @discardableResult
    public func dropAbandoned(by stream: StoredStream) -> [IncomingStream] {
        // Parts of an abandoned attempt that arrive later (a toss takes
        // packets in an order of its own) are dropped when they come.
        let marker = Glibc.open(
            joinedMarker(sender: stream.sender, toGUID: stream.header.toGUID), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if marker >= 0 { close(marker) }
        var dropped: [IncomingStream] = []
        for (key, incoming) in incoming() where incoming.sender == stream.sender && incoming.dataset == stream.dataset {
            guard let header = incoming.header,
                header.toGUID == stream.header.toGUID || header.fromGUID == stream.header.fromGUID
            else { continue }
            try? FileManager.default.removeItem(atPath: path + "/" + key)
            markDone(key)
            dropped.append(incoming)
        }
        return dropped
    }

    /// `ferry status`'s view of the streams still arriving.
    public func status() -> [IncompleteStreamStatus] {
        incoming().map { _, stream in
            IncompleteStreamStatus(
                dataset: "\(stream.dataset)", sender: stream.sender, stream: stream.stream, snapshot: stream.header?.snapshot,
                partsPresent: stream.parts.count, partsTotal: stream.whole?.parts, missing: stream.missing,
                lastPartMissing: stream.whole == nil, bytes: stream.bytes, since: stream.since)
        }
    }
}

/// Reads a stream kept as part files, in order, through a pipe: the parts
/// are never copied into one file, so the store needs no second copy.
enum PartsReader {
    /// The read end of a pipe that a thread fills from `files`, in order.
    static func open(_ files: [String]) throws -> FileDescriptor {
        let ends = try makePipe()
        let write = ends.write
        let thread = Thread {
            // A zfs receive that exits early must not kill ferry with SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            defer { try? write.close() }
            for file in files {
                guard let input = try? FileDescriptor.open(FilePath(file), .readOnly) else { return }
                defer { try? input.close() }
                let pump = StreamPump(input: input, store: nil, sinks: [write])
                let outcome = pump.copy(first: [], closingSinks: false)
                if outcome.readError != nil || !outcome.failedSinks.isEmpty { return }
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
        return ends.read
    }
}

extension PartStore {
    /// The split streams still arriving at backupsvr, as `ferry status` and
    /// the visit record show them, and a warning for each one incomplete
    /// for longer than `[status] dataset-warn-after`.
    public static func incomplete(config: FerryConfig, now: Date) -> (streams: [IncompleteStreamStatus], warnings: [String]) {
        guard let store = try? StreamStore(stateDir: config.stateDir), let parts = try? PartStore(store: store) else { return ([], []) }
        let streams = parts.status()
        let limit = config.status.datasetWarnAfter.timeInterval
        let warnings = streams.compactMap { stream -> String? in
            guard let since = try? Date(stream.since, strategy: .iso8601), now.timeIntervalSince(since) > limit else { return nil }
            return "a split stream has been incomplete for more than \(config.status.datasetWarnAfter.configText): " + stream.line
        }
        return (streams, warnings)
    }
}
