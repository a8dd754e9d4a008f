import Foundation
import SystemPackage

/// One external program to run: an absolute path and its arguments.
///
/// Commands are values so that a test can assert the exact argv without
/// running anything. FerryCore builds its commands in
/// `ExternalCommands.swift` only; the demo and the test bed build theirs in
/// FerryDemo's `DemoCommands.swift`.
public struct Command: Sendable, Equatable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// Extra environment variables; the rest is inherited.
    public var environment: [String: String]
    /// How long the command may run before it is stopped.
    public var timeout: Duration?
    /// What of standard error the runner keeps.
    public var errorLines: ErrorLines = .all

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Duration? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.timeout = timeout
    }

    /// The command keeping only these lines of its standard error.
    public func keeping(_ lines: ErrorLines) -> Command {
        var command = self
        command.errorLines = lines
        return command
    }

    /// The argv as one would type it in a shell.
    public var description: String {
        ([executable] + arguments).map(Self.shellQuoted).joined(separator: " ")
    }

    private static func shellQuoted(_ word: String) -> String {
        let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:@%+,".contains($0) }
        return plain && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// What a runner keeps of a command's standard error. NNCP logs a line for
/// each packet, some 250 bytes: at 10,000 packets that is megabytes ferry
/// would hold only to read a few lines of, and at 40,000 more than any
/// bound on output. A command with `.matching` run with `run(_:input:)`
/// is read line by line as it runs; the other ways to run keep all of it.
public enum ErrorLines: Sendable, Equatable {
    case all
    /// The lines that contain one of `words`, and the last `tail` lines.
    case matching([String], tail: Int = 10)
}

/// Keeps, of a stream of bytes read in chunks, the lines that contain one
/// of some words and the last few lines, in their order; a line is cut at
/// 4 KiB. The matching lines go into one buffer: at 10,000 of them an
/// array each would be a third more.
struct KeptLines {
    var words: [[UInt8]]
    var tail: Int
    /// What matching lines are kept at most; those past it are counted.
    var limit: Int
    private var matched: [UInt8] = []
    /// Each matching line's number and where it starts in `matched`.
    private var starts: [(number: Int, offset: Int)] = []
    private var last: [(number: Int, line: [UInt8])] = []
    private var partial: [UInt8] = []
    private var lines = 0
    private var droppedLines = 0
    static let longestLine = 4096

    init(words: [String], tail: Int, limit: Int) {
        self.words = words.map { Array($0.utf8) }
        self.tail = tail
        self.limit = limit
        // Address space only, until written: the buffer never grows by a
        // copy, which would hold the old and the new one at once.
        matched.reserveCapacity(limit)
    }

    mutating func take(_ bytes: UnsafeRawBufferPointer) {
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            append(bytes[start..<newline])
            endLine()
            start = newline + 1
        }
        append(bytes[start...])
    }

    private mutating func append(_ piece: Slice<UnsafeRawBufferPointer>) {
        let room = Self.longestLine - partial.count
        if room > 0 { partial.append(contentsOf: piece.prefix(room)) }
    }

    private mutating func endLine() {
        lines += 1
        if words.contains(where: { partial.contains($0) }) {
            if matched.count + partial.count < limit {
                starts.append((lines, matched.count))
                matched += partial
                matched.append(UInt8(ascii: "\n"))
            } else {
                droppedLines += 1
            }
        }
        last.append((lines, partial))
        if last.count > tail { last.removeFirst() }
        partial.removeAll(keepingCapacity: true)
    }

    /// The kept lines, each once, in the order they came.
    mutating func finish() -> [UInt8] {
        if !partial.isEmpty { endLine() }
        let firstOfLast = last.first?.number ?? Int.max
        let cut = starts.first { $0.number >= firstOfLast }?.offset ?? matched.count
        // Taken out, not copied: the buffer can be megabytes.
        var kept: [UInt8] = []
        swap(&kept, &matched)
        kept.removeSubrange(cut...)
        for (_, line) in last { kept += line + [UInt8(ascii: "\n")] }
        if droppedLines > 0 { kept.insert(contentsOf: Array("ferry: \(droppedLines) more line(s) like these not kept\n".utf8), at: 0) }
        return kept
    }
}

/// How a command ended.
public enum TerminationStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    case timedOut

    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "signal \(signal)"
        case .timedOut: "timed out"
        }
    }
}

public struct CommandResult: Sendable, Equatable {
    public var status: TerminationStatus
    public var standardOutput: [UInt8]
    public var standardError: [UInt8]

    public init(status: TerminationStatus, standardOutput: [UInt8] = [], standardError: [UInt8] = []) {
        self.status = status
        self.standardOutput = standardOutput
        self.standardError = standardError
    }

    public var output: String { String(decoding: standardOutput, as: UTF8.self) }

    /// The last lines of standard error, for a log line or an error message.
    public func errorTail(lines: Int = 3) -> String {
        let text = String(decoding: standardError.suffix(4096), as: UTF8.self)
        // The reason stands at the end of a long NNCP line, after the paths.
        return text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines)
            .map { line in line.count > 240 ? "…" + printable(String(line.suffix(240)), limit: 240) : printable(String(line), limit: 240) }
            .joined(separator: " | ")
    }
}

/// A command that could not be started, or that did not succeed.
public struct CommandError: FerryError {
    public enum Code: Sendable, Equatable {
        case launchFailed(String)
        /// It printed more than the runner keeps, and was stopped.
        case outputLimitExceeded(limit: Int)
        case failed(TerminationStatus, stderrTail: String)
        /// The task running it was cancelled (SIGTERM); the command was stopped.
        case cancelled
    }
    public var command: Command
    public var code: Code

    public init(command: Command, code: Code) {
        self.command = command
        self.code = code
    }

    public var description: String {
        switch code {
        case .launchFailed(let reason):
            "could not run \(command.executable): \(reason)"
        case .outputLimitExceeded(let limit):
            "\(command) printed more than \(limit) bytes, and was stopped"
        case .failed(let status, let tail):
            "\(command) failed (\(status))" + (tail.isEmpty ? "" : ": \(tail)")
        case .cancelled:
            "\(command.executable) was stopped: ferry was interrupted"
        }
    }
}

/// How the two commands of a pipeline ended.
public struct PipelineResult: Sendable, Equatable {
    public var producer: CommandResult
    public var consumer: CommandResult

    public init(producer: CommandResult, consumer: CommandResult) {
        self.producer = producer
        self.consumer = consumer
    }

    public var succeeded: Bool { producer.status.succeeded && consumer.status.succeeded }
}

/// Runs external commands. The one real implementation uses swift-subprocess;
/// unit tests use a fake that records the commands.
public protocol CommandRunner: Sendable {
    func run(_ command: Command, input: [UInt8]?) async throws(CommandError) -> CommandResult
    /// Runs `command` reading standard input from `input`, which the runner
    /// owns and closes once the child has it: a stream passes through the
    /// kernel, never through ferry's memory.
    func run(_ command: Command, inputFrom input: FileDescriptor) async throws(CommandError) -> CommandResult
    /// Runs `command` writing its standard output to `output`, which the
    /// runner owns and closes once the child has it.
    func run(_ command: Command, outputTo output: FileDescriptor) async throws(CommandError) -> CommandResult
    /// Runs `producer | consumer` over a pipe between the two.
    func pipe(_ producer: Command, into consumer: Command) async throws(CommandError) -> PipelineResult
}

extension CommandRunner {
    /// Runs `command` and throws unless it exits 0.
    @discardableResult
    public func check(_ command: Command, input: [UInt8]? = nil) async throws(CommandError) -> CommandResult {
        let result = try await run(command, input: input)
        guard result.status.succeeded else {
            throw CommandError(command: command, code: .failed(result.status, stderrTail: result.errorTail()))
        }
        return result
    }
}
