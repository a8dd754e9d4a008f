import ArgumentParser
import FerryCore
import FerryDemo
import Foundation
import Logging
import Synchronization

@main
struct Ferry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Carries NNCP packets across an air gap on USB sticks, and keeps offline ZFS backup drives up to date.",
        subcommands: [
            Handle.self, Identify.self, Enroll.self, Drive.self, Status.self, Journal.self, Send.self, Queue.self, Receive.self,
            Restore.self, State.self, Verify.self, Toss.self, Init.self, Card.self, Pair.self, Doctor.self, Demo.self,
        ])
}

/// The options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The config file (default: $FERRY_CONFIG, else /etc/ferry/ferry.toml).")
    var config: String?

    @Flag(name: .shortAndLong, help: "Log each step in detail.")
    var verbose = false

    /// Sets up logging (to syslog too with `syslog`), reads the config and
    /// builds the context.
    func context(syslog: Bool = false, absolutePath: Bool = false) throws -> FerryContext {
        tuneMemoryAllocator()
        bootstrapLogging(syslog: syslog)
        let config = try FerryConfig.load(path: absolutePath ? absoluteConfigPath(config) : FerryConfig.resolvePath(option: config))
        try config.checkNNCPConfigExists()
        return FerryContext(config: config)
    }
}

extension GlobalOptions {
    /// The context of an NNCP exec handler; nil after the error line when
    /// the config is bad. The input is read to its end even then, so that
    /// nncp-toss does not see its packet taken only in part.
    func handlerContext() async throws -> FerryContext? {
        do {
            return try context(syslog: true)
        } catch {
            _ = StreamPump.drain(.standardInput)
            try await reportingErrors { throw error }
            return nil
        }
    }

    func bootstrapLogging(syslog: Bool = false) {
        let level: Logger.Level = verbose ? .debug : .info
        LoggingSystem.bootstrap { label -> any LogHandler in
            guard syslog else { return FerryLogHandler(label: label, level: level) }
            return MultiplexLogHandler([FerryLogHandler(label: label, level: level), SyslogLogHandler(label: label, level: level)])
        }
    }
}

/// Runs `body`, and turns a ferry error into one line on standard error and
/// the exit status the brief names.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as FerryError {
        FileHandle.standardError.write(Data("ferry: \(terminalLine("\(error)"))\n".utf8))
        throw ExitCode(error.exitStatus.rawValue)
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("ferry: \(terminalLine("\(error)"))\n".utf8))
        throw ExitCode(ExitStatus.failed.rawValue)
    }
}

/// Prints one line of text with every control character escaped: the
/// line may carry names and times from a stick, a peer or a pool.
func say(_ line: String) {
    print(terminalLine(line))
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct Handle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Handle a plugged-in medium (what ferry@.service runs).",
        discussion:
            "Exit status: 0 done and safe to remove, 2 medium not ours (left alone), 3 pulled out or stopped mid-visit (nothing is lost), 1 failed."
    )

    @OptionGroup var options: GlobalOptions
    @Argument(help: "The device node, for example /dev/sdb1.") var devnode: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            try await stoppingOnSignals {
                _ = try await Handler(context: context).handle(devnode: devnode)
            }
            context.logger.debug("done", metadata: ["peak-rss-kib": "\(peakResidentKiB())"])
        }
    }
}

struct Toss: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply what arrived: nncp-toss under the spool lock (what ferry-toss.service runs).")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            let nncp = try await context.nncpConfig()
            try await stoppingOnSignals {
                let report = try await TossRun(context: context, nncp: nncp).run()
                if !report.succeeded { throw ExitCode(ExitStatus.failed.rawValue) }
            }
        }
    }
}

/// A run that SIGTERM or SIGINT cut short, whatever error the cut caused on
/// its way out. It exits 3 (interrupted), which ferry@.service counts as
/// success: a stick pulled mid-visit (BindsTo= stops the unit) must not leave
/// ferry@sdX1.service failed and the system degraded.
struct StoppedBySignal: FerryError {
    var underlying: String

    var exitStatus: ExitStatus { .interrupted }
    var description: String { underlying }
}

/// Runs `body` in a task that SIGTERM and SIGINT cancel: systemd sends
/// SIGTERM when the stick is pulled. Cancelling stops the running NNCP
/// command (SIGTERM, then SIGKILL), and the mount is undone on the way out.
func stoppingOnSignals(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let stopped = Mutex(false)
    let sources = [SIGTERM, SIGINT].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler {
            stopped.withLock { $0 = true }
            task.cancel()
        }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    do {
        try await task.value
    } catch {
        guard stopped.withLock({ $0 }) else { throw error }
        throw (error as? FerryError)?.exitStatus == .interrupted ? error : StoppedBySignal(underlying: "interrupted: \(error)")
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Laptop: snapshot datasets and queue their streams for backupsvr (nncp-exec).",
        discussion: "With no DATASET, sends [send].datasets. Children are included unless ferry:exclude=on.")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "Datasets to send, with their children.") var datasets: [String] = []

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let nncp = try await context.nncpConfig()
            try await stoppingOnSignals {
                let results = try await SnapshotSender(context: context, nncp: nncp).send(datasets)
                for result in results {
                    say(
                        "\(result.dataset): " + (result.queued.isEmpty ? "nothing new" : "queued \(result.queued.joined(separator: ", "))"))
                }
            }
        }
    }
}

struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Laptop: queue the ZFS stream on standard input for backupsvr (simplesnap's --receivecmd).")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "STORE/HOST/DATASET from simplesnap; [send].simplesnap-store is stripped.") var destination: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let nncp = try await context.nncpConfig()
            try await StreamQueue(context: context, nncp: nncp).queue(destination)
        }
    }
}

struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The NNCP exec handler: on backupsvr zfsreceive, a laptop's stream; on a laptop zfsrestore, a restore from backupsvr (under [restore] into).",
        discussion: """
            Exit status 0: the stream is stored or applied (or refused for good, and logged), so nncp-toss may drop it. \
            1: keep the packet queued (a sender not allowed by the config, or a fault here).
            """)

    @OptionGroup var options: GlobalOptions
    @Argument(help: "HOST/DATASET, under the sender's prefix in [receive].senders.") var destination: String
    @Option(help: "The split stream this part belongs to (32 hex digits); with --part.") var stream: String?
    @Option(help: "The part's number, from 1; with --stream.") var part: Int?

    func validate() throws {
        guard (stream == nil) == (part == nil) else { throw ValidationError("--stream and --part go together") }
    }

    func run() async throws {
        guard let context = try await options.handlerContext() else { return }
        do {
            let nncp = try await context.nncpConfig()
            try await stoppingOnSignals {
                let sender = ProcessInfo.processInfo.environment["NNCP_SENDER"]
                if context.config.role == .laptop {
                    let restores = RestoreReceiver(context: context, nncp: nncp)
                    if let stream, let part {
                        try await restores.receivePart(destination: destination, senderID: sender, stream: stream, part: part)
                    } else {
                        try await restores.receive(destination: destination, senderID: sender)
                    }
                    return
                }
                let receiver = StreamReceiver(context: context, nncp: nncp)
                if let stream, let part {
                    try await receiver.receivePart(destination: destination, senderID: sender, stream: stream, part: part)
                    context.logger.debug("done", metadata: ["part": "\(part)", "peak-rss-kib": "\(peakResidentKiB())"])
                } else {
                    let outcome = try await receiver.receive(destination: destination, senderID: sender)
                    context.logger.debug("done", metadata: ["stored": "\(outcome.stored)", "peak-rss-kib": "\(peakResidentKiB())"])
                }
            }
        } catch let refusal as ReceiveRefusal {
            // Logged already, with the sender and the dataset.
            throw ExitCode(refusal.exitStatus.rawValue)
        } catch {
            try await reportingErrors { throw error }
        }
    }
}

struct State: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The NNCP exec handler ferrystate: backupsvr's state and verify requests on a laptop, verify results on backupsvr.",
        discussion: """
            A laptop takes messages from [send].backupsvr only; backupsvr takes verify results from its [receive].senders only. \
            Exit status 0: the message is taken, or refused for good (one line on standard error, and logged), so that nncp-toss drops it \
            rather than retry a forged or malformed message on every toss. 1: a fault here (state-dir not writable); the packet stays queued.
            """)

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        guard let context = try await options.handlerContext() else { return }
        try await reportingErrors {
            let nncp = try await context.nncpConfig()
            do {
                let line = try await StateHandler(context: context, nncp: nncp).handle(
                    senderID: ProcessInfo.processInfo.environment["NNCP_SENDER"])
                say(line)
            } catch let refusal as StateMessageError where !refusal.keepQueued {
                FileHandle.standardError.write(Data("ferry: \(terminalLine("\(refusal)"))\n".utf8))
            }
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Backupsvr: the restore drill; the newest snapshot on a drive in the dock, compared on the laptop.",
        discussion: """
            Makes a manifest of the snapshot through a read-only clone (path, type, size, mode, SHA-256, link targets) and queues it \
            for the laptop's ferrystate handle. The laptop compares it with its own snapshot and sends the result back; \
            ferry status shows it when it has arrived.
            """)

    @OptionGroup var options: GlobalOptions
    @Argument(help: "HOST/DATASET, as backupsvr names it.") var destination: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let nncp = try await context.nncpConfig()
            let requested = try await VerifyDrill(context: context, nncp: nncp).request(destination)
            say(
                "\(requested.manifest.dataset)@\(requested.manifest.snapshot) on \(requested.pool): \(requested.manifest.entries.count) entries, \(humanSize(requested.manifest.fileBytes)) of files"
            )
            say(
                "the manifest (\(humanSize(UInt64(requested.bytes)))) is queued for \(requested.laptop); its answer comes back with the sticks, and ferry status shows it"
            )
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Backupsvr: send a snapshot from a present drive back to the laptop that sent it, over NNCP.",
        discussion: """
            Without @SNAP, the newest snapshot on the drives in the dock. A full stream, or with --from the increment from a snapshot \
            the laptop still has. Above [send] chunk-size it crosses in parts. The laptop receives it under [restore] into, unmounted.
            """)

    @OptionGroup var options: GlobalOptions
    @Option(help: "A snapshot of the dataset the laptop still has: send only the increment from it.") var from: String?
    @Argument(help: "HOST/DATASET, or HOST/DATASET@SNAP.") var snapshot: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let (dataset, name) = try SnapshotName.parse(snapshot)
            if let from { _ = try SnapshotName.parse("\(dataset)@\(from)") }
            let queued = try await RestoreSender(context: context, nncp: try await context.nncpConfig()).restore(
                dataset, snapshot: name, from: from)
            say(
                "\(queued.snapshot) from \(queued.pool) is queued for \(queued.node)"
                    + (queued.base.map { " (the increment from @\($0))" } ?? " (a full stream)")
                    + "; it goes with the next stick to the spooler")
        }
    }
}

struct Identify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a device is: filesystem, hardware, and the verdict stick, drive or unknown.")

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "The device node.") var devnode: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            let recognition = try await MediumRecognizer(context: context).recognize(devnode: devnode)
            if json {
                try printJSON(recognition)
            } else {
                print(IdentifyReport(recognition).text)
            }
        }
    }
}

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a stick known: write a signed .ferry/identity on it (spooler or backupsvr).")

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Replace an identity that does not verify.") var force = false
    @Argument(help: "The stick's device node.") var devnode: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            switch try await StickEnrolment(context: context).enroll(devnode: devnode, force: force) {
            case .enrolled(let identity):
                say(
                    "enrolled \(devnode): filesystem \(identity.uuid), label \(printable(identity.label)), signed by \(identity.enrollerName)"
                )
            case .alreadyEnrolled(let identity, let by):
                say("\(devnode) is already enrolled (by \(by) at \(identity.enrolled)); nothing changed")
            }
        }
    }
}

struct Drive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Backup drives on backupsvr.",
        subcommands: [
            DriveEnroll.self, DriveList.self, DriveEject.self, DriveSeed.self, DriveRetire.self, DriveThin.self, DriveScrub.self,
            DriveMount.self, DriveUnmount.self,
        ])
}

struct DriveEnroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll", abstract: "Make a backup drive known, by pool name or device node.")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "A pool name, or the device node of a drive that holds one pool.") var target: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            let (drive, new) = try await DriveEnrolment(context: context).enroll(target)
            say(
                new
                    ? "enrolled backup drive \(drive.pool) (GUID \(drive.guid))"
                    : "\(drive.pool) (GUID \(drive.guid)) was already enrolled; nothing changed")
        }
    }
}

struct DriveList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the enrolled backup drives.")

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            try context.config.require(.backupsvr, for: "drive list")
            let state = try await DriveDock(context: context).backupsvrState()
            if json {
                try printJSON(state.drives)
            } else if state.drives.isEmpty {
                say("no backup drives are enrolled (ferry drive enroll POOL|DEVNODE)")
            } else {
                for drive in state.drives { print(terminalText(StatusText.lines(drive))) }
                for warning in state.warnings { say("! \(warning)") }
            }
        }
    }
}

struct DriveEject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eject", abstract: "Export a drive's pool so that it can go offsite, and record what it holds.",
        discussion:
            "Waits for a running receive, catch-up or scrub, up to --wait seconds, then refuses; --now stops a running scrub instead.")

    @OptionGroup var options: GlobalOptions
    @Option(help: "How long to wait for running work, in seconds.") var wait = 600
    @Flag(help: "Stop a running scrub instead of waiting for it.") var now = false
    @Argument(help: "The pool name of the drive.") var pool: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let eject = try await DriveDock(context: context).eject(
                pool, wait: .seconds(max(0, wait)), stopScrub: now, onScrub: { say($0) })
            let datasets = eject.drive.datasets ?? []
            say("\(pool) is exported; it holds \(datasets.count) dataset(s):")
            for dataset in datasets { say("  \(dataset.dataset)@\(dataset.snapshot)") }
            if eject.kept.packets > 0 {
                say(
                    "\(eject.kept.packets) stream(s) (\(humanSize(eject.kept.bytes))) went into the store for the drives away, which could have caught up from \(pool)."
                )
            }
            if eject.behind.packets > 0 {
                say("\(eject.behind.packets) stream(s) (\(humanSize(eject.behind.bytes))) wait in the store for its return.")
            }
            say("\(pool) is safe to remove; take it offsite.")
        }
    }
}

struct DriveSeed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed", abstract: "Fill a new, empty drive from a drive that is present (local zfs send | zfs receive).")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "The new drive's pool name (enrolled, imported, empty).") var new: String
    @Option(help: "The pool name of a present drive to copy from.") var from: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let seed = try await DriveDock(context: context).seed(new, from: from)
            say(
                "\(new) is seeded from \(from): \(seed.datasets) dataset(s), \(seed.snapshots) snapshot(s); then \(seed.outcome.applied) stream(s) from the store"
            )
            for failure in seed.outcome.failures { say("! \(failure)") }
            if !seed.outcome.failures.isEmpty { throw ExitCode(ExitStatus.failed.rawValue) }
        }
    }
}

struct DriveRetire: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retire", abstract: "Stop sending streams to a drive, and free what only it was waiting for.")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "The pool name of the drive.") var pool: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let released = try await DriveDock(context: context).retire(pool)
            say("\(pool) is retired; the store let go of \(released.packets) stream(s), \(humanSize(released.bytes))")
        }
    }
}

struct DriveThin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "thin", abstract: "Apply [retention] to a present drive now.",
        discussion:
            "Never destroys a dataset's newest snapshot, another drive's catch-up base, a held snapshot, a clone's origin, or a snapshot ferry did not receive."
    )

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Say what would be destroyed, and destroy nothing.") var dryRun = false
    @Argument(help: "The pool name of the drive.") var pool: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: !dryRun)
            let outcome = try await DriveDock(context: context).thin(pool, dryRun: dryRun)
            for name in outcome.destroyed { say("\(dryRun ? "would destroy" : "destroyed") \(pool)/\(printable(name))") }
            for failure in outcome.failures { say("! \(failure)") }
            say(
                "\(pool): \(outcome.destroyed.count) snapshot(s) \(dryRun ? "would be destroyed" : "destroyed"), \(outcome.kept) kept")
            if !outcome.failures.isEmpty { throw ExitCode(ExitStatus.failed.rawValue) }
        }
    }
}

struct DriveScrub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scrub", abstract: "Start a scrub of a present drive now.")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "The pool name of the drive.") var pool: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let scrub = try await DriveDock(context: context).scrub(pool)
            if scrub?.state == .running {
                say("\(pool) is being scrubbed (started \(scrub?.started ?? "earlier")); ferry drive list shows the result")
            } else {
                say("! zpool scrub \(pool) did not start; see the log")
                throw ExitCode(ExitStatus.failed.rawValue)
            }
        }
    }
}

struct DriveMount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount", abstract: "Show a snapshot on a present drive read-only at a directory, through a clone.",
        discussion:
            "Without @SNAP, the newest snapshot on that drive. DIR is made when missing and must be empty. ferry drive unmount DIR undoes it; ferry drive eject refuses while a drive has a snapshot mounted."
    )

    @OptionGroup var options: GlobalOptions
    @Argument(help: "The pool name of the drive.") var pool: String
    @Argument(help: "HOST/DATASET, or HOST/DATASET@SNAP.") var snapshot: String
    @Argument(help: "The directory to show it at (absolute).") var directory: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let (dataset, name) = try SnapshotName.parse(snapshot)
            let mount = try await SnapshotMounter(context: context).mount(pool: pool, dataset: dataset, snapshot: name, at: directory)
            say("\(mount.origin) is mounted read-only at \(mount.directory); ferry drive unmount \(mount.directory) when done")
        }
    }
}

struct DriveUnmount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount", abstract: "Undo ferry drive mount: unmount the snapshot at DIR and destroy its clone.",
        discussion: "Refuses any directory that is not a snapshot mount of ferry's.")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "The directory given to ferry drive mount.") var directory: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(syslog: true)
            let mount = try await SnapshotMounter(context: context).unmount(directory)
            say("\(mount.origin) is unmounted from \(mount.directory), and its clone \(mount.clone) destroyed")
        }
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tell the whole story on this one machine, in a scratch directory (needs root).")

    @Flag(name: .shortAndLong, help: "Log each step in detail.") var verbose = false
    @Flag(help: "Keep the scratch directory afterwards.") var keep = false

    func run() async throws {
        try await reportingErrors {
            LoggingSystem.bootstrap { FerryLogHandler(label: $0, level: verbose ? .debug : .warning) }
            try await DemoStory(keepScratch: keep).run()
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "This host's queue, sticks, the peer's last verified state, and warnings.")

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print JSON (stable; see README.md).") var json = false

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            let report = try await StatusReader(context: context, nncp: try await context.nncpConfig()).report()
            if json { try printJSON(report) } else { print(StatusText(report).text) }
            context.logger.debug("done", metadata: ["peak-rss-kib": "\(peakResidentKiB())"])
        }
    }
}

struct Journal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show and verify a stick's journal, from a mounted stick's path or its device node.",
        discussion: "With --verify the exit status is 0 only when every record verifies; the first bad one is named.")

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print JSON Lines.") var json = false
    @Flag(help: "Exit 0 only when every record verifies.") var verify = false
    @Argument(help: "A stick's mount point, its .ferry directory, its journal file, or its device node.") var target: String

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            let journal = try await JournalCommand(context: context).read(target)
            if json {
                for line in try journal.jsonLines() { print(line) }
            } else {
                print(JournalCommand.table(journal))
            }
            if verify, let first = journal.problems.first {
                FileHandle.standardError.write(Data("ferry: the journal does not verify: \(terminalLine("\(first)"))\n".utf8))
                throw ExitCode(ExitStatus.failed.rawValue)
            }
        }
    }
}
