import Crypto
import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Cuts a stream into parts as it is read (DESIGN.md section 9): each part
/// is its own nncp-exec packet of at most `chunkSize` bytes, its data and
/// then its `PartTrailer`. Only one buffer of the stream is in memory at a
/// time; nothing is written anywhere but into nncp-exec.
struct StreamSplitter: Sendable {
    var chunkSize: UInt64
    var stream = StreamID.random()
    /// Queues one part: runs nncp-exec for part `number`, reading the part
    /// from the descriptor it is given (and closing it).
    var queuePart: @Sendable (_ number: Int, _ input: FileDescriptor) async throws -> CommandResult
    /// Called when the stream has ended, before the last part is let go:
    /// it throws when the stream's producer failed, and then the last part
    /// is stopped rather than queued.
    var ended: @Sendable () async throws -> Void = {}

    struct Outcome: Sendable, Equatable {
        var parts: Int
        var bytes: UInt64
    }

    /// The data a part carries, so that data and trailer fit in `chunkSize`.
    var partData: UInt64 { chunkSize - UInt64(PartTrailer.size) }

    /// Splits everything on `input` after `first`, which was read from it already.
    func split(_ input: FileDescriptor, first: [UInt8]) async throws -> Outcome {
        let buffer = SplitBuffer(holding: first)
        var digests: [[UInt8]] = []
        var total: UInt64 = 0
        var number = 1
        while true {
            let ends = try makePipe()
            let queue = queuePart
            let part = number
            let task = Task { try await queue(part, ends.read) }
            let limit = partData
            let filled = await onThread { Self.fill(from: input, buffer: buffer, into: ends.write, limit: limit) }
            var failure: (any Error)?
            if case .read(let error)? = filled.error {
                failure = SendError(.input(error), problem: "cannot read the stream: \(error)")
            } else if filled.ended {
                do { try await ended() } catch { failure = error }
            }
            if let failure {
                // nncp-exec must not see the end of its input: a part cut
                // short would be queued. It is stopped first, then its pipe closed.
                task.cancel()
                _ = try? await task.value
                try? ends.write.close()
                throw failure
            }
            var written = filled.error == nil
            if written {
                total += filled.bytes
                digests.append(filled.digest)
                let whole = filled.ended ? PartTrailer.Whole(parts: part, length: total, digest: PartTrailer.wholeDigest(digests)) : nil
                let trailer = PartTrailer(stream: stream, part: part, length: filled.bytes, digest: filled.digest, whole: whole)
                written = (try? writeAll(ends.write.rawValue, trailer.bytes[...])) != nil
            }
            try? ends.write.close()
            let result = try await task.value
            guard result.status.succeeded, written else {
                throw SendError(
                    .execFailed(result.status), problem: "nncp-exec failed for part \(part) (\(result.status)): \(result.errorTail())")
            }
            if filled.ended { return Outcome(parts: part, bytes: total) }
            number += 1
        }
    }

    /// The one buffer of a whole split, reused by every part: a fresh buffer
    /// on each part's thread would leave one behind in each thread's malloc
    /// arena. What it holds past a part's end (`start`, `count`) begins the
    /// next part.
    final class SplitBuffer: @unchecked Sendable {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: StreamPump.chunkSize, alignment: 16)
        var start = 0
        var count = 0

        init(holding first: [UInt8]) {
            precondition(first.count <= bytes.count)
            first.withUnsafeBytes { bytes.copyMemory(from: $0) }
            count = first.count
        }

        deinit { bytes.deallocate() }

        var pending: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[start..<start + count]) }

        /// Reads the next buffer of the input; 0 at its end.
        func refill(from input: FileDescriptor) throws(Errno) -> Int {
            let base = bytes.baseAddress!
            count = try retryingEINTR { read(input.rawValue, base, bytes.count) }
            start = 0
            return count
        }
    }

    struct Filled: Sendable {
        enum Failure: Sendable { case read(Errno), write(Errno) }
        var bytes: UInt64 = 0
        var digest: [UInt8] = []
        /// Whether the stream ended in this part.
        var ended = false
        var error: Failure?
    }

    /// Writes what `buffer` holds and then the input into `output` until
    /// `limit` bytes, hashing them; then reads one buffer more to learn
    /// whether the stream goes on.
    static func fill(from input: FileDescriptor, buffer: SplitBuffer, into output: FileDescriptor, limit: UInt64) -> Filled {
        signal(SIGPIPE, SIG_IGN)
        var filled = Filled()
        var hasher = SHA256()
        do {
            while filled.bytes < limit {
                if buffer.count == 0, try buffer.refill(from: input) == 0 {
                    filled.ended = true
                    break
                }
                let take = Int(min(UInt64(buffer.count), limit - filled.bytes))
                let chunk = UnsafeRawBufferPointer(rebasing: buffer.pending[..<take])
                do {
                    try writeAll(output.rawValue, chunk)
                } catch {
                    filled.error = .write(error)
                    return filled
                }
                hasher.update(bufferPointer: chunk)
                filled.bytes += UInt64(take)
                buffer.start += take
                buffer.count -= take
            }
            if !filled.ended, buffer.count == 0 {
                filled.ended = try buffer.refill(from: input) == 0
            }
        } catch {
            filled.error = .read(error)
            return filled
        }
        filled.digest = Array(hasher.finalize())
        return filled
    }

    /// Reads `input` until its end or past `limit` bytes, whichever comes
    /// first: whether a stream is larger than a chunk, found without keeping
    /// any of it.
    static func exceeds(_ limit: UInt64, input: FileDescriptor) async -> Result<Bool, Errno> {
        await onThread {
            var buffer = [UInt8](repeating: 0, count: StreamPump.chunkSize)
            var total: UInt64 = 0
            while total <= limit {
                let count: Int
                do throws(Errno) {
                    count = try retryingEINTR {
                        buffer.withUnsafeMutableBytes { read(input.rawValue, $0.baseAddress!, StreamPump.chunkSize) }
                    }
                } catch {
                    return .failure(error)
                }
                if count == 0 { return .success(false) }
                total += UInt64(count)
            }
            return .success(true)
        }
    }
}

/// Runs blocking work (reads and writes of pipes) on a thread of its own,
/// so that it never holds one of the few threads async tasks share.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
