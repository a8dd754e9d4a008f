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

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Duration? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.timeout = timeout
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
