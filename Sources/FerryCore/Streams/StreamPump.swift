internal import CLinuxShims
import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Copies a stream from one descriptor to several: a file in the stream
/// store and the pipes of the `zfs receive` runs fed at the same time. It
/// runs on a thread of its own, because its reads and writes block.
///
/// A sink that fails (a `zfs receive` that stopped reading) is dropped and
/// the copy goes on; a failing store file ends the copy.
public struct StreamPump: Sendable {
    public static let chunkSize = 1 << 20
    /// Writeback of the store file is started every so many bytes, so that
    /// the fsync at the end has little left to do.
    static let writebackEvery: UInt64 = 16 << 20

    public struct Outcome: Sendable {
        public var bytes: UInt64 = 0
        /// The last `StreamHeader.recordSize` bytes.
        public var tail: [UInt8] = []
        public var readError: Errno?
        public var storeError: Errno?
        /// The indexes of sinks that failed, and why.
        public var failedSinks: [Int: Errno] = [:]
    }

    public var input: FileDescriptor
    public var store: FileDescriptor?
    public var sinks: [FileDescriptor]

    public init(input: FileDescriptor, store: FileDescriptor?, sinks: [FileDescriptor]) {
        self.input = input
        self.store = store
        self.sinks = sinks
    }

    /// Reads exactly `count` bytes, or fewer at the end of the input.
    public static func readPrefix(_ input: FileDescriptor, count: Int) throws(Errno) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let filled = try readFully(input.rawValue, into: &bytes)
        return Array(bytes[..<filled])
    }

    /// Reads the input to its end and throws it away, so that the writer
    /// (nncp-toss) sees its whole packet taken.
    public static func drain(_ input: FileDescriptor) -> UInt64 {
        let pump = StreamPump(input: input, store: nil, sinks: [])
        return pump.copy(first: []).bytes
    }

    /// Copies `first` and then the rest of the input to every sink, on a
    /// thread of its own; the sinks are closed at the end.
    public func run(first: [UInt8]) async -> Outcome {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let outcome = copy(first: first)
                continuation.resume(returning: outcome)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Copies to the end of the input; the sinks are closed at the end
    /// unless `closingSinks` is false (one sink fed from several inputs).
    func copy(first: [UInt8], closingSinks: Bool = true) -> Outcome {
        // A zfs receive that exits early must not kill ferry with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var outcome = Outcome()
        var live = Array(sinks.indices)
        var writtenBack: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        var pending = first
        defer { if closingSinks { for index in live { try? sinks[index].close() } } }
        while true {
            let chunk: ArraySlice<UInt8>
            if !pending.isEmpty {
                chunk = pending[...]
                pending = []
            } else {
                let count: Int
                do {
                    count = try retryingEINTR { buffer.withUnsafeMutableBytes { read(input.rawValue, $0.baseAddress!, Self.chunkSize) } }
                } catch {
                    outcome.readError = error
                    return outcome
                }
                if count == 0 { return outcome }
                chunk = buffer[..<count]
            }
            if let store {
                do {
                    try writeAll(store.rawValue, chunk)
                } catch {
                    outcome.storeError = error
                    return outcome
                }
            }
            for index in live {
                do {
                    try writeAll(sinks[index].rawValue, chunk)
                } catch {
                    outcome.failedSinks[index] = error
                    try? sinks[index].close()
                }
            }
            live.removeAll { outcome.failedSinks[$0] != nil }
            outcome.bytes += UInt64(chunk.count)
            outcome.tail = Array((outcome.tail + chunk.suffix(StreamHeader.recordSize)).suffix(StreamHeader.recordSize))
            if let store, outcome.bytes - writtenBack >= Self.writebackEvery {
                _ = ferry_start_writeback(store.rawValue, Int64(writtenBack), Int64(outcome.bytes - writtenBack))
                writtenBack = outcome.bytes
            }
        }
    }
}
