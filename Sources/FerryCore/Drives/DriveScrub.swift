import Foundation
import Logging

/// A drive's space, from `zfs get -p used,available` of its pool's root.
public struct DriveCapacity: Codable, Sendable, Equatable {
    public var size: UInt64
    public var used: UInt64
    public var free: UInt64
    /// When it was read (RFC 3339).
    public var seen: String

    public var usedPercent: Int { size == 0 ? 0 : Int(used * 100 / size) }
}

/// A drive's last scrub, as `zpool status -v` showed it.
public struct ScrubResult: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case running, completed, stopped
    }
    public var state: State
    /// When ferry started it, if ferry did (RFC 3339).
    public var started: String?
    /// When ferry first saw it finished (RFC 3339).
    public var finished: String?
    /// What zpool says it scanned or repaired, in its own words.
    public var repaired: String?
    public var errors: Int = 0
    /// The files `zpool status -v` lists with permanent errors.
    public var files: [String] = []
}

/// The scrub part of `zpool status -v POOL`, in the two dialects seen:
/// zfs-fuse's "scrub: scrub completed after 0h0m with 0 errors on DATE"
/// and OpenZFS's "scan: scrub repaired 0B in 00:00:01 with 0 errors on DATE".
public struct ScrubStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case none, running, completed, stopped
    }
    public var state: State
    public var repaired: String?
    public var errors: Int
    public var files: [String]

    public static func parse(_ status: String) -> ScrubStatus {
        var parsed = ScrubStatus(state: .none, repaired: nil, errors: 0, files: [])
        var inFiles = false
        var deviceErrors = 0
        var inConfig = false
        for raw in status.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("scrub:") || line.hasPrefix("scan:") {
                let text = line.drop { $0 != ":" }.dropFirst().trimmingCharacters(in: .whitespaces)
                if text.contains("in progress") {
                    parsed.state = .running
                } else if text.contains("completed") || text.contains("repaired") {
                    parsed.state = .completed
                } else if text.contains("stopped") || text.contains("canceled") || text.contains("cancelled") {
                    parsed.state = .stopped
                }
                if let range = text.range(of: "with "), let count = Int(text[range.upperBound...].prefix(while: \.isNumber)) {
                    parsed.errors = count
                }
                if let range = text.range(of: "repaired ") {
                    parsed.repaired = String(text[range.upperBound...].prefix { $0 != " " })
                }
                inConfig = false
            } else if line.hasPrefix("config:") {
                inConfig = true
            } else if line.hasPrefix("errors:") {
                inConfig = false
                inFiles = line.contains("following files")
            } else if inFiles, !line.isEmpty {
                parsed.files.append(line)
            } else if inConfig {
                // NAME STATE READ WRITE CKSUM: a device's counters.
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count >= 5, fields[0] != "NAME" {
                    deviceErrors = max(deviceErrors, fields[2...4].compactMap { Int($0) }.reduce(0, +))
                }
            }
        }
        parsed.errors = max(parsed.errors, deviceErrors, parsed.files.count)
        return parsed
    }
}

extension DriveDock {
    /// The capacity of present `pool`, now.
    func capacity(of pool: String) async throws -> DriveCapacity {
        let rows = try await inventory.properties(["used", "available"], of: [pool])
        let used = rows.first { $0.property == "used" }.flatMap { UInt64($0.value) } ?? 0
        let free = rows.first { $0.property == "available" }.flatMap { UInt64($0.value) } ?? 0
        return DriveCapacity(size: used + free, used: used, free: free, seen: context.clock.now().rfc3339)
    }

    /// What `zpool status -v` says of `pool`'s scrub now.
    func scrubStatus(of pool: String) async throws -> ScrubStatus {
        ScrubStatus.parse(try await context.runner.check(Zpool.status(pool: pool)).output)
    }

    /// `drive`'s scrub record brought up to date with `status`: a scrub seen
    /// finished gets its result and the time ferry first saw it so.
    func updated(_ record: ScrubResult?, with status: ScrubStatus) -> ScrubResult? {
        let now = context.clock.now().rfc3339
        switch status.state {
        case .none:
            return record
        case .running:
            var running = record?.state == .running ? record! : ScrubResult(state: .running, started: now)
            running.state = .running
            return running
        case .completed, .stopped:
            var done = record ?? ScrubResult(state: .completed)
            if done.state == .running || done.finished == nil { done.finished = now }
            done.state = status.state == .completed ? .completed : .stopped
            done.repaired = status.repaired
            done.errors = status.errors
            done.files = status.files
            return done
        }
    }

    /// Whether a drive with `record` is due for a scrub at `now`: never
    /// scrubbed to the end, or not within `scrub-after`.
    func scrubDue(_ record: ScrubResult?) -> Bool {
        guard let record else { return true }
        if record.state == .running { return false }
        let limit = context.config.rotation.scrubAfter.timeInterval
        guard record.state == .completed, let finished = record.finished.flatMap({ try? Date($0, strategy: .iso8601) }) else {
            return true
        }
        return context.clock.now().timeIntervalSince(finished) > limit
    }

    /// Starts a scrub of present `drive` when it is due (or `force`), and
    /// records what was seen. A failed start is a warning, never a failed plug-in.
    @discardableResult
    func scrubIfDue(_ drive: EnrolledDrive, force: Bool = false) async throws -> ScrubResult? {
        var record = drive.scrub
        if let status = try? await scrubStatus(of: drive.pool) { record = updated(record, with: status) }
        if record?.state == .running {
            try registry.update(guid: drive.guid) { $0.scrub = record }
            return record
        }
        guard force || scrubDue(record) else {
            try registry.update(guid: drive.guid) { $0.scrub = record }
            return record
        }
        let result = try await context.runner.run(Zpool.scrub(pool: drive.pool), input: nil)
        if result.status.succeeded {
            logger.info("scrubbing drive \(drive.pool): its last completed scrub is \(record?.finished ?? "none")")
            var running = ScrubResult(state: .running, started: context.clock.now().rfc3339)
            running.repaired = nil
            record = running
        } else {
            logger.warning("zpool scrub \(drive.pool) failed (\(result.status)): \(result.errorTail(lines: 1))")
        }
        try registry.update(guid: drive.guid) { $0.scrub = record }
        return record
    }

    /// `ferry drive scrub POOL`: starts a scrub of a present drive now.
    public func scrub(_ pool: String) async throws -> ScrubResult? {
        try context.config.require(.backupsvr, for: "drive scrub")
        let drive = try registry.drive(named: pool)
        let present = try await StoreApplier.presentDrives(enrolled: [drive], context: context)
        guard !present.isEmpty else {
            throw DriveError(.notImported, subject: pool, problem: "is not imported and healthy: plug it in first")
        }
        return try await scrubIfDue(drive, force: true)
    }
}

extension DriveDock {
    /// Before an export: waits up to `wait` for a running scrub to finish,
    /// or with `stop` stops it (`zpool scrub -s`). `say` tells the admin.
    func settleScrub(_ drive: EnrolledDrive, stop: Bool, wait: Duration, say: (String) -> Void) async throws -> ScrubResult? {
        guard var status = try? await scrubStatus(of: drive.pool) else { return drive.scrub }
        var record = updated(drive.scrub, with: status)
        guard status.state == .running else { return record }
        if stop {
            say("a scrub is running on \(drive.pool); stopping it (--now)")
            try await context.runner.check(Zpool.scrub(pool: drive.pool, stop: true))
            status = try await scrubStatus(of: drive.pool)
            record = updated(record, with: status)
            // Some zpools report a stopped scrub as "none requested".
            if record?.state == .running {
                record?.state = .stopped
                record?.finished = context.clock.now().rfc3339
            }
            return record
        }
        say("a scrub is running on \(drive.pool); waiting for it to finish (ferry drive eject --now stops it)")
        let deadline = ContinuousClock.now + wait
        while status.state == .running {
            guard ContinuousClock.now < deadline else {
                try registry.update(guid: drive.guid) { $0.scrub = record }
                throw DriveError(
                    .scrubRunning, subject: drive.pool,
                    problem:
                        "is still being scrubbed after \(wait); nothing was exported. Wait longer, or eject with --now to stop the scrub")
            }
            try await Task.sleep(for: .seconds(1))
            status = try await scrubStatus(of: drive.pool)
        }
        return updated(record, with: status)
    }
}
