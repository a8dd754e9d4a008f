internal import CLinuxShims
import Foundation
import Subprocess
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Runs commands with swift-subprocess: output bounded, a timeout that ends
/// the child with SIGTERM and then SIGKILL.
public struct SubprocessRunner: CommandRunner {
    /// More output than this is a fault of the command, not data to keep:
    /// NNCP prints about 250 bytes a packet, so this is some 30,000 packets.
    public static let defaultOutputLimit = 8 << 20
    public var outputLimit: Int

    public init(outputLimit: Int = Self.defaultOutputLimit) {
        self.outputLimit = outputLimit
    }

    public func run(_ command: Command, input: [UInt8]?) async throws(CommandError) -> CommandResult {
        if case .matching(let words, let tail) = command.errorLines {
            return try await bounded(command) { [outputLimit] in
                let outcome = try await Subprocess.run(
                    Self.configuration(command), input: .array(input ?? []), output: .bytes(limit: outputLimit), error: .sequence
                ) { execution in
                    var kept = KeptLines(words: words, tail: tail, limit: outputLimit)
                    for try await chunk in execution.standardError {
                        chunk.withUnsafeBytes { kept.take($0) }
                    }
                    return kept.finish()
                }
                return CommandResult(
                    status: Self.status(outcome.terminationStatus), standardOutput: outcome.standardOutput,
                    standardError: outcome.closureResult)
            }
        }
        return try await bounded(command) {
            let outcome = try await Subprocess.run(
                Self.configuration(command), input: .array(input ?? []),
                output: .bytes(limit: outputLimit), error: .bytes(limit: outputLimit))
            return CommandResult(
                status: Self.status(outcome.terminationStatus), standardOutput: outcome.standardOutput,
                standardError: outcome.standardError)
        }
    }

    public func run(_ command: Command, inputFrom input: FileDescriptor) async throws(CommandError) -> CommandResult {
        try await bounded(command) {
            let outcome = try await Subprocess.run(
                Self.configuration(command), input: .fileDescriptor(input, closeAfterSpawningProcess: true),
                output: .bytes(limit: outputLimit), error: .bytes(limit: outputLimit))
            return CommandResult(
                status: Self.status(outcome.terminationStatus), standardOutput: outcome.standardOutput,
                standardError: outcome.standardError)
        }
    }

    public func run(_ command: Command, outputTo output: FileDescriptor) async throws(CommandError) -> CommandResult {
        try await bounded(command) {
            let outcome = try await Subprocess.run(
                Self.configuration(command), input: .none, output: .fileDescriptor(output, closeAfterSpawningProcess: true),
                error: .bytes(limit: outputLimit))
            return CommandResult(status: Self.status(outcome.terminationStatus), standardError: outcome.standardError)
        }
    }

    public func pipe(_ producer: Command, into consumer: Command) async throws(CommandError) -> PipelineResult {
        let ends: (read: FileDescriptor, write: FileDescriptor)
        do {
            ends = try makePipe()
        } catch {
            throw CommandError(command: producer, code: .launchFailed("no pipe: \(error)"))
        }
        // The runner owns both ends from here: each goes to its child and is
        // closed in ferry once that child is started.
        async let consumed = captured(consumer, inputFrom: ends.read)
        let produced: Result<CommandResult, CommandError>
        do {
            produced = .success(
                try await bounded(producer) {
                    let outcome = try await Subprocess.run(
                        Self.configuration(producer), input: .none,
                        output: .fileDescriptor(ends.write, closeAfterSpawningProcess: true), error: .bytes(limit: outputLimit))
                    return CommandResult(status: Self.status(outcome.terminationStatus), standardError: outcome.standardError)
                })
        } catch {
            produced = .failure(error)
        }
        return PipelineResult(producer: try produced.get(), consumer: try await consumed.get())
    }

    private func captured(_ command: Command, inputFrom input: FileDescriptor) async -> Result<CommandResult, CommandError> {
        do throws(CommandError) {
            return .success(try await run(command, inputFrom: input))
        } catch {
            return .failure(error)
        }
    }

    private static func configuration(_ command: Command) -> Configuration {
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(5))]
        let environment: Subprocess.Environment = .inherit.updating(
            Dictionary(
                uniqueKeysWithValues: command.environment.map { (Subprocess.Environment.Key(rawValue: $0.key)!, Optional($0.value)) }))
        return Configuration(
            executable: .path(FilePath(command.executable)),
            arguments: Arguments(command.arguments),
            environment: environment,
            platformOptions: options)
    }

    private static func status(_ status: Subprocess.TerminationStatus) -> TerminationStatus {
        switch status {
        case .exited(let code): .exited(code)
        case .signaled(let signal): .signaled(signal)
        }
    }

    /// Runs `launch` under the command's timeout, and maps what it throws.
    private func bounded(
        _ command: Command, _ launch: @escaping @Sendable () async throws -> CommandResult
    ) async throws(CommandError) -> CommandResult {
        do {
            guard let timeout = command.timeout else { return try await launch() }
            return try await withThrowingTaskGroup(of: CommandResult?.self) { group in
                group.addTask { try await launch() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let result = first else {
                    _ = try? await group.next()
                    return CommandResult(status: .timedOut)
                }
                return result
            }
        } catch {
            if error is CancellationError || Task.isCancelled { throw CommandError(command: command, code: .cancelled) }
            if let error = error as? SubprocessError, error.code == .outputLimitExceeded {
                throw CommandError(command: command, code: .outputLimitExceeded(limit: outputLimit))
            }
            throw CommandError(command: command, code: .launchFailed("\(error)"))
        }
    }
}

/// A pipe whose ends no child inherits by accident: each is handed to
/// exactly one child on purpose.
public func makePipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [Int32] = [-1, -1]
    let result = fds.withUnsafeMutableBufferPointer { ferry_pipe_cloexec($0.baseAddress!) }
    guard result == 0 else { throw Errno(rawValue: errno) }
    // A 1 MiB pipe instead of 64 KiB: a stream moves in fewer, larger
    // steps. Where the system allows less, the default stays.
    _ = ferry_set_pipe_size(fds[1], 1 << 20)
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}
