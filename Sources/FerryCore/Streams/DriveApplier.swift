import Logging

/// An enrolled drive whose pool is imported now.
public struct PresentDrive: Sendable, Equatable {
    public var drive: EnrolledDrive
    public var pool: String { drive.pool }

    /// Where `dataset` (`HOST/DATASET`) lives on this drive.
    public func target(_ dataset: DatasetName) -> String { dataset.under(pool) }
}

/// Where one stream stands with one drive.
public enum Readiness: Sendable, Equatable {
    /// The drive holds the stream's snapshot already.
    case holds
    /// The stream can be received now.
    case ready
    /// The stream waits in the store for something to arrive first.
    case waiting(String)
    /// The stream can never go onto this drive as things are: an admin must look.
    case conflict(String)
}

/// The options `zfs receive` is run with, and what is set on the dataset
/// after each receive.
public struct ReceiveOptions: Sendable {
    public var arguments: [String]
    /// Set on every received dataset right after its receive, whatever the
    /// options did: a dataset left writable diverges once it is mounted.
    public var setAfter: [(String, String)]

    static let safety = [("readonly", "on"), ("canmount", "noauto")]

    public init(configured: [String]) {
        arguments = configured
        setAfter = Self.safety
    }

    /// For a `zfs receive` without `-o` (zfs-fuse): the `-o` settings move
    /// to `zfs set` after the receive.
    public func withoutPropertyOptions() -> ReceiveOptions {
        var copy = self
        copy.arguments = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            if arguments[index] == "-o", index + 1 < arguments.endIndex {
                let pair = arguments[index + 1].split(separator: "=", maxSplits: 1)
                if pair.count == 2, !copy.setAfter.contains(where: { $0.0 == pair[0] }) {
                    copy.setAfter.insert((String(pair[0]), String(pair[1])), at: 0)
                }
                index += 2
            } else {
                copy.arguments.append(arguments[index])
                index += 1
            }
        }
        return copy
    }

    /// The options this host's zfs understands for receiving onto `drives`:
    /// the configured ones, or, where zfs says it does not know `-o`, the
    /// same without it. With no drive here there is nothing to ask.
    public static func probe(for drives: [PresentDrive], context: FerryContext) async -> ReceiveOptions {
        let configured = context.config.receive.zfsReceiveOptions
        let options = ReceiveOptions(configured: configured)
        guard configured.contains("-o"), let pool = drives.first?.pool else { return options }
        let result = try? await context.runner.run(Zfs.probeReceive(options: configured, target: pool + "/ferry-probe"), input: [])
        let error = result.map { String(decoding: $0.standardError, as: UTF8.self) } ?? ""
        guard error.contains("invalid option") else { return options }
        let fallback = options.withoutPropertyOptions()
        context.logger.debug(
            "this zfs receive does not know -o; setting the properties after each receive instead",
            metadata: ["options": "\(fallback.arguments.joined(separator: " "))"])
        return fallback
    }
}

/// Receives streams onto one drive: decides whether a stream fits the
/// drive's chain, makes the datasets above it, clears what an interrupted
/// receive left, and makes what it received read-only and unmountable.
public struct DriveApplier: Sendable {
    /// Marks the empty, never-mounted datasets ferry makes above received ones.
    public static let containerProperty = "ferry:container"

    public var runner: any CommandRunner
    public var options: ReceiveOptions
    public var logger: Logger

    public init(runner: any CommandRunner, options: ReceiveOptions, logger: Logger) {
        self.runner = runner
        self.options = options
        self.logger = logger
    }

    var inventory: ZFSInventory { ZFSInventory(runner: runner) }

    /// Whether `header`'s stream for `dataset` can go onto `drive` now.
    /// `pending` are the streams waiting in the store: a full stream waits
    /// for a waiting full stream of a dataset above it.
    public func readiness(
        of header: StreamHeader, for dataset: DatasetName, on drive: PresentDrive, pending: [StoredStream]
    ) async throws -> Readiness {
        let target = drive.target(dataset)
        let snapshots = try await inventory.snapshots(of: target)
        if let snapshots, snapshots.contains(where: { $0.guid == header.toGUID }) { return .holds }
        if header.isFull {
            if let snapshots, !snapshots.isEmpty {
                return .conflict("\(target) exists with snapshots already; a full stream can go there only with -F, which ferry never uses")
            }
            var ancestor = dataset.parent
            while let above = ancestor {
                if pending.contains(where: { $0.header.isFull && $0.dataset == above }),
                    try await inventory.snapshots(of: drive.target(above))?.isEmpty ?? true
                {
                    return .waiting("the full stream of \(above) goes first")
                }
                ancestor = above.parent
            }
            return .ready
        }
        guard let snapshots else { return .waiting("\(target) does not exist yet") }
        guard snapshots.contains(where: { $0.guid == header.fromGUID }) else {
            return .waiting("its base snapshot (GUID \(header.fromGUID)) has not arrived")
        }
        guard snapshots.last?.guid == header.fromGUID else {
            return .conflict(
                "\(target) has snapshots newer than this stream's base (GUID \(header.fromGUID)); it was sent from an older snapshot")
        }
        return .ready
    }

    /// What `prepare` changed, for `finish` to complete or undo.
    public struct Preparation: Sendable {
        /// An empty container that stood where a full stream goes, moved aside.
        var adoptedContainer: String?
        /// The containers made above the target, removed again if the receive fails.
        var madeContainers: [String] = []
    }

    /// Makes `target` ready for `header`'s stream: the datasets above it,
    /// no leftovers of an interrupted receive, a container moved aside.
    /// `cleanSince`: a receive into `target` has just succeeded, so there is
    /// no leftover to look for.
    public func prepare(_ target: String, for header: StreamHeader, pool: String, cleanSince: Bool = false) async throws -> Preparation {
        var preparation = Preparation()
        let leftover = target + "/%recv"
        if !cleanSince, try await inventory.exists(leftover) {
            logger.warning("clearing what an interrupted receive left", metadata: ["dataset": "\(leftover)"])
            try await runner.check(Zfs.destroyEmpty(leftover))
        }
        guard header.isFull else { return preparation }
        preparation.madeContainers = try await makeContainers(above: target, pool: pool)
        guard try await inventory.exists(target) else { return preparation }
        // The target exists with no snapshot: a container ferry made for a
        // child that arrived first, or a full receive cut short.
        let container = try await inventory.properties([Self.containerProperty], of: [target]).first { $0.source == "local" }
        if container?.value == "on" {
            let aside = target + "-ferry-" + Hex.encode(header.toGUID)
            try await runner.check(Zfs.rename(target, to: aside))
            preparation.adoptedContainer = aside
        } else if try await inventory.datasets(under: target).count == 1 {
            logger.warning("clearing an empty dataset an interrupted receive left", metadata: ["dataset": "\(target)"])
            try await runner.check(Zfs.destroyEmpty(target))
        } else {
            throw ZFSError(
                .notOurs, problem: "\(target) exists with datasets under it and no snapshot; ferry did not make it and leaves it alone")
        }
        return preparation
    }

    /// After the receive: makes the dataset safe, and moves the children of
    /// an adopted container under it; undoes `prepare` on failure.
    public func finish(_ target: String, preparation: Preparation, received: Bool) async throws {
        if let aside = preparation.adoptedContainer {
            if received {
                for child in try await inventory.datasets(under: aside).dropFirst()
                where child.dropFirst(aside.count + 1).contains("/") == false {
                    try await runner.check(Zfs.rename(child, to: target + child.dropFirst(aside.count)))
                }
                try await runner.check(Zfs.destroyEmpty(aside))
            } else {
                try await runner.check(Zfs.rename(aside, to: target))
            }
        }
        guard received else {
            for container in preparation.madeContainers.reversed() {
                try await runner.check(Zfs.destroyEmpty(container))
            }
            return
        }
        // Each `zfs set` waits for a transaction group; after an
        // incremental the values are usually set already.
        let current = try await inventory.properties(options.setAfter.map(\.0), of: [target])
        for (property, value) in options.setAfter
        where !current.contains(where: { $0.property == property && $0.value == value && $0.source == "local" }) {
            try await runner.check(Zfs.set(property, value, on: target))
        }
    }

    /// The empty datasets above `target`, up to the pool, that do not exist yet.
    func makeContainers(above target: String, pool: String) async throws -> [String] {
        var missing: [String] = []
        var current = target
        while let slash = current.lastIndex(of: "/") {
            current = String(current[..<slash])
            if current == pool { break }
            if try await inventory.exists(current) { break }
            missing.insert(current, at: 0)
        }
        for dataset in missing {
            try await runner.check(Zfs.createContainer(dataset))
        }
        return missing
    }

    public func receiveCommand(_ target: String) -> Command {
        Zfs.receive(into: target, options: options.arguments)
    }
}
