import Foundation
import Logging
import SystemPackage

/// Why `ferry receive` will not take a stream.
public struct ReceiveRefusal: FerryError {
    public var problem: String
    /// Whether the packet should stay queued at NNCP: true when a change of
    /// config could make it acceptable; false when the stream itself is bad
    /// and keeping it would only repeat this refusal on every toss.
    public var keepQueued: Bool

    public var description: String { "refused: " + problem }
    public var exitStatus: ExitStatus { keepQueued ? .failed : .done }
}

/// What one `ferry receive` did.
public struct ReceiveOutcome: Sendable, Equatable {
    public var stream: StoredStream
    /// The pools that received it in this run.
    public var receivedOn: [String]
    /// Whether it stays in the store for a drive that does not hold it yet.
    public var stored: Bool
}

/// `ferry receive HOST/DATASET`, the NNCP exec handler on backupsvr: checks
/// the sender, the name and the stream, stores the stream and receives it
/// on every enrolled drive that is here, then applies whatever waited for it.
public struct StreamReceiver: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    var logger: Logger { context.logger }

    /// Checks who may write `destination`: NNCP_SENDER is a node id, which
    /// must name a node in the NNCP config listed in `[receive].senders`,
    /// and the destination must lie under that node's prefix.
    public func authorize(destination: String, senderID: String?) throws(ReceiveRefusal) -> (sender: String, dataset: DatasetName) {
        guard let senderID, !senderID.isEmpty else {
            throw ReceiveRefusal(problem: "NNCP_SENDER is not set; ferry receive is run by nncp-toss as an exec handler", keepQueued: true)
        }
        guard let node = nncp.node(id: senderID), node.name != "self" else {
            throw ReceiveRefusal(problem: "sender \(printable(senderID)) is not a node in \(nncp.path)", keepQueued: true)
        }
        guard let prefixText = context.config.receive.senders[node.name] else {
            throw ReceiveRefusal(
                problem: "sender \(node.name) is not listed in [receive].senders of \(context.config.path)", keepQueued: true)
        }
        let dataset: DatasetName
        do {
            dataset = try DatasetName(destination)
        } catch {
            throw ReceiveRefusal(problem: "from \(node.name): \(error)", keepQueued: false)
        }
        guard let prefix = try? DatasetName(prefixText), dataset.isWithin(prefix) else {
            throw ReceiveRefusal(
                problem: "sender \(node.name) may write only under \(printable(prefixText)), not \(dataset)", keepQueued: true)
        }
        return (node.name, dataset)
    }

    /// Logs why a stream or part is not taken, after reading its input to
    /// the end, so that nncp-toss sees the packet taken.
    func refused(_ error: any Error, senderID: String?, destination: String, input: FileDescriptor, extra: Logger.Metadata = [:]) {
        let drained = StreamPump.drain(input)
        let meta: Logger.Metadata = [
            "sender": "\(printable(senderID ?? "-"))", "dataset": "\(printable(destination))", "bytes": "\(drained)",
        ]
        logger.error("\(error)", metadata: meta.merging(extra) { $1 })
        // The sender learns of it in its state message: a refusal is for a
        // laptop's owner to see, and not only in backupsvr's log.
        if let refusal = error as? ReceiveRefusal, let senderID, let node = nncp.node(id: senderID), node.name != "self" {
            do {
                try RefusalLog(stateDir: context.config.stateDir).record(
                    sender: node.name, destination: destination, reason: refusal.problem, at: context.clock.now())
            } catch {
                logger.warning("could not record the refusal for \(node.name): \(error)")
            }
        }
    }

    /// The stream's first record, read from `input`, and the header it
    /// holds; a refusal for what is not a stream ferry takes.
    static func readHeader(_ input: FileDescriptor) throws -> (header: StreamHeader, first: [UInt8]) {
        let first = try StreamPump.readPrefix(input, count: StreamHeader.recordSize)
        do {
            return (try StreamHeader(parsing: first), first)
        } catch {
            throw ReceiveRefusal(problem: "\(error)", keepQueued: false)
        }
    }

    /// The split stream `text` names (`--stream`), or a refusal of `sender`'s part.
    static func streamID(_ text: String, from sender: String) throws(ReceiveRefusal) -> StreamID {
        do {
            return try StreamID(text)
        } catch {
            throw ReceiveRefusal(problem: "from \(sender): \(error)", keepQueued: false)
        }
    }

    /// Receives the stream on `input`.
    public func receive(destination: String, senderID: String?, input: FileDescriptor = .standardInput) async throws -> ReceiveOutcome {
        try context.config.require(.backupsvr, for: "receive")
        let (sender, dataset): (String, DatasetName)
        let header: StreamHeader
        let first: [UInt8]
        do {
            (sender, dataset) = try authorize(destination: destination, senderID: senderID)
            (header, first) = try Self.readHeader(input)
        } catch {
            refused(error, senderID: senderID, destination: destination, input: input)
            throw error
        }
        let meta: Logger.Metadata = ["sender": "\(sender)", "dataset": "\(dataset)", "snapshot": "\(printable(header.snapshot))"]
        logger.info(
            header.isFull ? "receiving a full stream" : "receiving an incremental stream",
            metadata: meta.merging(["from-guid": "\(header.fromGUID)", "to-guid": "\(header.toGUID)"]) { $1 })

        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let store = try StreamStore(stateDir: context.config.stateDir)
        store.removeLeftovers()
        let id = StoredStream.id(for: header)
        var stream = StoredStream(
            id: id, sender: sender, dataset: dataset, header: header, bytes: 0, received: context.clock.now().rfc3339, applied: [])

        if store.contains(id) {
            let drained = StreamPump.drain(input)
            logger.info("this stream is in the store already; dropping the copy", metadata: meta.merging(["bytes": "\(drained)"]) { $1 })
            let existing = try store.streams().first { $0.id == id } ?? stream
            try await StoreApplier(context: context, store: store).applyPending()
            return ReceiveOutcome(stream: existing, receivedOn: [], stored: store.contains(id))
        }

        let enrolled = try context.drives.active()
        let present = try await StoreApplier.presentDrives(enrolled: enrolled, context: context)
        let pending = try store.streams()
        let options = await ReceiveOptions.probe(for: present, context: context)
        let applier = DriveApplier(runner: context.runner, options: options, logger: logger)
        var receivers:
            [(drive: PresentDrive, preparation: DriveApplier.Preparation, pipe: FileDescriptor, task: Task<CommandResult, Error>)] = []
        for drive in present {
            switch try await applier.readiness(of: header, for: dataset, on: drive, pending: pending) {
            case .holds:
                stream.applied.append(drive.drive.guid)
            case .ready:
                let target = drive.target(dataset)
                let preparation: DriveApplier.Preparation
                do {
                    preparation = try await applier.prepare(target, for: header, pool: drive.pool)
                } catch {
                    // A full drive cannot even take the datasets above the
                    // target: the stream waits in the store for it, and the
                    // other drives still get it.
                    logger.error("the stream cannot go onto \(drive.pool) now: \(error); it waits in the store", metadata: meta)
                    continue
                }
                let ends = try makePipe()
                let command = applier.receiveCommand(target)
                let runner = context.runner
                let task = Task { try await runner.run(command, inputFrom: ends.read) }
                receivers.append((drive, preparation, ends.write, task))
            case .waiting(let why):
                logger.info("the stream waits in the store for \(drive.pool): \(why)", metadata: meta)
            case .conflict(let why):
                logger.error("the stream cannot go onto \(drive.pool): \(why)", metadata: meta)
            }
        }

        // When every enrolled drive is here and takes the stream now, it goes
        // straight to them: stored or applied, either way. Should a receive
        // fail, ferry exits 1 and NNCP keeps the packet for the next toss.
        let direct = !enrolled.isEmpty && receivers.count + stream.applied.count == enrolled.count
        let file = direct ? nil : try store.create(id)
        let outcome = await StreamPump(input: input, store: file, sinks: receivers.map(\.pipe)).run(first: first)
        stream.bytes = outcome.bytes
        var received: [String] = []
        var failure: (any Error)?
        if let error = outcome.readError {
            failure = ZFSError(.input(error), problem: "cannot read the stream from standard input: \(error)")
        } else if let error = outcome.storeError {
            failure = ZFSError(.storeFile(error), problem: "cannot write the stream to \(store.path): \(error); the packet stays queued")
        } else if !header.isEnd(outcome.tail) {
            failure = ReceiveRefusal(
                problem: "\(StreamError.truncated(expectedEndOf: header.toName, bytes: outcome.bytes))", keepQueued: false)
        }
        for receiver in receivers {
            let target = receiver.drive.target(dataset)
            let result: CommandResult
            do {
                result = try await receiver.task.value
            } catch {
                result = CommandResult(status: .exited(-1), standardError: Array("\(error)".utf8))
            }
            let ok = result.status.succeeded && failure == nil
            try await applier.finish(target, preparation: receiver.preparation, received: result.status.succeeded)
            if ok {
                received.append(receiver.drive.pool)
                stream.applied.append(receiver.drive.drive.guid)
                try ReceivedDatasets(stateDir: context.config.stateDir).record(stream, pool: receiver.drive.pool, at: context.clock.now())
                logger.info("received", metadata: meta.merging(["pool": "\(receiver.drive.pool)", "bytes": "\(outcome.bytes)"]) { $1 })
            } else if failure == nil {
                logger.error(
                    "zfs receive into \(target) failed (\(result.status)): \(result.errorTail()); the stream stays in the store",
                    metadata: meta)
            }
        }
        if let failure {
            try? file?.close()
            store.discard(id)
            logger.error("\(failure)", metadata: meta.merging(["bytes": "\(outcome.bytes)"]) { $1 })
            throw failure
        }
        let everyDriveHolds = !enrolled.isEmpty && enrolled.allSatisfy { stream.applied.contains($0.guid) }
        if everyDriveHolds {
            try? file?.close()
            store.discard(id)
        } else if let file {
            try store.commit(stream, file: file)
            try? file.close()
            logger.info(
                "stored for the drives that do not hold it yet",
                metadata: meta.merging(["bytes": "\(outcome.bytes)", "store": "\(store.path)"]) { $1 })
        } else {
            let failure = ZFSError(
                .notKept,
                problem: "the stream was not received on every drive, and was not stored; the packet stays queued for the next toss")
            logger.error("\(failure)", metadata: meta)
            throw failure
        }
        for abandoned in (try? PartStore(store: store))?.dropAbandoned(by: stream) ?? [] {
            logger.info(
                "dropped the parts of an abandoned attempt at the same snapshot",
                metadata: meta.merging(["stream": "\(abandoned.stream)"]) { $1 })
        }
        if !received.isEmpty || everyDriveHolds {
            try await StoreApplier(context: context, store: store).applyPending(present: present, options: options)
        }
        if !received.isEmpty {
            await DriveDock(context: context).thinPresent(present)
        }
        return ReceiveOutcome(stream: stream, receivedOn: received, stored: !everyDriveHolds)
    }
}

extension StreamReceiver {
    /// Takes part `part` into the part store; a part the store refuses (a
    /// forged last part, another sender or dataset, a part cut short) is
    /// refused for good: logged, and its packet dropped.
    static func accept(
        part: Int, of stream: StreamID, into parts: PartStore, sender: String, senderID: String?, dataset: DatasetName,
        input: FileDescriptor, context: FerryContext, metadata: Logger.Metadata
    ) throws -> PartStore.Outcome {
        do {
            return try parts.accept(
                part: part, of: stream, sender: sender, senderID: senderID ?? "", dataset: dataset, input: input, now: context.clock.now())
        } catch let error as PartError {
            let refusal = ReceiveRefusal(problem: "\(error)", keepQueued: false)
            context.logger.error("\(refusal)", metadata: metadata)
            throw refusal
        }
    }

    /// Receives part `part` of the split stream `stream` (`ferry receive
    /// HOST/DATASET --stream ID --part N`). The checks of a whole stream come
    /// first; the part then waits in the store's `parts/` until its stream is
    /// complete and passes its check, and the stream joins the chain.
    /// Returns the stream once it is complete.
    @discardableResult
    public func receivePart(
        destination: String, senderID: String?, stream streamText: String, part: Int, input: FileDescriptor = .standardInput
    ) async throws -> StoredStream? {
        try context.config.require(.backupsvr, for: "receive")
        let (sender, dataset): (String, DatasetName)
        let stream: StreamID
        do {
            (sender, dataset) = try authorize(destination: destination, senderID: senderID)
            stream = try Self.streamID(streamText, from: sender)
        } catch {
            refused(error, senderID: senderID, destination: destination, input: input, extra: ["part": "\(part)"])
            throw error
        }
        var meta: Logger.Metadata = ["sender": "\(sender)", "dataset": "\(dataset)", "stream": "\(stream)", "part": "\(part)"]
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let store = try StreamStore(stateDir: context.config.stateDir)
        store.removeLeftovers()
        let parts = try PartStore(store: store)
        let outcome = try StreamReceiver.accept(
            part: part, of: stream, into: parts, sender: sender, senderID: senderID, dataset: dataset, input: input, context: context,
            metadata: meta)
        switch outcome {
        case .abandoned(let incoming):
            logger.info(
                "dropped: a part of an abandoned attempt at a snapshot already in the chain",
                metadata: meta.merging(["parts": "\(incoming.parts.count)"]) { $1 })
            return nil
        case .duplicate(let incoming):
            logger.info("this part is here already; dropping the copy", metadata: meta.merging(["parts": "\(incoming.parts.count)"]) { $1 })
            return nil
        case .stored(let incoming):
            meta["snapshot"] = "\(printable(incoming.header?.snapshot ?? "?"))"
            logger.info(
                "part stored; the stream waits for the rest",
                metadata: meta.merging([
                    "parts": "\(incoming.parts.count)", "of": "\(incoming.whole.map { String($0.parts) } ?? "?")",
                    "missing": "\(incoming.missing.map(String.init).joined(separator: ","))", "bytes": "\(incoming.bytes)",
                ]) { $1 })
            return nil
        case .complete(let incoming, let key):
            guard let header = incoming.header else { return nil }
            meta["snapshot"] = "\(printable(header.snapshot))"
            let stored = StoredStream(
                id: StoredStream.id(for: header), sender: sender, dataset: dataset, header: header, bytes: incoming.bytes,
                received: context.clock.now().rfc3339, applied: [])
            if try parts.join(key, as: stored, into: store) {
                logger.info(
                    "the stream is complete and passed its check; it joins the store",
                    metadata: meta.merging(["parts": "\(incoming.parts.count)", "bytes": "\(incoming.bytes)"]) { $1 })
            } else {
                logger.info("the stream is complete, and in the store already; dropping the copy", metadata: meta)
            }
            for abandoned in parts.dropAbandoned(by: stored) {
                logger.info(
                    "dropped the parts of an abandoned attempt at the same snapshot",
                    metadata: meta.merging(["stream": "\(abandoned.stream)", "parts": "\(abandoned.parts.count)"]) { $1 })
            }
            try await StoreApplier(context: context, store: store).applyPending()
            return stored
        }
    }
}
