import Foundation

/// What one toss did: the exec handlers' results arrive with it.
public struct TossReport: Codable, Sendable, Equatable {
    public var started: String
    public var finished: String
    public var status: String
    public var succeeded: Bool
    /// nncp-toss's error lines: a handler that failed leaves its packet queued.
    public var errors: [String]
}

/// What one visit of a stick did, and what this host knows afterwards.
/// It is kept as `state-dir/last-visit.json`; the journal carries it.
public struct VisitReport: Codable, Sendable, Equatable {
    /// This host's last visit, in `state-dir`.
    public static let fileName = "last-visit.json"

    /// This host's last visit's report, if there is one.
    public static func last(stateDir: String) throws -> VisitReport? {
        try StateFile<VisitReport>(fileName, stateDir: stateDir).load()
    }

    public var role: String
    public var node: String
    public var peer: String
    public var stick: String
    public var started: String
    public var finished = ""
    public var received = PacketCount()
    /// Packets NNCP refused (a bad checksum); removed from the stick so that
    /// the sender, which keeps its copy, sends them again.
    public var rejected: [String] = []
    public var acks = 0
    /// backupsvr: packets the peer sent again because their ACK was lost,
    /// acknowledged again. Optional: records written before it lack it.
    public var acknowledgedAgain: [String]?
    public var sent = PacketCount()
    public var alreadyOnStick = 0
    public var pendingForPeer = PacketCount()
    public var stayedBehind: [QueuedPacket] = []
    public var tooBig: [QueuedPacket] = []
    /// Packets on the stick for other recipients, by name or id.
    public var foreign: [String: Int] = [:]
    /// Links, special files and leftover temporaries removed from the stick.
    public var removed: [String] = []
    /// The last toss before this visit (at backupsvr it runs after the stick
    /// is out, so its results travel with the next visit).
    public var lastToss: TossReport?
    /// backupsvr: the enrolled backup drives (where each is and what it
    /// holds arrives with drive rotation).
    public var drives: [EnrolledDrive]?
    /// backupsvr: packets received and not yet applied by a toss.
    public var receiveBacklog: PacketCount?
    /// backupsvr: the newest snapshot received of each dataset, as of the
    /// last toss (the toss runs after the stick is out, so this visit's
    /// streams show in the next visit's record).
    public var datasets: [ReceivedDataset]?
    /// backupsvr: the streams waiting in the store for a drive, and their bytes.
    public var streamStore: PacketCount?
    /// backupsvr: the split streams whose parts are still arriving.
    public var incompleteStreams: [IncompleteStreamStatus]?
    /// backupsvr: the restore drills' results, newest per dataset.
    public var verified: [VerifyResult]?
    /// backupsvr: the streams refused for their sender or prefix.
    public var refused: [RefusedStream]?
    /// The stick after the visit.
    public var stickFree: UInt64 = 0
    public var stickTotal: UInt64 = 0
    public var warnings: [String] = []
    /// What was wrong with the stick's journal on this visit (forged,
    /// rolled back, set aside): warnings of `ferry status` here.
    public var journalProblems: [String]?
    /// Why the visit failed on a stick that is ours but cannot be used
    /// (a bound passed); nil for a visit that did its work.
    public var failure: String?
}

/// The journal record (event `unusable`) of a visit that found the stick
/// ours but could not use it, so that the other host learns why.
public struct StickUnusableRecord: Codable, Sendable, Equatable {
    public var stick: String
    public var problem: String
}

/// A stick that is ours (its identity verified on this mount) that ferry
/// cannot use: its `nncp/` passes a bound, or cannot be walked.
public struct StickUnusableError: FerryError {
    public var underlying: FileAccessError

    public var description: String {
        "\(underlying); the stick cannot be used until that is cleared"
    }
}

/// A visit that could not be completed.
public struct ExchangeError: FerryError {
    public var step: String
    public var problem: String
    public var exitStatus: ExitStatus = .failed

    public var description: String { "\(step): \(problem)" }

    static let interrupted = ExchangeError(
        step: "visit", problem: "interrupted: the stick was pulled or ferry was stopped; nothing is lost, and the next plug-in carries on",
        exitStatus: .interrupted)

    /// What failed because `devnode` went away: the stick was pulled, and the
    /// failure (an I/O error, a read-only file system) is its consequence.
    static func pulled(_ devnode: String, after error: any Error) -> ExchangeError {
        ExchangeError(
            step: "visit",
            problem:
                "interrupted: \(printable(devnode)) was pulled out (\(error)); nothing is lost, and the next plug-in carries on",
            exitStatus: .interrupted)
    }
}
