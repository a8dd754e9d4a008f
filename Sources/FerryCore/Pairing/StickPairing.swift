import Foundation

/// What `ferry pair DEVNODE` found on the stick and did with it.
public struct StickPairingOutcome: Sendable {
    /// The card the admin accepts by its fingerprint.
    public var vouching: NodeCard
    public var plans: [PairingPlan]
    public var added: [String]
    /// Whether this node's own card was left on the stick.
    public var leftOwnCard: Bool
}

/// `ferry pair DEVNODE [--accept FINGERPRINT]`: takes the cards on a stick
/// across the gap, and leaves this node's (DESIGN.md section 8).
///
/// Two cases. The stick's enroller is not known here (backupsvr, first
/// time): its card must check, the identity and the introduction list must
/// verify against that card, and every introduced card must be the one the
/// list names. Accepting the enroller's fingerprint takes them all, and
/// leaves this node's card as the answer. Or this node enrolled the stick
/// (the spooler, later): the answer card from across the gap is the one to
/// accept. Nothing is written before the fingerprint is accepted.
public struct StickPairing: Sendable {
    public var pairing: Pairing

    public init(pairing: Pairing) {
        self.pairing = pairing
    }

    var context: FerryContext { pairing.context }
    var nncp: NNCPConfig { pairing.nncp }

    /// `show` gets the lines to print before any decision; `confirm` asks
    /// on a terminal when no fingerprint is given, and is nil off one.
    public func pair(
        devnode: String, accept: String?, show: (String) -> Void, confirm: (() -> Bool)?
    ) async throws -> StickPairingOutcome {
        try context.config.require(.spooler, .backupsvr, for: "pair DEVNODE")
        try pairing.requireConfigDirectory()
        let device = try context.inspector.inspect(devnode: devnode)
        let lock = try await HostLock.acquire(.spool, stateDir: context.config.stateDir, logger: context.logger)
        defer { withExtendedLifetime(lock) {} }
        let (outcome, identity) = try await withMountedMedium(device, readOnly: true, context: context) { root in
            let identity = try MediumRecognizer.readIdentity(root: root)
            let ferry = try root.subdirectory(StickIdentity.directory)
            let found = try StickCards.read(in: ferry)
            let (vouching, plans) = try proposal(identity: identity, found: found, device: device, root: root)
            show(Self.describe(vouching, plans: plans, pairing: pairing))
            if let accept {
                guard vouching.matches(fingerprint: accept) else {
                    throw PairingError(
                        "the fingerprint of \(vouching.name) is \(vouching.fingerprint), not \(printable(accept, limit: 60)); nothing changed"
                    )
                }
            } else {
                guard let confirm, confirm() else {
                    throw PairingError(
                        "not paired: compare \(vouching.fingerprint) with what `ferry card` prints on \(vouching.name), then run ferry pair \(devnode) --accept \(vouching.fingerprint); nothing changed",
                        exitStatus: .notOurs)
                }
            }
            var added: [String] = []
            for plan in plans where !pairing.isAlreadyPaired(plan) {
                try pairing.apply(plan)
                added.append(plan.card.name)
            }
            let answering = identity.enroller != nncp.selfID
            return (StickPairingOutcome(vouching: vouching, plans: plans, added: added, leftOwnCard: answering), identity)
        }
        guard outcome.leftOwnCard else { return outcome }
        // The answer is written on a mount of its own, read-write: a remount
        // of the look would keep ext4's `noload` and write with no journal.
        // The identity must still be the one the fingerprint was accepted for.
        try await withMountedMedium(device, readOnly: false, context: context) { root in
            guard try MediumRecognizer.readIdentity(root: root) == identity else {
                throw PairingError(
                    "the identity on \(printable(devnode)) changed after the first look; nothing written", exitStatus: .notOurs)
            }
            try StickCards.writeAnswer(try pairing.ownCard(), in: try root.subdirectory(StickIdentity.directory))
            try root.syncFilesystem()
        }
        return outcome
    }

    /// The card to accept, and what taking it (and those it vouches for) does.
    func proposal(identity: StickIdentity, found: StickCards.Found, device: BlockDevice, root: SafeDirectory) throws -> (
        NodeCard, [PairingPlan]
    ) {
        let identityPath = MediumRecognizer.identityPath(root)
        if identity.enroller == nncp.selfID {
            _ = try identity.verify(device: device, nncp: nncp, trusting: context.config.peer, path: identityPath)
            let introduced = Set((found.introductions?.cards ?? []).map(\.id))
            let answers = found.cards.filter { $0.id != nncp.selfID && !introduced.contains($0.id) }
            guard answers.count == 1, let answer = answers.first else {
                let refused = found.refused.first.map { " (\($0))" } ?? ""
                throw PairingError(
                    answers.isEmpty
                        ? "\(device.devnode) carries no answer from across the gap yet\(refused): take it to the other host and run ferry pair there first; nothing changed"
                        : "\(device.devnode) carries several answers (\(answers.map(\.name).joined(separator: ", "))); nothing changed")
            }
            return (answer, [try pairing.plan(answer)])
        }
        guard let enroller = found.cards.first(where: { $0.id == identity.enroller }) else {
            let refused = found.refused.first.map { " (\($0))" } ?? ""
            throw PairingError(
                "\(device.devnode) carries no valid card of the node that enrolled it (\(NodeCard.fingerprint(ofID: identity.enroller)))\(refused); nothing changed"
            )
        }
        try identity.verify(device: device, signedBy: enroller.node, path: identityPath)
        if let known = nncp.node(id: enroller.id), known.name != "self", known.name != context.config.peer {
            throw PairingError("\(device.devnode) was enrolled by \(known.name), a neighbour that is not this host's peer; nothing changed")
        }
        guard let list = found.introductions, list.isSigned(by: enroller.node) else {
            throw PairingError(
                "\(device.devnode): the introduction list is missing or not signed by \(enroller.name) (\(enroller.fingerprint)); nothing changed"
            )
        }
        var plans = [try pairing.plan(enroller)]
        for entry in list.cards {
            guard let card = found.cards.first(where: { $0.name == entry.name }) else {
                throw PairingError(
                    "\(device.devnode): \(enroller.name) introduces \(printable(entry.name)), whose card is missing or refused; nothing changed"
                )
            }
            guard card.id == entry.id, card.role == entry.role else {
                throw PairingError(
                    "\(device.devnode): the card of \(card.name) is not the one \(enroller.name) introduced (id \(card.fingerprint), introduced \(NodeCard.fingerprint(ofID: entry.id))); was it swapped? nothing changed"
                )
            }
            plans.append(try pairing.plan(card, peer: enroller.name))
        }
        return (enroller, plans)
    }

    static func describe(_ vouching: NodeCard, plans: [PairingPlan], pairing: Pairing) -> String {
        var lines = ["\(vouching.name) (\(vouching.role)) fingerprint: \(vouching.fingerprint)"]
        for plan in plans {
            let state = pairing.isAlreadyPaired(plan) ? " (paired already)" : ""
            if plan.card != vouching {
                lines.append("  introduces \(plan.card.name) (\(plan.card.role)) fingerprint: \(plan.card.fingerprint)\(state)")
            }
            lines += plan.becomes.map { "    \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}
