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
        // nncp-cfgdir runs while the medium is probed: most media are sticks.
        let nncpLoad = Task { [context] in try await context.nncpConfig() }
        let outcome: Result<Recognition, any Error>
        let presentAtStart = context.inspector.isPresent(devnode: devnode)
        do {
            outcome = .success(try await handle(devnode: devnode, nncpLoad: nncpLoad))
        } catch let error as FerryError where error.exitStatus != .failed {
            outcome = .failure(error)
        } catch {
            let pulled = presentAtStart ? await pulledOut(devnode) : false
            outcome = .failure(pulled ? ExchangeError.pulled(devnode, after: error) : error)
        }
        // Where the NNCP config was not needed (a drive, a medium not ours),
        // nncp-cfgdir is stopped, and awaited: ferry must not exit while
        // swift-subprocess is still starting it, or it reports a leaked
        // continuation on standard error.
        nncpLoad.cancel()
        _ = try? await nncpLoad.value
        return try outcome.get()
    }

    private func handle(devnode: String, nncpLoad: Task<NNCPConfig, any Error>) async throws -> Recognition {
        let logger = context.logger
        var lock: HostLock? = try await HostLock.acquire(.spool, stateDir: context.config.stateDir, logger: logger)
        let recognizer = MediumRecognizer(context: context)
        let device = try context.inspector.inspect(devnode: devnode)
        if let decided = try recognizer.classify(device) {
            guard decided.verdict == .drive, let drive = decided.drive else { throw NotOursError(recognition: decided) }
            logger.info("known backup drive", metadata: ["device": "\(devnode)", "why": "\(decided.reason)"])
            // A drive's catch-up can take hours: sticks need not wait for it.
            lock = nil
            try await plugIn(device, drive: drive)
            return decided
        }

        // The look: the device read-only and no journal replayed, so a
        // medium that fails is unmounted with not one byte changed.
        let nncp = try await nncpLoad.value
        let visit = StickVisit(context: context, nncp: nncp)
        let recognition = try await withMountedMedium(device, readOnly: true, context: context) { root in
            try recognizer.check(root: root, device: device, nncp: nncp)
        }
        guard recognition.verdict == .stick, let identity = recognition.identity else {
            throw NotOursError(recognition: recognition)
        }
        logger.info("known stick", metadata: ["device": "\(devnode)", "uuid": "\(identity.uuid)", "why": "\(recognition.reason)"])
        // Verified: mounted again read-write, where ext4 replays its journal.
        // A remount would keep `noload` and write with no journal at all. The
        // replay can change what the look saw, so the identity is checked
        // again on what the exchange will use.
        let outcome = try await withMountedMedium(device, readOnly: false, context: context) { root in
            let again = try recognizer.check(root: root, device: device, nncp: nncp)
            guard again.verdict == .stick, let current = again.identity, current == identity else {
                throw NotOursError(recognition: again)
            }
            let filesystem = StickFilesystem(type: device.filesystem.type ?? "")
            return try await visit.exchange(root: root, identity: identity, filesystem: filesystem)
        }
        // A SIGTERM that came during the last steps (sync, unmount) means
        // the stick was pulled, or ferry stopped, before it was done.
        guard !Task.isCancelled else { throw ExchangeError.interrupted }
        await visit.released(device: device, report: outcome.report)
        // Not cancelled by the SIGTERM that pulling the stick now brings.
        await Task { await visit.dropCopies(outcome) }.value
        lock = nil
        if context.config.role == .backupsvr {
            await TossRun(context: context, nncp: nncp).launchAfterVisit()
        }
        withExtendedLifetime(lock) {}
        return recognition
    }

    /// Whether a failure came from the medium being pulled out. The kernel
    /// fails the I/O at once, and removes the device node a moment later, so
    /// a failing visit gives the node a little while to go.
    private func pulledOut(_ devnode: String) async -> Bool {
        for _ in 0..<20 {
            if !context.inspector.isPresent(devnode: devnode) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// An enrolled drive: imported, caught up, and left in the dock.
    private func plugIn(_ device: BlockDevice, drive: EnrolledDrive) async throws {
        let dock = DriveDock(context: context)
        let plugged = try await dock.plugIn(device, drive: drive)
        let behind = try dock.behind(plugged.drive)
        guard plugged.outcome.failures.isEmpty else {
            throw DriveError(
                .catchUpFailed, subject: drive.pool,
                problem:
                    "could not take \(plugged.outcome.failures.count) stream(s), which stay in the store: \(plugged.outcome.failures[0])")
        }
        context.logger.info(
            "drive \(drive.pool) is in the dock and caught up; it stays imported until ferry drive eject \(drive.pool)",
            metadata: [
                "applied": "\(plugged.outcome.applied)", "datasets": "\(plugged.drive.datasets?.count ?? 0)",
                "still-waiting": "\(behind.packets)",
            ])
    }
}
