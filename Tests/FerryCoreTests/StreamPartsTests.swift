import Crypto
import Foundation
import Synchronization
import SystemPackage
import Testing

@testable import FerryCore

/// A stream as ferry receive sees one: DRR_BEGIN, `size` random bytes, DRR_END.
func fakeStream(size: Int, toGUID: UInt64 = 7, fromGUID: UInt64 = 0) throws -> [UInt8] {
    beginRecord(toGUID: toGUID, fromGUID: fromGUID, name: "tank/root@ferry-1") + (try randomBytes(size)) + endRecord(toGUID: toGUID)
}

/// A file in a fresh temporary directory holding `bytes`, opened for reading.
func readable(_ bytes: [UInt8], in directory: String, name: String) throws -> FileDescriptor {
    let path = directory + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return try FileDescriptor.open(FilePath(path), .readOnly)
}

func scratchDirectory() -> String {
    var template = Array("/tmp/ferry-parts.XXXXXX".utf8CString)
    return String(cString: mkdtemp(&template)!)
}

/// Splits `stream` with `chunkSize` and returns each part's input, as
/// nncp-exec would have read it.
func splitIntoParts(_ stream: [UInt8], chunkSize: UInt64, in directory: String) async throws -> (StreamID, [[UInt8]]) {
    let parts = Mutex<[Int: [UInt8]]>([:])
    let splitter = StreamSplitter(
        chunkSize: chunkSize,
        queuePart: { number, input in
            let bytes = await onThread {
                var all: [UInt8] = []
                while let chunk = try? StreamPump.readPrefix(input, count: 1 << 16), !chunk.isEmpty { all += chunk }
                try? input.close()
                return all
            }
            parts.withLock { $0[number] = bytes }
            return CommandResult(status: .exited(0))
        })
    let input = try readable(stream, in: directory, name: "stream")
    defer { try? input.close() }
    let outcome = try await splitter.split(input, first: [])
    let all = parts.withLock { $0 }
    #expect(outcome.parts == all.count)
    #expect(outcome.bytes == UInt64(stream.count))
    return (splitter.stream, (1...all.count).map { all[$0]! })
}

@Suite("Split streams: the part trailer, the splitter and reassembly")
struct StreamPartsTests {
    let sender = "SENDERNODEID"
    let dataset = try! DatasetName("laptop/tank/root")

    @Test("a trailer reads back as written, with and without the check of the whole")
    func trailerRoundTrip() throws {
        let id = StreamID.random()
        let digest = Array(SHA256.hash(data: [1, 2, 3]))
        for whole in [nil, PartTrailer.Whole(parts: 3, length: 1 << 40, digest: String(repeating: "ab", count: 32))] {
            let trailer = PartTrailer(stream: id, part: 3, length: 12345, digest: digest, whole: whole)
            #expect(trailer.bytes.count == PartTrailer.size)
            #expect(try PartTrailer(parsing: trailer.bytes) == trailer)
        }
    }

    @Test("a part cut short, or something else, has no trailer")
    func trailerRefusals() throws {
        let good = PartTrailer(stream: .random(), part: 1, length: 1, digest: Array(repeating: 0, count: 32)).bytes
        #expect(throws: PartError.self) { try PartTrailer(parsing: Array(good.dropLast())) }
        #expect(throws: PartError.self) { try PartTrailer(parsing: [0] + good.dropFirst()) }
        var version = good
        version[8] = 2
        #expect(throws: PartError.self) { try PartTrailer(parsing: version) }
    }

    @Test(
        "--stream takes 32 lower-case hex digits only",
        arguments: ["", "00", String(repeating: "G", count: 32), "../" + String(repeating: "0", count: 29)])
    func streamIDs(_ text: String) {
        #expect(throws: PartError.self) { try StreamID(text) }
    }

    @Test("nncp-exec of a part names the stream and the part after the destination")
    func execPartArgv() {
        let command = NNCP.execPart(
            config: "/etc/nncp.hjson", nice: "B", node: "backupsvr", handle: "zfsreceive", destination: "laptop/tank/root",
            stream: "00112233445566778899aabbccddeeff", part: 12)
        #expect(command.executable == "/usr/bin/nncp-exec")
        #expect(
            command.arguments == [
                "-cfg", "/etc/nncp.hjson", "-noprogress", "-nice", "B", "backupsvr", "zfsreceive", "laptop/tank/root", "--stream",
                "00112233445566778899aabbccddeeff", "--part", "12",
            ])
    }

    @Test(
        "the splitter makes parts no larger than the chunk, and the last one says so",
        arguments: [1, 1000, 4096 - 116, 4096 - 116 + 1, 10_000])
    func splitter(_ size: Int) async throws {
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stream = try randomBytes(size)
        let (id, parts) = try await splitIntoParts(stream, chunkSize: 4096, in: directory)
        #expect(parts.count == max(1, (size + 4096 - 117) / (4096 - 116)))
        var data: [UInt8] = []
        var digests: [[UInt8]] = []
        for (index, part) in parts.enumerated() {
            #expect(part.count <= 4096)
            let trailer = try PartTrailer(parsing: Array(part.suffix(PartTrailer.size)))
            let body = Array(part.dropLast(PartTrailer.size))
            #expect(trailer.stream == id)
            #expect(trailer.part == index + 1)
            #expect(trailer.length == UInt64(body.count))
            #expect(trailer.digest == Array(SHA256.hash(data: body)))
            #expect((trailer.whole != nil) == (index == parts.count - 1))
            data += body
            digests.append(trailer.digest)
        }
        #expect(data == stream)
        let whole = try #require(try PartTrailer(parsing: Array(parts.last!.suffix(PartTrailer.size))).whole)
        #expect(whole == PartTrailer.Whole(parts: parts.count, length: UInt64(size), digest: PartTrailer.wholeDigest(digests)))
    }

    /// A store, and `accept` of one part's bytes as `ferry receive` gets them.
    struct Backupsvr {
        let directory = scratchDirectory()
        let store: StreamStore
        let parts: PartStore

        init() throws {
            store = try StreamStore(stateDir: directory)
            parts = try PartStore(store: store)
        }

        func accept(_ bytes: [UInt8], part: Int, of stream: StreamID, sender: String = "SENDER", dataset: String = "laptop/tank/root")
            throws -> PartStore.Outcome
        {
            let input = try readable(bytes, in: directory, name: "input")
            defer { try? input.close() }
            return try parts.accept(
                part: part, of: stream, sender: sender, senderID: sender, dataset: try DatasetName(dataset), input: input, now: Date())
        }
    }

    @Test("parts in any order, one of them twice, make the stream whole, and the store reads it back in order")
    func reassembly() async throws {
        let server = try Backupsvr()
        defer { try? FileManager.default.removeItem(atPath: server.directory) }
        let stream = try fakeStream(size: 20_000)
        let (id, parts) = try await splitIntoParts(stream, chunkSize: 4096, in: server.directory)
        #expect(parts.count == 6)
        var completed: (IncomingStream, String)?
        for number in [3, 6, 1, 3, 2, 5, 4] {
            switch try server.accept(parts[number - 1], part: number, of: id) {
            case .complete(let incoming, let key): completed = (incoming, key)
            case .duplicate: #expect(number == 3)
            case .stored(let incoming): #expect(!incoming.isComplete)
            case .abandoned: Issue.record("part \(number) was taken for an abandoned attempt")
            }
        }
        let (incoming, key) = try #require(completed)
        #expect(incoming.bytes == UInt64(stream.count))
        #expect(incoming.header?.toGUID == 7)
        let stored = StoredStream(
            id: StoredStream.id(for: incoming.header!), sender: "SENDER", dataset: dataset, header: incoming.header!,
            bytes: incoming.bytes, received: Date().rfc3339, applied: [])
        #expect(try server.parts.join(key, as: stored, into: server.store))
        #expect(try server.store.streams() == [stored])
        let reader = try server.store.open(stored.id)
        var back: [UInt8] = []
        while let chunk = try? StreamPump.readPrefix(reader, count: 1 << 16), !chunk.isEmpty { back += chunk }
        try reader.close()
        #expect(back == stream)
        #expect(server.parts.status().isEmpty)
        // A late copy of a part of a finished stream is refused.
        #expect(throws: PartError.self) { try server.accept(parts[0], part: 1, of: id) }
        try server.store.remove(stored.id)
        #expect(try server.store.streams().isEmpty)
    }

    @Test("a forged last part, a part of another dataset, and a damaged part are refused; a good last part still completes")
    func refusals() async throws {
        let server = try Backupsvr()
        defer { try? FileManager.default.removeItem(atPath: server.directory) }
        let stream = try fakeStream(size: 10_000)
        let (id, parts) = try await splitIntoParts(stream, chunkSize: 4096, in: server.directory)
        let last = parts.count
        for number in 1..<last { _ = try server.accept(parts[number - 1], part: number, of: id) }

        // The last part with a wrong length in its check of the whole.
        var trailer = try PartTrailer(parsing: Array(parts[last - 1].suffix(PartTrailer.size)))
        trailer.whole!.length += 1
        let forged = Array(parts[last - 1].dropLast(PartTrailer.size)) + trailer.bytes
        #expect(
            throws: PartError.checkFailed(
                "its parts hold \(stream.count) bytes, and its last part says \(stream.count + 1); the last part is dropped, and a good copy of it completes the stream"
            )
        ) {
            try server.accept(forged, part: last, of: id)
        }
        #expect(throws: PartError.self) { try server.accept(parts[0], part: 1, of: id, dataset: "laptop/tank/other") }
        var flipped = parts[last - 1]
        flipped[10] ^= 1
        #expect(throws: PartError.self) { try server.accept(flipped, part: last, of: id) }
        #expect(throws: PartError.self) { try server.accept(Array(parts[last - 1].dropLast(1)), part: last, of: id) }
        #expect(throws: PartError.self) { try server.accept(parts[1], part: 1, of: id) }

        let status = try #require(server.parts.status().first)
        #expect(status.partsPresent == last - 1)
        #expect(status.partsTotal == nil)
        #expect(status.lastPartMissing)
        #expect(status.line.contains("the last part has not arrived"))
        guard case .complete = try server.accept(parts[last - 1], part: last, of: id) else {
            Issue.record("the good last part did not complete the stream")
            return
        }
    }

    @Test("a missing part is named once the last part has told the count")
    func missingPart() async throws {
        let server = try Backupsvr()
        defer { try? FileManager.default.removeItem(atPath: server.directory) }
        let (id, parts) = try await splitIntoParts(try fakeStream(size: 20_000), chunkSize: 4096, in: server.directory)
        for number in 1...parts.count where number != 4 { _ = try server.accept(parts[number - 1], part: number, of: id) }
        let status = try #require(server.parts.status().first)
        #expect(status.partsTotal == parts.count)
        #expect(status.missing == [4])
        #expect(status.snapshot == "ferry-1")
        #expect(status.line.contains("part(s) 4 missing"), "\(status.line)")
    }

    @Test("the parts of an abandoned attempt go once another attempt at the same snapshot has joined the store")
    func abandoned() async throws {
        let server = try Backupsvr()
        defer { try? FileManager.default.removeItem(atPath: server.directory) }
        let stream = try fakeStream(size: 10_000)
        let (first, killed) = try await splitIntoParts(stream, chunkSize: 4096, in: server.directory)
        _ = try server.accept(killed[0], part: 1, of: first)
        _ = try server.accept(killed[0], part: 1, of: first, sender: "OTHER", dataset: "other/tank/root")
        #expect(server.parts.status().count == 2)
        let header = try StreamHeader(parsing: stream)
        let done = StoredStream(
            id: StoredStream.id(for: header), sender: "SENDER", dataset: dataset, header: header, bytes: 0, received: "", applied: [])
        #expect(server.parts.dropAbandoned(by: done).count == 1)
        #expect(server.parts.status().map(\.sender) == ["OTHER"], "another sender's stream is not touched")
        // A part of another abandoned attempt that comes later goes at once.
        let (late, lateParts) = try await splitIntoParts(stream, chunkSize: 4096, in: server.directory)
        guard case .abandoned = try server.accept(lateParts[0], part: 1, of: late) else {
            Issue.record("a late part of an abandoned attempt was kept")
            return
        }
        #expect(server.parts.status().map(\.sender) == ["OTHER"])
    }

    @Test(
        "sizes take KiB, MiB, GiB and TiB; anything else is refused",
        arguments: [
            ("512KiB", 512 << 10), ("8MiB", 8 << 20), ("1GiB", 1 << 30), ("2TiB", 2 << 40), ("1G", nil), ("MiB", nil), ("-1MiB", nil),
            ("0MiB", nil), ("99999999999999999TiB", nil),
        ] as [(String, UInt64?)])
    func sizes(_ text: String, _ bytes: UInt64?) {
        #expect(parseSize(text) == bytes)
    }

    @Test("[send] chunk-size defaults to 1GiB, and a bad one is one line naming the key")
    func chunkSizeConfig() throws {
        #expect(try FerryConfig.parse("role = \"laptop\"", path: "/f.toml").send.chunkSize == 1 << 30)
        #expect(try FerryConfig.parse("role = \"laptop\"\n[send]\nchunk-size = \"8MiB\"", path: "/f.toml").send.chunkSize == 8 << 20)
        #expect(throws: ConfigError.self) { try FerryConfig.parse("role = \"laptop\"\n[send]\nchunk-size = \"8M\"", path: "/f.toml") }
        do {
            _ = try FerryConfig.parse("role = \"laptop\"\n[send]\nchunk-size = \"4KiB\"", path: "/f.toml")
            Issue.record("a 4 KiB chunk was taken")
        } catch {
            #expect("\(error)" == "/f.toml: key \"send.chunk-size\" must be at least 1MiB, not 4096 bytes")
        }
    }
}
