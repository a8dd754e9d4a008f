import Foundation

/// A thinning schedule in zfs-autobackup's syntax (`[retention] keep`):
/// comma-separated parts, where a plain number keeps that many of the
/// newest snapshots, and `PERIODttl` (e.g. `1d1w`) keeps one snapshot per
/// PERIOD among those younger than TTL. Units: s, min, h, d, w, m (30
/// days), y (365.25 days). A snapshot is kept when any part wants it.
public struct RetentionSchedule: Sendable, Equatable, CustomStringConvertible {
    /// One `PERIODttl` part, in seconds.
    public struct Rule: Sendable, Equatable {
        public var period: Int64
        public var ttl: Int64
    }

    public var keepNewest: Int
    public var rules: [Rule]
    /// The text it was parsed from.
    public var description: String

    static let units: [(String, Int64)] = [
        ("min", 60), ("s", 1), ("h", 3600), ("d", 86400), ("w", 7 * 86400), ("m", 30 * 86400), ("y", 31_557_600),
    ]

    /// Parses `text`; the error says which part is wrong and why.
    public static func parse(_ text: String) throws(RetentionError) -> RetentionSchedule {
        var schedule = RetentionSchedule(keepNewest: 0, rules: [], description: text)
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw RetentionError(part: text, problem: "is empty; leave the key out to keep everything")
        }
        for part in parts {
            if let count = Int(part), count >= 0 {
                schedule.keepNewest = count
                continue
            }
            var rest = Substring(part.lowercased())
            guard let period = takeAmount(&rest), let ttl = takeAmount(&rest), rest.isEmpty else {
                throw RetentionError(part: part, problem: "is neither a count nor PERIODttl such as 1d1w (units s, min, h, d, w, m, y)")
            }
            guard period > 0, period <= ttl else {
                throw RetentionError(part: part, problem: "needs a period above zero and no longer than its ttl")
            }
            schedule.rules.append(Rule(period: period, ttl: ttl))
        }
        return schedule
    }

    /// Takes `NUMBERUNIT` off the front of `text`, in seconds.
    private static func takeAmount(_ text: inout Substring) -> Int64? {
        let digits = text.prefix(while: \.isASCII).prefix(while: \.isNumber)
        guard !digits.isEmpty, digits.count <= 9, let amount = Int64(digits) else { return nil }
        let afterDigits = text.dropFirst(digits.count)
        guard let (unit, seconds) = units.first(where: { afterDigits.hasPrefix($0.0) }) else { return nil }
        text = afterDigits.dropFirst(unit.count)
        return amount * seconds
    }

    /// Splits `snapshots` (oldest first, each with its creation time in
    /// seconds since 1970) into those the schedule keeps at `now` and those
    /// it lets go. Within each period-long block (counted from 1970, so
    /// that the blocks stay put as time goes on) the oldest snapshot is the
    /// one kept: it stays the block's choice as newer ones arrive.
    public func decide<Snapshot>(_ snapshots: [Snapshot], created: (Snapshot) -> Int64, now: Date) -> (
        keep: [Snapshot], destroy: [Snapshot]
    ) {
        let nowSeconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let newestKept = max(0, snapshots.count - keepNewest)
        var claimed = Array(repeating: Set<Int64>(), count: rules.count)
        var keep: [Snapshot] = []
        var destroy: [Snapshot] = []
        for (index, snapshot) in snapshots.enumerated() {
            let time = created(snapshot)
            var wanted = index >= newestKept
            for (ruleIndex, rule) in rules.enumerated() where nowSeconds - time <= rule.ttl {
                let block = time >= 0 ? time / rule.period : (time - rule.period + 1) / rule.period
                if claimed[ruleIndex].insert(block).inserted { wanted = true }
            }
            if wanted { keep.append(snapshot) } else { destroy.append(snapshot) }
        }
        return (keep, destroy)
    }
}

/// A `[retention]` value that does not parse.
public struct RetentionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var part: String
    public var problem: String

    public var description: String { "\"\(printable(part))\" \(problem)" }
}

/// `[retention]` in the config: a schedule for every dataset, and
/// overrides by HOST/DATASET. No schedule at all keeps everything.
public struct RetentionPolicy: Sendable, Equatable {
    public var keep: RetentionSchedule?
    public var datasets: [String: RetentionSchedule] = [:]

    public init(keep: RetentionSchedule? = nil, datasets: [String: RetentionSchedule] = [:]) {
        self.keep = keep
        self.datasets = datasets
    }

    /// The schedule for `dataset` (HOST/DATASET); nil keeps everything.
    public func schedule(for dataset: String) -> RetentionSchedule? {
        datasets[dataset] ?? keep
    }

    public var isEmpty: Bool { keep == nil && datasets.isEmpty }
}

/// One snapshot of a dataset on a drive, with what protects it.
public struct ThinCandidate: Sendable, Equatable {
    /// The part after `@`.
    public var name: String
    /// Creation time in seconds since 1970 (the laptop's, for a received one).
    public var created: Int64
    /// Its GUID is one ferry received; anything else is an admin's own.
    public var received: Bool
    /// It has a `zfs hold` (userrefs above zero).
    public var held: Bool
    /// A clone was made from it.
    public var origin: Bool
    /// The other drives whose catch-up from this one starts at it.
    public var baseFor: [String] = []

    public init(name: String, created: Int64, received: Bool = true, held: Bool = false, origin: Bool = false, baseFor: [String] = []) {
        self.name = name
        self.created = created
        self.received = received
        self.held = held
        self.origin = origin
        self.baseFor = baseFor
    }
}

extension RetentionSchedule {
    /// The snapshots of one dataset (oldest first) that thinning destroys:
    /// those the schedule lets go among the ones ferry received, except the
    /// newest (the base of the next incremental), a held one, a clone's
    /// origin, and the base another drive needs.
    public func destroying(_ snapshots: [ThinCandidate], now: Date) -> [ThinCandidate] {
        let newestReceived = snapshots.last { $0.received }?.name
        let (_, letGo) = decide(snapshots.filter(\.received), created: \.created, now: now)
        return letGo.filter { snapshot in
            snapshot.name != newestReceived && snapshot.name != snapshots.last?.name && !snapshot.held && !snapshot.origin
                && snapshot.baseFor.isEmpty
        }
    }
}
