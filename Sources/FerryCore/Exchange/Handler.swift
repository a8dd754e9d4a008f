import Foundation

/// A medium that `ferry handle` leaves alone.
public struct NotOursError: FerryError {
    public var recognition: Recognition

    public var exitStatus: ExitStatus { .notOurs }
    public var description: String {
        "\(recognition.device.devnode) is not ours and was left alone: \(recognition.reason)"
    }
}

/// `ferry handle DEVNODE`: what ferry@.service runs when a medium is plugged in.
public struct Handler: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    /// Decides what the medium is and does this host's work with it.
    ///
    /// The spool lock is taken first: a second `ferry handle`, for this medium
    /// or another, waits until this one is done, and never mounts over it.
    public func handle(devnode: String) async throws -> Recognition {
        try context.config.require(.spooler, .backupsvr, for: "handle")
        let logger = context.logger
        var lock: SpoolLock? = try await SpoolLock.acquire(stateDir: context.config.stateDir, logger: logger)
        let recognition = try await MediumRecognizer(context: context).recognize(devnode: devnode, exclusive: true)
        switch recognition.verdict {
        case .unknown:
            throw NotOursError(recognition: recognition)
        case .stick:
            logger.info(
                "known stick",
                metadata: ["device": "\(devnode)", "uuid": "\(recognition.device.filesystem.uuid ?? "")", "why": "\(recognition.reason)"])
            let nncp = try await context.nncpConfig()
            _ = try await StickVisit(context: context, nncp: nncp).run(device: recognition.device, identity: recognition.identity!)
            lock = nil
            if context.config.role == .backupsvr {
                await Toss(context: context, nncp: nncp).launchAfterVisit()
            }
        case .drive:
            logger.info("known backup drive", metadata: ["device": "\(devnode)", "why": "\(recognition.reason)"])
            logger.info("safe to remove", metadata: ["device": "\(devnode)"])
        }
        withExtendedLifetime(lock) {}
        return recognition
    }
}
