/// What backupsvr knows of its drives and of the streams for them: what a
/// visit's record carries to the spooler, what `ferry status` shows, and
/// what `ferry drive list` lists. Gathered in one place so that the three
/// never differ.
public struct BackupsvrState: Sendable, Equatable {
    /// Every enrolled drive, with its place and what it is behind.
    public var drives: [EnrolledDrive]
    /// The rotation warnings, after a failed check of the pools if there was one.
    public var warnings: [String]
    /// The newest snapshot received of each dataset.
    public var datasets: [ReceivedDataset]
    /// What waits in the stream store; nil when the store cannot be read.
    public var streamStore: PacketCount?
    /// The split streams whose parts are still arriving.
    public var incompleteStreams: [IncompleteStreamStatus]
    /// The restore drills' results, newest per dataset.
    public var verified: [VerifyResult]
    /// The streams refused for their sender or prefix.
    public var refused: [RefusedStream]
}

extension DriveDock {
    /// Notices drives pulled without eject, then reads the drives, their
    /// warnings, the datasets received and the store. A failed check of the
    /// pools is a warning: what the registry says is still worth showing.
    public func backupsvrState() async throws -> BackupsvrState {
        var warnings: [String] = []
        var listed: [PoolState]?
        do {
            listed = try await noticePulled()
        } catch {
            let line = "could not check the backup drives' pools: \(error)"
            logger.warning("\(line)")
            warnings.append(line)
        }
        let drives = try await drives(listed: listed)
        warnings += self.warnings(for: drives)
        let incomplete = PartStore.incomplete(config: context.config, now: context.clock.now())
        warnings += incomplete.warnings
        let datasets =
            ReceivedDatasets(stateDir: context.config.stateDir).file.load { line in
                logger.warning("\(line)")
                warnings.append(line)
            } ?? []
        let report = { (line: String) in
            logger.warning("\(line)")
            warnings.append(line)
        }
        let verified = VerifyResults(stateDir: context.config.stateDir).load(reporting: report)
        warnings += VerifyResults.warnings(
            for: datasets.map(\.dataset), results: verified, limit: context.config.status.verifyWarnAfter, now: context.clock.now())
        let refused = RefusalLog(stateDir: context.config.stateDir).load(reporting: report)
        warnings += refused.map(\.line)
        return BackupsvrState(
            drives: drives, warnings: warnings, datasets: datasets, streamStore: try? openStore().size(),
            incompleteStreams: incomplete.streams, verified: verified, refused: refused)
    }
}
