import Foundation
import Logging

/// One visit of an enrolled stick: the NNCP exchange for this host's role
/// (DESIGN.md section 2), ending with the stick unmounted and safe to remove.
///
/// At the spooler: rx, toss, then tx, keeping the copies. At backupsvr: rx,
/// ack, tx, rm of what went onto the stick; then, with the stick already
/// out, the long toss that runs the exec handlers. rx is NNCP's own
/// (nncp-xfer -rx checks every packet); tx is ferry's copy in nncp-xfer's
/// layout, synced once.
public struct StickVisit: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    private var config: FerryConfig { context.config }
    private var progress: VisitProgress { VisitProgress(logger: context.logger) }

    /// What a visit did, and what it leaves for after "safe to remove".
    public struct Outcome: Sendable {
        public var report: VisitReport
        public var peer: NNCPNode
        /// backupsvr's spool copies of the packets now on the stick, which
        /// `dropCopies` removes once the stick is out.
        public var copiesOnStick: [QueuedPacket] = []
    }

    /// Runs the exchange on the stick mounted read-write at `root`, whose
    /// identity was verified on this same mount. The caller holds the spool
    /// lock, and unmounts afterwards. `filesystem` is the stick's, as blkid
    /// reports it: it says whether files need chown and how large one may be.
    public func exchange(root: SafeDirectory, identity: StickIdentity, filesystem: StickFilesystem) async throws -> Outcome {
        let peerName = try config.requirePeer()
        guard let peer = nncp.node(named: peerName), peer.id != nncp.selfID else {
            throw ExchangeError(
                step: "setup", problem: "peer \(printable(peerName)) (peer in \(config.path)) is not a neighbour in \(nncp.path)")
        }
        var report = VisitReport(
            role: config.role.rawValue, node: nncp.selfName, peer: peer.name,
            stick: "\(identity.label) \(identity.uuid)", started: context.clock.now().rfc3339)
        var damaged: String?
        var copiesOnStick: [QueuedPacket] = []
        report.lastToss = StateFile<TossReport>(TossRun.reportFile, stateDir: config.stateDir).load { damaged = $0 }
        if let damaged { warn(damaged, &report) }
        do {
            try Spool(path: nncp.spool).prepare(owner: config.nncpUser)
            // On vfat and exfat the mount already makes nncp-user the owner.
            let owner = config.nncpUser.isEmpty || !filesystem.keepsOwners ? nil : Account(name: config.nncpUser)
            var backupsvrState: BackupsvrState?
            copiesOnStick = try await exchange(
                root: root, peer: peer, owner: owner, filesystem: filesystem, backupsvrState: &backupsvrState, report: &report)
            let space = try root.space()
            (report.stickFree, report.stickTotal) = (space.free, space.total)
            if config.role == .backupsvr {
                // Read once a visit: the laptops' state messages were made
                // from it before tx, and tx changes nothing it holds.
                let state: BackupsvrState
                if let backupsvrState {
                    state = backupsvrState
                } else {
                    state = try await DriveDock(context: context).backupsvrState()
                }
                report.drives = state.drives
                report.warnings += state.warnings
                report.receiveBacklog = Spool(path: nncp.spool).receiveBacklog()
                report.datasets = state.datasets
                report.streamStore = state.streamStore
                report.incompleteStreams = state.incompleteStreams
                report.verified = state.verified
                report.refused = state.refused
            }
            report.finished = context.clock.now().rfc3339
            let journal = VisitJournal(context: context, nncp: nncp)
            progress.step("reading the journal")
            let verified = try journal.readPeer(root: root, peer: peer, report: &report)
            try Task.checkCancellation()
            journal.append(root: root, report: &report, verified: verified)
            try KnownSticks(stateDir: config.stateDir).saw(identity: identity, report: report)
            progress.step("syncing the stick")
            try await syncStick(root)
        } catch let error as StickUnusableError where !Task.isCancelled {
            await recordUnusable(error, root: root, peer: peer, report: &report)
            throw error
        } catch {
            // Whatever a cancelled visit was doing failed because of the
            // SIGTERM: say that, not how the step broke.
            if Task.isCancelled || error is CancellationError { throw ExchangeError.interrupted }
            if let error = error as? CommandError, error.code == .cancelled { throw ExchangeError.interrupted }
            throw error
        }
        try StateFile(VisitReport.fileName, stateDir: config.stateDir).write(report)
        return Outcome(report: report, peer: peer, copiesOnStick: copiesOnStick)
    }

    /// backupsvr keeps nothing it has put on the stick: nothing acknowledges
    /// an ACK, and that is what it mostly sends. The copies go once the
    /// stick, synced and unmounted, is out of the user's hands, so that
    /// nncp-rm is not part of the wait. The journal on the stick counted
    /// them as gone already; where nncp-rm fails they are sent again on the
    /// next trip (the peer drops what it has seen), and the last visit here
    /// says so.
    public func dropCopies(_ outcome: Outcome) async {
        guard !outcome.copiesOnStick.isEmpty else { return }
        let peer = outcome.peer
        // NODE/PACKET lines, written as bytes: 10,000 of them are a megabyte.
        var list: [UInt8] = []
        list.reserveCapacity(outcome.copiesOnStick.count * (peer.id.utf8.count + 54))
        for name in outcome.copiesOnStick.map(\.name).sorted() {
            list += peer.id.utf8
            list.append(UInt8(ascii: "/"))
            list += name.utf8
            list.append(UInt8(ascii: "\n"))
        }
        var report = outcome.report
        do {
            let result = try await nncpCommand(
                "nncp-rm", NNCP.removePackets(config: nncp.path, node: peer.name, timeout: config.exchange.commandTimeout),
                input: list)
            guard !result.status.succeeded else { return }
            warn("nncp-rm failed (\(result.status)): \(result.errorTail()); what went onto the stick is sent again next trip", &report)
        } catch {
            warn("nncp-rm could not run (\(error)); what went onto the stick is sent again next trip", &report)
        }
        let kept = PacketCount(outcome.copiesOnStick)
        report.pendingForPeer = PacketCount(
            packets: report.pendingForPeer.packets + kept.packets, bytes: report.pendingForPeer.bytes + kept.bytes)
        do {
            try StateFile(VisitReport.fileName, stateDir: config.stateDir).write(report)
        } catch {
            context.logger.warning("\(error)")
        }
    }

    /// A stick that is ours but cannot be used: what the peer last wrote is
    /// still read, and the failure goes into the journal (and this host's
    /// last visit), so that the other host learns why the stick is
    /// unusable. All of it is best effort: the visit has failed already.
    private func recordUnusable(_ error: StickUnusableError, root: SafeDirectory, peer: NNCPNode, report: inout VisitReport) async {
        report.failure = "\(error.underlying)"
        report.finished = context.clock.now().rfc3339
        let journal = VisitJournal(context: context, nncp: nncp)
        let verified = try? journal.readPeer(root: root, peer: peer, report: &report)
        journal.append(
            root: root, event: "unusable", data: StickUnusableRecord(stick: report.stick, problem: "\(error.underlying)"),
            report: &report, verified: verified)
        try? await syncStick(root)
        do {
            try StateFile(VisitReport.fileName, stateDir: config.stateDir).write(report)
        } catch {
            context.logger.warning("\(error)")
        }
    }

    /// syncfs, waited for only until a SIGTERM. `FERRY_TEST_SYNC_DELAY`
    /// (seconds) makes it slow, as a stick being pulled makes it, so that
    /// the tests can land a SIGTERM inside it.
    private func syncStick(_ root: SafeDirectory) async throws {
        let delay = ProcessInfo.processInfo.environment["FERRY_TEST_SYNC_DELAY"].flatMap(UInt32.init) ?? 0
        try await cancellablyBlocking {
            if delay > 0 { sleep(delay) }
            try root.syncFilesystem()
        }
        try Task.checkCancellation()
    }

    /// Says that the unmounted stick may go, and runs notify-command.
    public func released(device: BlockDevice, report: VisitReport) async {
        progress.step(
            "safe to remove",
            ["device": "\(device.devnode)", "received": "\(report.received.packets)", "sent": "\(report.sent.packets)"])
        await notifySafeToRemove(device: device)
    }

    /// Returns backupsvr's spool copies of what is now on the stick.
    private func exchange(
        root: SafeDirectory, peer: NNCPNode, owner: Account?, filesystem: StickFilesystem,
        backupsvrState: inout BackupsvrState?, report: inout VisitReport
    ) async throws -> [QueuedPacket] {
        var found: StickPackets
        let nncpDirectory: SafeDirectory
        do {
            (found, nncpDirectory) = try StickPackets.prepare(root: root, selfID: nncp.selfID, peerID: peer.id, owner: owner)
        } catch let error as FileAccessError {
            throw StickUnusableError(underlying: error)
        }
        report.removed = found.removed
        for entry in found.removed {
            warn("removed \(entry) from the stick: ferry follows no link and keeps no leftovers", &report)
        }
        for entry in found.ignored {
            warn("\(entry) on the stick is a directory that is not NNCP's; left as it is, nncp-xfer does not enter it", &report)
        }
        for (recipient, count) in found.foreign {
            let name = nncp.node(id: recipient)?.name ?? recipient
            report.foreign[name] = count
            warn("\(count) packet(s) on the stick are for \(name), not for this node; they stay on the stick", &report)
        }
        let stickPath = root.realPath + "/nncp"
        // nncp-xfer -rx drops these from the stick: a packet whose ACK was
        // lost, sent again by the peer, which still keeps its copy.
        let spool = Spool(path: nncp.spool)
        let seenBefore = (found.incoming[peer.id] ?? [:]).keys.filter { spool.hasSeen($0, from: peer.id) }.sorted()

        if found.incomingCount > 0 {
            progress.step("receiving from the stick", ["packets": "\(found.incomingCount)", "bytes": "\(found.incomingBytes)"])
            let received = try await nncpCommand(
                "nncp-xfer -rx", NNCP.xferReceive(config: nncp.path, directory: stickPath, timeout: config.exchange.commandTimeout))
            let left = try leftIncoming(nncpDirectory)
            let taken = found.incoming.flatMap { sender, packets in
                packets.filter { !(left[sender]?.contains($0.key) ?? false) }.map(\.value)
            }
            report.received = PacketCount(packets: taken.count, bytes: taken.reduce(0, +))
            if !received.status.succeeded || !left.isEmpty {
                try rejectLeftovers(left, in: nncpDirectory, output: received, report: &report)
            }
        } else {
            progress.step("nothing on the stick for this node")
        }
        // Not needed past rx, and 10,000 names are a megabyte.
        found.incoming = [:]

        switch config.role {
        case .spooler:
            // With no packet in any node's rx/ (none from the stick, none
            // from a laptop waiting) a toss has nothing to do.
            if spool.holdsUntossed() {
                progress.step("tossing: ACKs release the packets they confirm")
                let toss = try await nncpCommand("nncp-toss", NNCP.toss(config: nncp.path, timeout: config.exchange.commandTimeout))
                if !toss.status.succeeded { warn("nncp-toss failed (\(toss.status)): \(toss.errorTail())", &report) }
            } else {
                progress.step("nothing to toss")
            }
        case .backupsvr:
            progress.step("acknowledging what arrived")
            let (made, confirmed) = try await acknowledge(peer)
            let known = try AcknowledgedPackets(stateDir: config.stateDir).record(confirmed, from: peer.id, spool: spool)
            let madeAgain = try await acknowledgeAgain(seenBefore, from: peer, known: known[peer.id] ?? [], report: &report)
            report.acks = made + madeAgain
            // A drive ejected or plugged in since the last toss changes what
            // the laptops should know: their state goes out on this stick.
            do {
                let state = try await DriveDock(context: context).backupsvrState()
                backupsvrState = state
                try await LaptopStates(context: context, nncp: nncp).queueChanged(from: state)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                context.logger.warning("could not queue the laptops' state messages: \(error)")
            }
        case .laptop:
            throw ExchangeError(step: "setup", problem: "a laptop does not exchange sticks")
        }

        let sent = try await send(
            root: root, nncpDirectory: nncpDirectory, peer: peer, owner: owner, filesystem: filesystem, found: found, report: &report)
        report.pendingForPeer = sent.pending
        return sent.copiesOnStick
    }

    /// Runs nncp-ack for what arrived from `peer`: how many ACK packets it
    /// made, and the hashes it confirmed. Its output, a megabyte at 10,000
    /// packets, is let go on return.
    private func acknowledge(_ peer: NNCPNode) async throws -> (made: Int, confirmed: [String]) {
        let ack = try await nncpCommand("nncp-ack", NNCP.ack(config: nncp.path, node: peer.name, timeout: config.exchange.commandTimeout))
        guard ack.status.succeeded else {
            throw ExchangeError(step: "nncp-ack", problem: "\(ack.status): \(ack.errorTail())")
        }
        // nncp-ack lists the ACK packets it made, one a line.
        return (Self.lineCount(ack.standardOutput), AcknowledgedPackets.confirmed(inLog: ack.standardError))
    }

    /// Confirms again the packets the peer sent again because their ACK was
    /// lost: those this node acknowledged once (so they were not ACKs
    /// themselves) and has tossed since. Returns how many ACK packets it made.
    private func acknowledgeAgain(_ seen: [String], from peer: NNCPNode, known: Set<String>, report: inout VisitReport) async throws
        -> Int
    {
        guard !seen.isEmpty else { return 0 }
        let again = seen.filter(known.contains)
        if again.count < seen.count {
            context.logger.info(
                "\(seen.count - again.count) packet(s) on the stick were seen before, but ferry never acknowledged them (ACKs, or older than its record); not acknowledged"
            )
        }
        guard !again.isEmpty else { return 0 }
        progress.step("acknowledging again what arrived before: its ACK was lost", ["packets": "\(again.count)"])
        var made = 0
        for packet in again {
            let ack = try await nncpCommand(
                "nncp-ack -pkt",
                NNCP.ackPacket(config: nncp.path, node: peer.name, packet: packet, timeout: config.exchange.commandTimeout))
            guard ack.status.succeeded else {
                throw ExchangeError(step: "nncp-ack -pkt \(packet)", problem: "\(ack.status): \(ack.errorTail())")
            }
            made += Self.lineCount(ack.standardOutput)
        }
        report.acknowledgedAgain = again
        return made
    }

    /// Packets for this node that nncp-xfer left on the stick, by sender.
    private func leftIncoming(_ nncpDirectory: SafeDirectory) throws -> [String: Set<String>] {
        guard try nncpDirectory.kind(of: nncp.selfID) == .directory else { return [:] }
        let mine = try nncpDirectory.subdirectory(nncp.selfID)
        var left: [String: Set<String>] = [:]
        for sender in try mine.entries() where try mine.kind(of: sender) == .directory {
            let names = try mine.subdirectory(sender).entries().filter(Spool.isPacketName)
            if !names.isEmpty { left[sender] = Set(names) }
        }
        return left
    }

    /// Packets NNCP refused as damaged are removed from the stick: the sender
    /// keeps its copy until an ACK comes back, and sends it again next trip.
    private func rejectLeftovers(
        _ left: [String: Set<String>], in nncpDirectory: SafeDirectory, output: CommandResult, report: inout VisitReport
    ) throws {
        let errors = String(decoding: output.standardError + output.standardOutput, as: UTF8.self)
            .split(separator: "\n").filter { $0.contains("ERROR") }
        let mine = try nncpDirectory.subdirectory(nncp.selfID)
        var stuck: [String] = []
        for (sender, names) in left {
            for name in names.sorted() {
                let line = errors.first(where: { $0.contains(name) }).map(String.init) ?? ""
                let damaged =
                    line.contains("mismatch") || line.contains("invalid") || line.contains("magic") || line.contains("unexpected EOF")
                guard damaged else {
                    stuck.append(name)
                    continue
                }
                try mine.subdirectory(sender).remove(name)
                report.rejected.append(name)
                let reason = printable(String(line.split(separator: ":").last ?? ""), limit: 80).trimmingCharacters(in: .whitespaces)
                warn("NNCP refused packet \(name) (\(reason)); removed it from the stick, so that the sender sends it again", &report)
            }
        }
        guard output.status.succeeded || stuck.isEmpty else {
            throw ExchangeError(
                step: "nncp-xfer -rx",
                problem: "\(output.status), and \(stuck.count) packet(s) stay on the stick: \(output.errorTail(lines: 2))")
        }
        for name in stuck {
            warn("packet \(name) stays on the stick: nncp-xfer -rx did not take it", &report)
        }
    }

    /// Puts on the stick what the plan sends, and returns what stays
    /// queued for the peer afterwards, and at backupsvr the spool copies of
    /// what is on the stick, which go once it is out.
    private func send(
        root: SafeDirectory, nncpDirectory: SafeDirectory, peer: NNCPNode, owner: Account?, filesystem: StickFilesystem,
        found: StickPackets, report: inout VisitReport
    ) async throws -> (pending: PacketCount, copiesOnStick: [QueuedPacket]) {
        let spool = Spool(path: nncp.spool)
        let space = try root.space()
        let queue = try spool.queued(for: peer.id, readingNiceness: false)
        func planned(_ queued: [QueuedPacket]) -> CapacityPlan {
            CapacityPlan(
                queued: queued, onStick: found.outgoing, free: space.free, total: space.total, reserve: config.exchange.reserveBytes,
                largestFile: filesystem.largestFile)
        }
        // Order matters only when not everything fits: only then is each
        // packet's header read for its niceness.
        var plan = planned(queue)
        if !plan.sendsEverything { plan = planned(try spool.queued(for: peer.id, readingNiceness: true)) }
        report.alreadyOnStick = plan.alreadyOnStick.count
        report.stayedBehind = plan.stayBehind
        report.tooBig = plan.tooBig
        reportTooBig(plan.tooBig, total: space.total, filesystem: filesystem, report: &report)
        if !plan.alreadyOnStick.isEmpty {
            context.logger.info("\(plan.alreadyOnStick.count) packet(s) for \(peer.name) are on the stick already; take it to \(peer.name)")
        }

        // ferry copies the packets itself, in nncp-xfer -tx's layout and
        // naming, with one syncfs for all of them where nncp-xfer fsyncs
        // each file and its directory. The receiving nncp-xfer -rx checks
        // every packet's hash; the sender keeps its copy until the ACK.
        var copied: [QueuedPacket] = []
        if plan.send.isEmpty {
            progress.step("nothing new to send to \(peer.name)")
        } else {
            progress.step(
                plan.sendsEverything ? "sending to \(peer.name)" : "sending to \(peer.name) what fits",
                ["packets": "\(plan.send.count)", "bytes": "\(plan.sendBytes)"]
                    .merging(plan.sendsEverything ? [:] : ["staying": "\(plan.stayBehind.count)"]) { $1 })
            copied = try copyPlanned(plan.send, into: nncpDirectory, peer: peer, owner: owner, report: &report)
        }
        report.sent = PacketCount(copied)

        // The spooler keeps its copies until the ACKs come back.
        guard config.role != .spooler else { return (PacketCount(queue), []) }
        let onStick = copied + plan.alreadyOnStick
        let leaving = Set(onStick.map(\.name))
        return (PacketCount(queue.filter { !leaving.contains($0.name) }), onStick)
    }

    /// Copies the planned packets one by one, in plan order, until the stick
    /// is full, and returns those copied. A packet gone from the queue
    /// meanwhile (an ACK released it) is passed over.
    private func copyPlanned(
        _ packets: [QueuedPacket], into nncpDirectory: SafeDirectory, peer: NNCPNode, owner: Account?, report: inout VisitReport
    ) throws -> [QueuedPacket] {
        let recipient = try nncpDirectory.subdirectory(peer.id, create: true)
        let target = try recipient.subdirectory(nncp.selfID, create: true)
        if let owner {
            try nncpDirectory.setOwner(peer.id, to: owner)
            try recipient.setOwner(nncp.selfID, to: owner)
        }
        // The tests' way to land a signal, a remount or a full stick inside
        // a copy and between two: a pause after each chunk and each packet.
        let delay = ProcessInfo.processInfo.environment["FERRY_TEST_COPY_DELAY_MS"].flatMap(UInt32.init) ?? 0
        let pause = { if delay > 0 { usleep(delay * 1000) } }
        var copied: [QueuedPacket] = []
        for (index, packet) in packets.enumerated() {
            try Task.checkCancellation()
            pause()
            do {
                let source = "\(nncp.spool)/\(peer.id)/tx/\(packet.name)"
                if try target.copyIn(from: source, as: packet.name, owner: owner, magic: Self.packetMagic, chunkDone: pause) {
                    copied.append(packet)
                }
            } catch {
                guard error.code == .system(.noSpace) else {
                    throw ExchangeError(step: "tx", problem: "\(error); what did not reach the stick stays queued")
                }
                report.stayedBehind = Array(packets[index...]) + report.stayedBehind
                warn("the stick filled up sooner than planned; \(packets.count - index) packet(s) stay queued for the next trip", &report)
                break
            }
        }
        return copied
    }

    /// The lines in `bytes` that are not empty.
    static func lineCount(_ bytes: [UInt8]) -> Int {
        var count = 0
        var inLine = false
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if inLine { count += 1 }
                inLine = false
            } else {
                inLine = true
            }
        }
        return inLine ? count + 1 : count
    }

    /// What an NNCP 8 encrypted packet starts with (NNCPEv6): nncp-xfer -tx
    /// copies nothing else.
    static let packetMagic: [UInt8] = Array("NNCPE".utf8) + [0, 0, 6]

    /// A packet larger than the whole stick, or than its filesystem's largest
    /// file, can never cross on it: say so once per packet, with the remedy,
    /// and never try to send it.
    private func reportTooBig(_ packets: [QueuedPacket], total: UInt64, filesystem: StickFilesystem, report: inout VisitReport) {
        let file = "too-big.json"
        var known = StateFile<[String]>(file, stateDir: config.stateDir).load { context.logger.warning("\($0)") } ?? []
        let fresh = packets.filter { !known.contains($0.name) }
        for packet in fresh {
            let size = humanSize(packet.size)
            if let largest = filesystem.largestFile, packet.size > largest {
                warn(
                    "packet \(packet.name) (\(size)) is larger than the largest file \(filesystem.type) holds (\(largest) bytes) and can never cross on this stick; on the laptop, a smaller [send] chunk-size splits such streams into parts that fit; or use a stick formatted ext4 or exfat for it",
                    &report)
            } else {
                warn(
                    "packet \(packet.name) (\(size)) is larger than this stick (\(humanSize(total))) and can never cross on it; on the laptop, a smaller [send] chunk-size splits such streams into parts that fit (nncp-file -chunked, for plain files); or use a larger stick",
                    &report)
            }
        }
        guard !fresh.isEmpty else { return }
        known = Array(Set(known).union(fresh.map(\.name))).sorted()
        try? StateFile(file, stateDir: config.stateDir).write(known)
    }

    /// Runs one NNCP command as nncp-user, and logs its status and output tail.
    @discardableResult
    private func nncpCommand(_ name: String, _ command: Command, input: [UInt8]? = nil) async throws -> CommandResult {
        let started = ContinuousClock.now
        let result = try await context.runner.run(command.asUser(config.nncpUser), input: input)
        try Task.checkCancellation()
        let elapsed = ContinuousClock.now - started
        let tail = result.errorTail(lines: 3)
        context.logger.info(
            "\(name): \(result.status)",
            metadata: [
                "seconds": "\(String(format: "%.2f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))"
            ]
            .merging(tail.isEmpty ? [:] : ["output": "\(tail)"]) { $1 })
        return result
    }

    private func warn(_ message: String, _ report: inout VisitReport) {
        context.logger.warning("\(message)")
        report.warnings.append(message)
    }

    private func notifySafeToRemove(device: BlockDevice) async {
        guard let command = Notify.safeToRemove(config.notifyCommand, device: device.devnode) else { return }
        do {
            let result = try await context.runner.run(command, input: nil)
            if !result.status.succeeded {
                context.logger.warning("notify-command failed (\(result.status)): \(result.errorTail())")
            }
        } catch {
            context.logger.warning("notify-command could not run: \(error)")
        }
    }
}
