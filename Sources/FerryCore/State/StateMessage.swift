import Foundation

/// A refused stream, as backupsvr tells its sender: the sender is not listed
/// or writes outside its prefix.
public struct RefusedStream: Codable, Sendable, Equatable {
    /// The NNCP node name of the sender.
    public var sender: String
    /// HOST/DATASET as the sender gave it (printable-escaped).
    public var destination: String
    public var reason: String
    /// When it was first refused (RFC 3339); repeats of the same refusal
    /// keep it, so that a refusal on every toss is one unchanging entry.
    public var since: String

    public var line: String { "refused \(destination) from \(sender) since \(since): \(reason)" }

    public init(sender: String, destination: String, reason: String, since: String) {
        self.sender = sender
        self.destination = destination
        self.reason = reason
        self.since = since
    }
}

/// A drive and what it holds of one laptop's datasets.
public struct LaptopDrive: Codable, Sendable, Equatable {
    public var pool: String
    public var place: DrivePlace?
    public var since: String?
    public var retired: String?
    /// The newest snapshot of each of the laptop's datasets on it.
    public var datasets: [DriveDataset]

    public init(pool: String, place: DrivePlace?, since: String?, retired: String?, datasets: [DriveDataset]) {
        self.pool = pool
        self.place = place
        self.since = since
        self.retired = retired
        self.datasets = datasets
    }
}

/// The part of backupsvr's state that concerns one laptop: what backupsvr
/// queues to its `ferrystate` handle.
public struct LaptopState: Codable, Sendable, Equatable {
    /// The laptop's NNCP node name on backupsvr.
    public var host: String
    /// The newest snapshot of each of its datasets that reached backupsvr.
    public var datasets: [ReceivedDataset]
    public var drives: [LaptopDrive]
    public var incompleteStreams: [IncompleteStreamStatus]
    public var refused: [RefusedStream]
    public var verified: [VerifyResult]

    public init(
        host: String, datasets: [ReceivedDataset], drives: [LaptopDrive], incompleteStreams: [IncompleteStreamStatus],
        refused: [RefusedStream], verified: [VerifyResult]
    ) {
        self.host = host
        self.datasets = datasets
        self.drives = drives
        self.incompleteStreams = incompleteStreams
        self.refused = refused
        self.verified = verified
    }
}

/// What `ferry verify` asks the laptop to compare.
public struct VerifyRequest: Codable, Sendable, Equatable {
    /// When backupsvr made the manifest (RFC 3339): names the request.
    public var requested: String
    public var pool: String
    public var manifest: Manifest

    public init(requested: String, pool: String, manifest: Manifest) {
        self.requested = requested
        self.pool = pool
        self.manifest = manifest
    }
}

/// The outcome of one restore drill, made on the laptop and kept on all
/// three hosts.
public struct VerifyResult: Codable, Sendable, Equatable {
    /// HOST/DATASET on backupsvr.
    public var dataset: String
    /// The snapshot on the drive.
    public var snapshot: String
    public var pool: String
    /// When backupsvr made the manifest.
    public var requested: String
    /// When the laptop compared it; nil while the request is on its way.
    public var compared: String?
    /// The laptop's snapshot it was compared with: the same one, or the
    /// laptop's kept mark snapshot.
    public var laptopSnapshot: String?
    public var equal: Bool?
    public var entries: Int?
    public var fileBytes: UInt64?
    public var differences: [ManifestDifference]?
    public var differencesTotal: Int?
    /// Why the laptop could not compare.
    public var problem: String?

    public init(dataset: String, snapshot: String, pool: String, requested: String, compared: String? = nil) {
        self.dataset = dataset
        self.snapshot = snapshot
        self.pool = pool
        self.requested = requested
        self.compared = compared
    }

    public var line: String {
        let subject = "verify of \(dataset)@\(snapshot) on \(pool), requested \(requested)"
        guard let compared else { return subject + ": waiting for the laptop's answer" }
        if let problem { return subject + ": not compared (\(compared)): \(problem)" }
        let with = laptopSnapshot.map { $0 == snapshot ? "" : " with the laptop's @\($0)" } ?? ""
        if equal == true {
            return subject + ": equal\(with) (\(entries ?? 0) entries, \(humanSize(fileBytes ?? 0)) of files), compared \(compared)"
        }
        return subject + ": \(differencesTotal ?? 0) difference(s)\(with), compared \(compared)"
    }
}

/// The one message that travels to a `ferrystate` handle, signed and
/// encrypted by NNCP: backupsvr's state for a laptop, a verify request
/// (backupsvr to laptop) or a verify result (laptop to backupsvr).
public struct StateMessage: Codable, Sendable, Equatable {
    public static let format = 1
    /// The most bytes `ferry state` reads of a state message or a result.
    public static let limit = 4 << 20
    /// The most bytes of a verify request, which carries a whole manifest.
    public static let requestLimit = 512 << 20

    public enum Kind: String, Codable, Sendable {
        case state
        case verifyRequest = "verify-request"
        case verifyResult = "verify-result"
    }

    /// The message format (`"ferry-state": 1`).
    public var format: Int
    public var kind: Kind
    /// Counts up for each state message backupsvr sends one laptop: the
    /// laptop keeps only a newer one.
    public var seq: UInt64
    /// When the sender wrote it (RFC 3339).
    public var time: String
    public var state: LaptopState?
    public var request: VerifyRequest?
    public var result: VerifyResult?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case format = "ferry-state", kind, seq, time, state, request, result
    }

    public init(
        kind: Kind, seq: UInt64, time: String, state: LaptopState? = nil, request: VerifyRequest? = nil, result: VerifyResult? = nil
    ) {
        self.format = Self.format
        self.kind = kind
        self.seq = seq
        self.time = time
        self.state = state
        self.request = request
        self.result = result
    }

    public var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}

/// Why a message to `ferrystate` was not taken.
public struct StateMessageError: FerryError {
    public var problem: String
    /// A fault here (the state could not be written): the packet stays
    /// queued. Anything wrong with the message itself is dropped (exit 0),
    /// since nncp-toss would retry it on every toss, forever.
    public var keepQueued = false

    public var description: String { "state message refused: " + problem }
    public var exitStatus: ExitStatus { keepQueued ? .failed : .done }
}

extension StateMessage {
    /// Decodes and checks `bytes` as hostile input: bounded, every key
    /// known, the body matching the kind, every name and time well formed.
    /// `host` is the HOST its datasets must lie under.
    public static func decode(_ bytes: [UInt8], limit: Int = Self.requestLimit) throws(StateMessageError) -> StateMessage {
        guard bytes.count <= limit else { throw StateMessageError(problem: "it is larger than \(limit) bytes") }
        let message: StateMessage
        do {
            message = try JSONDecoder().decode(StateMessage.self, from: Data(bytes))
        } catch let error as StateMessageError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            throw StateMessageError(problem: "it is not a ferry state message: \(printable(context.debugDescription, limit: 160))")
        } catch let DecodingError.keyNotFound(key, _) {
            throw StateMessageError(problem: "it lacks \(key.stringValue)")
        } catch let DecodingError.typeMismatch(_, context) where !context.codingPath.isEmpty {
            throw StateMessageError(
                problem: "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch {
            throw StateMessageError(problem: "it is not a ferry state message")
        }
        guard message.format == Self.format else {
            throw StateMessageError(problem: "its format is \(message.format); this ferry reads format \(Self.format)")
        }
        let bodies = [message.state != nil, message.request != nil, message.result != nil].filter { $0 }.count
        let matches: Bool =
            switch message.kind {
            case .state: message.state != nil
            case .verifyRequest: message.request != nil
            case .verifyResult: message.result != nil
            }
        guard bodies == 1, matches else { throw StateMessageError(problem: "a \(message.kind.rawValue) message must carry its body alone") }
        try check(time: message.time, "time")
        if let state = message.state { try check(state) }
        if let request = message.request { try check(request) }
        if let result = message.result { try check(result) }
        return message
    }

    public init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = keys.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw StateMessageError(problem: "it has an unknown key \(printable(unknown.stringValue, limit: 40))")
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(Int.self, forKey: .format)
        kind = try container.decode(Kind.self, forKey: .kind)
        seq = try container.decode(UInt64.self, forKey: .seq)
        time = try container.decode(String.self, forKey: .time)
        state = try container.decodeIfPresent(LaptopState.self, forKey: .state)
        request = try container.decodeIfPresent(VerifyRequest.self, forKey: .request)
        result = try container.decodeIfPresent(VerifyResult.self, forKey: .result)
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static let listLimit = 10_000
    static let textLimit = 1024

    static func check(time: String, _ field: String) throws(StateMessageError) {
        guard time.utf8.count <= 64, Date(rfc3339: time) != nil else {
            throw StateMessageError(problem: "\(field) is not an RFC 3339 time")
        }
    }

    static func check(text: String, _ field: String) throws(StateMessageError) {
        guard text.utf8.count <= textLimit else { throw StateMessageError(problem: "\(field) is longer than \(textLimit) bytes") }
    }

    static func check(dataset: String, _ field: String) throws(StateMessageError) {
        guard (try? DatasetName(dataset)) != nil else { throw StateMessageError(problem: "\(field) is not a dataset name") }
    }

    static func check(snapshot: String, _ field: String) throws(StateMessageError) {
        guard DatasetName.isValidComponent(Substring(snapshot)) else {
            throw StateMessageError(problem: "\(field) is not a snapshot name")
        }
    }

    static func check(count: Int, _ field: String, limit: Int = listLimit) throws(StateMessageError) {
        guard count <= limit else { throw StateMessageError(problem: "\(field) lists more than \(limit) entries") }
    }

    static func check(_ state: LaptopState) throws(StateMessageError) {
        guard NodeName.isValid(state.host) else { throw StateMessageError(problem: "state.host is not a node name") }
        try check(count: state.datasets.count, "state.datasets")
        for dataset in state.datasets {
            try check(dataset: dataset.dataset, "state.datasets.dataset")
            try check(snapshot: dataset.snapshot, "state.datasets.snapshot")
            try check(time: dataset.created, "state.datasets.created")
            try check(time: dataset.received, "state.datasets.received")
            try check(count: dataset.pools.count, "state.datasets.pools", limit: 1000)
            for pool in dataset.pools { try check(dataset: pool, "state.datasets.pools") }
        }
        try check(count: state.drives.count, "state.drives", limit: 1000)
        for drive in state.drives {
            try check(dataset: drive.pool, "state.drives.pool")
            for time in [drive.since, drive.retired].compactMap({ $0 }) { try check(time: time, "state.drives.since") }
            try check(count: drive.datasets.count, "state.drives.datasets")
            for dataset in drive.datasets {
                try check(dataset: dataset.dataset, "state.drives.datasets.dataset")
                try check(snapshot: dataset.snapshot, "state.drives.datasets.snapshot")
                if let created = dataset.created { try check(time: created, "state.drives.datasets.created") }
            }
        }
        try check(count: state.incompleteStreams.count, "state.incompleteStreams", limit: 1000)
        for stream in state.incompleteStreams {
            try check(dataset: stream.dataset, "state.incompleteStreams.dataset")
            try check(text: stream.stream, "state.incompleteStreams.stream")
            try check(text: stream.sender, "state.incompleteStreams.sender")
            try check(time: stream.since, "state.incompleteStreams.since")
            try check(count: stream.missing.count, "state.incompleteStreams.missing")
        }
        try check(count: state.refused.count, "state.refused", limit: 100)
        for refusal in state.refused {
            for (text, field) in [(refusal.sender, "sender"), (refusal.destination, "destination"), (refusal.reason, "reason")] {
                try check(text: text, "state.refused.\(field)")
            }
            try check(time: refusal.since, "state.refused.since")
        }
        try check(count: state.verified.count, "state.verified", limit: 1000)
        for result in state.verified { try check(result) }
    }

    static func check(_ request: VerifyRequest) throws(StateMessageError) {
        try check(time: request.requested, "request.requested")
        try check(dataset: request.pool, "request.pool")
        try check(dataset: request.manifest.dataset, "request.manifest.dataset")
        try check(snapshot: request.manifest.snapshot, "request.manifest.snapshot")
        try check(count: request.manifest.entries.count, "request.manifest.entries", limit: ManifestWalker.entryLimit)
        var previous: Data?
        for entry in request.manifest.entries {
            guard !entry.path.isEmpty, entry.path.count <= ManifestWalker.pathLimit, (entry.target?.count ?? 0) <= ManifestWalker.pathLimit
            else { throw StateMessageError(problem: "request.manifest has a path or a link target that is empty or too long") }
            if let previous, !previous.lexicographicallyPrecedes(entry.path) {
                throw StateMessageError(problem: "request.manifest is not sorted by path, or repeats one")
            }
            if let digest = entry.sha256, digest.utf8.count != 64 || Hex.decode(digest) == nil {
                throw StateMessageError(problem: "request.manifest has a SHA-256 that is not 64 hex digits")
            }
            previous = entry.path
        }
    }

    static func check(_ result: VerifyResult) throws(StateMessageError) {
        try check(dataset: result.dataset, "result.dataset")
        try check(snapshot: result.snapshot, "result.snapshot")
        try check(dataset: result.pool, "result.pool")
        try check(time: result.requested, "result.requested")
        if let compared = result.compared { try check(time: compared, "result.compared") }
        if let snapshot = result.laptopSnapshot { try check(snapshot: snapshot, "result.laptopSnapshot") }
        if let problem = result.problem { try check(text: problem, "result.problem") }
        try check(count: result.differences?.count ?? 0, "result.differences", limit: ManifestComparison.listed)
        for difference in result.differences ?? [] {
            guard difference.path.count <= ManifestWalker.pathLimit, difference.fields.count <= 5,
                difference.fields.allSatisfy({ ["type", "size", "mode", "sha256", "target"].contains($0) })
            else { throw StateMessageError(problem: "result.differences has a malformed entry") }
        }
    }
}
