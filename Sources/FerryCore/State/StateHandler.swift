import Foundation
import Logging
import SystemPackage

/// What the laptop last learned from backupsvr: `state-dir/backupsvr-state.json`.
public struct KnownBackupsvrState: Codable, Sendable, Equatable {
    public static let fileName = "backupsvr-state.json"
    /// backupsvr's NNCP node name and id.
    public var node: String
    public var nodeID: String
    public var seq: UInt64
    /// When backupsvr wrote it.
    public var time: String
    /// When this laptop took it.
    public var received: String
    public var state: LaptopState
}

/// A message `ferry state` refused here, kept for `ferry status`.
public struct RefusedMessage: Codable, Sendable, Equatable {
    public static let fileName = "refused-state-messages.json"
    public static let kept = 5
    public var time: String
    public var sender: String
    public var problem: String

    public var line: String { "a state message from \(sender) was refused at \(time): \(problem)" }
}

/// `ferry state`, the NNCP exec handler `ferrystate`. On a laptop it takes
/// backupsvr's state and verify requests, from the configured backupsvr
/// only; on backupsvr it takes verify results from its configured senders.
/// The input is hostile until checked: bounded, strictly decoded, and a
/// state older than the one known is ignored.
public struct StateHandler: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    var logger: Logger { context.logger }
    var stateDir: String { context.config.stateDir }

    /// Handles the message on `input` from `senderID`; returns one line
    /// saying what it did. Throws StateMessageError for a message refused.
    @discardableResult
    public func handle(senderID: String?, input: FileDescriptor = .standardInput) async throws -> String {
        try context.config.require(.laptop, .backupsvr, for: "state")
        let sender = nncp.node(id: senderID ?? "").map(\.name) ?? printable(senderID ?? "(no NNCP_SENDER)", limit: 60)
        do {
            let line = try await take(senderID: senderID, input: input)
            logger.info("\(line)", metadata: ["sender": "\(sender)"])
            return line
        } catch let error as StateMessageError where !error.keepQueued {
            _ = StreamPump.drain(input)
            logger.error("\(error)", metadata: ["sender": "\(sender)"])
            keepRefusal(RefusedMessage(time: context.clock.now().rfc3339, sender: sender, problem: error.problem))
            throw error
        }
    }

    private func take(senderID: String?, input: FileDescriptor) async throws -> String {
        let config = context.config
        guard let senderID, !senderID.isEmpty, let node = nncp.node(id: senderID), node.name != "self" else {
            throw StateMessageError(
                problem: "the sender \(printable(senderID ?? "(NNCP_SENDER is not set)", limit: 60)) is not a node in \(nncp.path)")
        }
        if config.role == .laptop {
            guard let backupsvr = nncp.neighbours[config.send.backupsvr], backupsvr.name != "self" else {
                throw StateMessageError(
                    problem: "[send].backupsvr \(config.send.backupsvr) is not a neighbour in \(nncp.path)", keepQueued: true)
            }
            guard backupsvr.id == node.id else {
                throw StateMessageError(problem: "it comes from \(node.name), and only \(backupsvr.name) ([send].backupsvr) may send it")
            }
        } else {
            guard config.receive.senders[node.name] != nil else {
                throw StateMessageError(problem: "it comes from \(node.name), which is not listed in [receive].senders")
            }
        }
        let limit = config.role == .laptop ? StateMessage.requestLimit : StateMessage.limit
        let bytes: [UInt8]
        do {
            bytes = try Self.read(input, upTo: limit + 1)
        } catch {
            throw StateMessageError(problem: "cannot read standard input: \(error)", keepQueued: true)
        }
        let message = try StateMessage.decode(bytes, limit: limit)
        switch (config.role, message.kind) {
        case (.laptop, .state):
            return try takeState(message, from: node)
        case (.laptop, .verifyRequest):
            return try await answer(message.request!)
        case (.backupsvr, .verifyResult):
            return try takeResult(message.result!, from: node)
        default:
            throw StateMessageError(problem: "a \(message.kind.rawValue) message has no business on a \(config.role.rawValue)")
        }
    }

    /// Keeps backupsvr's state, if it is newer than the one known.
    private func takeState(_ message: StateMessage, from node: NNCPNode) throws -> String {
        let file = StateFile<KnownBackupsvrState>(KnownBackupsvrState.fileName, stateDir: stateDir)
        if let known = file.load(reporting: { logger.warning("\($0)") }), known.nodeID == node.id, message.seq <= known.seq {
            return "ignored \(node.name)'s state seq \(message.seq) of \(message.time): seq \(known.seq) of \(known.time) is known already"
        }
        let state = KnownBackupsvrState(
            node: node.name, nodeID: node.id, seq: message.seq, time: message.time, received: context.clock.now().rfc3339,
            state: message.state!)
        do {
            try file.write(state)
        } catch {
            throw StateMessageError(problem: "cannot keep it in \(stateDir): \(error)", keepQueued: true)
        }
        for result in state.state.verified where result.compared != nil {
            try? VerifyResults(stateDir: stateDir).record(result)
        }
        return "took \(node.name)'s state seq \(message.seq) of \(message.time): \(state.state.datasets.count) dataset(s)"
    }

    /// Compares a drive's manifest with this laptop's snapshot, and queues
    /// the result for backupsvr.
    private func answer(_ request: VerifyRequest) async throws -> String {
        let host = context.config.send.host ?? nncp.selfName
        let result = await VerifyDrill(context: context, nncp: nncp).compare(request, host: host)
        do {
            try VerifyResults(stateDir: stateDir).record(result)
            let message = StateMessage(kind: .verifyResult, seq: 0, time: context.clock.now().rfc3339, result: result)
            try await context.runner.check(
                NNCP.execState(config: nncp.path, node: context.config.send.backupsvr).asUser(context.config.nncpUser),
                input: message.bytes)
        } catch {
            throw StateMessageError(problem: "cannot keep or send the result: \(error)", keepQueued: true)
        }
        for difference in result.differences ?? [] { logger.warning("verify: \(difference.line)") }
        return result.line
    }

    /// backupsvr keeps a laptop's verify result, for a dataset of its own.
    private func takeResult(_ result: VerifyResult, from node: NNCPNode) throws -> String {
        guard let prefix = context.config.receive.senders[node.name].flatMap({ try? DatasetName($0) }),
            let dataset = try? DatasetName(result.dataset), dataset.isWithin(prefix)
        else {
            throw StateMessageError(problem: "\(node.name) may report only on datasets under its prefix, not \(printable(result.dataset))")
        }
        guard result.compared != nil else { throw StateMessageError(problem: "a result must say when it was compared") }
        let kept: Bool
        do {
            kept = try VerifyResults(stateDir: stateDir).record(result)
        } catch {
            throw StateMessageError(problem: "cannot keep it in \(stateDir): \(error)", keepQueued: true)
        }
        return kept ? result.line : "ignored an older \(result.line)"
    }

    /// At most `limit` bytes of `input`, in growing chunks: a small message
    /// costs little memory, however large the limit.
    static func read(_ input: FileDescriptor, upTo limit: Int) throws(Errno) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < limit {
            let count = try readFully(input.rawValue, into: &chunk)
            bytes += chunk[..<min(count, limit - bytes.count)]
            if count < chunk.count { break }
        }
        return bytes
    }

    private func keepRefusal(_ refusal: RefusedMessage) {
        let file = StateFile<[RefusedMessage]>(RefusedMessage.fileName, stateDir: stateDir)
        try? file.write(((file.load { logger.warning("\($0)") } ?? []) + [refusal]).suffix(RefusedMessage.kept))
    }
}
