import Foundation
import Subprocess
import SystemPackage

/// Runs commands with swift-subprocess: output bounded, a timeout that ends
/// the child with SIGTERM and then SIGKILL.
public struct SubprocessRunner: CommandRunner {
    /// More output than this is a fault of the command, not data to keep:
    /// NNCP prints about 250 bytes a packet, so this is some 30,000 packets.
    public static let outputLimit = 8 << 20

    public init() {}

    public func run(_ command: Command, input: [UInt8]?) async throws(CommandError) -> CommandResult {
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(5))]
        let environment: Subprocess.Environment = .inherit.updating(
            Dictionary(
                uniqueKeysWithValues: command.environment.map { (Subprocess.Environment.Key(rawValue: $0.key)!, Optional($0.value)) }))
        let configuration = Configuration(
            executable: .path(FilePath(command.executable)),
            arguments: Arguments(command.arguments),
            environment: environment,
            platformOptions: options)
        let launch: @Sendable () async throws -> CommandResult = {
            let outcome = try await Subprocess.run(
                configuration,
                input: .array(input ?? []),
                output: .bytes(limit: Self.outputLimit),
                error: .bytes(limit: Self.outputLimit))
            let status: TerminationStatus =
                switch outcome.terminationStatus {
                case .exited(let code): .exited(code)
                case .signaled(let signal): .signaled(signal)
                }
            return CommandResult(status: status, standardOutput: outcome.standardOutput, standardError: outcome.standardError)
        }
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
            throw CommandError(command: command, code: .launchFailed("\(error)"))
        }
    }
}
