import Foundation

/// What taking one card does here, decided before anything is written.
public struct PairingPlan: Sendable {
    public var card: NodeCard
    /// nil when the node is a neighbour already, under this name and id.
    public var entry: NeighbourEntry?
    /// Lines for the admin: what the card becomes on this host.
    public var becomes: [String]
    var peer: String?
    var sendBackupsvr: String?
    var sender: String?
}

/// `ferry pair add`: adds the neighbour a card describes, by this host's
/// role and the card's (DESIGN.md section 8). ferry writes only
/// `neigh/NAME/` in NNCP's configuration directory, the card in
/// `state-dir/cards/`, and single keys of its own config.
public struct Pairing: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig
    /// The running ferry binary, by absolute path: exec handlers name it.
    public var ferryExecutable: String

    public init(context: FerryContext, nncp: NNCPConfig, ferryExecutable: String) {
        self.context = context
        self.nncp = nncp
        self.ferryExecutable = ferryExecutable
    }

    var config: FerryConfig { context.config }

    /// An exec handler's argv: ferry by its path, and `--config` where this
    /// host's config is not the default one, since nncp-toss runs handlers
    /// with an empty environment where `$FERRY_CONFIG` cannot reach them.
    func handler(_ subcommand: String) -> [String] {
        [ferryExecutable, subcommand] + (config.path == FerryConfig.defaultPath ? [] : ["--config", config.path])
    }

    /// Checks `card` against this host and decides what it becomes; throws
    /// one line, with nothing changed, for a card that cannot be taken.
    /// `peer` overrides the configured peer for cards taken together with
    /// the peer's own.
    public func plan(_ card: NodeCard, peer plannedPeer: String? = nil) throws(PairingError) -> PairingPlan {
        let role = Role(rawValue: card.role)!
        let here = config.role
        let source = "\(card.name) (\(card.role), \(card.fingerprint))"
        guard card.id != nncp.selfID else { throw PairingError("card \(source) is this node's own card; nothing changed") }
        if card.name == config.name || card.name == nncp.selfName {
            throw PairingError("card \(source): the name \(card.name) is this node's own; nothing changed")
        }
        if let known = nncp.neighbours[card.name], known.id != card.id {
            throw PairingError(
                "card \(source): the name \(card.name) is taken by another node (\(NodeCard.fingerprint(ofID: known.id))); nothing changed")
        }
        if let other = nncp.neighbours.values.first(where: { $0.id == card.id && $0.name != card.name && $0.name != "self" }) {
            throw PairingError("card \(source): this node is a neighbour already, as \(other.name); nothing changed")
        }
        let known = nncp.neighbours[card.name] != nil
        let peer = plannedPeer ?? config.peer
        var plan = PairingPlan(card: card, entry: nil, becomes: [])
        var entry = NeighbourEntry(card: card)
        switch (here, role) {
        case (.backupsvr, .laptop):
            entry.via = peer.map { [$0] } ?? []
            entry.exec = ["zfsreceive": handler("receive"), "ferrystate": handler("state")]
            plan.sender = card.name
            plan.becomes = [
                "\(card.name) may send streams: exec zfsreceive = \(entry.exec["zfsreceive"]!.joined(separator: " ")), [receive].senders \(card.name) = \"\(card.name)\"",
                "\(card.name) may send its restore drills' results: exec ferrystate = \(entry.exec["ferrystate"]!.joined(separator: " "))",
            ]
            if let peer { plan.becomes.append("replies to \(card.name) go via \(peer)") }
        case (.backupsvr, .spooler), (.spooler, .backupsvr):
            if let peer, peer != card.name {
                throw PairingError(
                    "card \(source): this \(here.rawValue)'s peer is \(peer) already (peer in \(config.path)); nothing changed")
            }
            plan.peer = card.name
            plan.becomes = ["\(card.name) is the peer across the gap (peer = \"\(card.name)\")"]
        case (.laptop, .backupsvr):
            let spoolers = CardStore(stateDir: config.stateDir).all().filter {
                $0.role == Role.spooler.rawValue && nncp.neighbours[$0.name] != nil
            }
            guard spoolers.count == 1, let spooler = spoolers.first else {
                throw PairingError(
                    spoolers.isEmpty
                        ? "card \(source): this laptop reaches backupsvr only via the spooler, which is not paired here yet: ferry pair add the spooler's card first; nothing changed"
                        : "card \(source): several spoolers are paired here (\(spoolers.map(\.name).joined(separator: ", "))); nothing changed"
                )
            }
            if config.send.backupsvr != card.name, let current = nncp.neighbours[config.send.backupsvr], current.id != card.id {
                throw PairingError(
                    "card \(source): this laptop sends to \(config.send.backupsvr) already ([send].backupsvr in \(config.path)); nothing changed"
                )
            }
            entry.via = [spooler.name]
            entry.exec = ["zfsrestore": handler("receive"), "ferrystate": handler("state")]
            plan.sendBackupsvr = card.name
            plan.becomes = [
                "\(card.name) is reached via \(spooler.name), and takes this laptop's streams ([send].backupsvr = \"\(card.name)\")",
                "\(card.name) may send restores (exec zfsrestore) and its state (exec ferrystate)",
            ]
        case (.laptop, .spooler):
            plan.becomes = ["\(card.name) is a plain neighbour: the spooler on this laptop's network"]
        case (.spooler, .laptop):
            plan.becomes = ["\(card.name) is a plain neighbour, introduced to backupsvr on the next ferry enroll of a stick"]
        default:
            throw PairingError(
                "card \(source): a \(card.role)'s card makes no sense on a \(here.rawValue) (\(Self.sensible[here]!)); nothing changed")
        }
        plan.entry = known ? nil : entry
        try edited(plan)
        return plan
    }

    static let sensible: [Role: String] = [
        .spooler: "a spooler takes laptops and backupsvr",
        .backupsvr: "backupsvr takes laptops and the spooler",
        .laptop: "a laptop takes the spooler and backupsvr",
    ]

    /// The config with the plan's keys set, checked by parsing it back.
    @discardableResult
    func edited(_ plan: PairingPlan) throws(PairingError) -> ConfigEdit? {
        guard plan.peer != nil || plan.sendBackupsvr != nil || plan.sender != nil else { return nil }
        var edit = try ConfigEdit(path: config.path)
        let current = try edit.parsed(check: { _ in true }, describing: "its current settings")
        if let peer = plan.peer, current.peer != peer {
            edit.set("peer", to: ConfigEdit.quoted(peer))
            _ = try edit.parsed(check: { $0.peer == peer }, describing: "peer = \"\(peer)\"")
        }
        if let backupsvr = plan.sendBackupsvr, current.send.backupsvr != backupsvr {
            edit.set("backupsvr", to: ConfigEdit.quoted(backupsvr), in: "send")
            _ = try edit.parsed(check: { $0.send.backupsvr == backupsvr }, describing: "[send] backupsvr = \"\(backupsvr)\"")
        }
        if let sender = plan.sender, current.receive.senders[sender] != sender {
            var senders = current.receive.senders
            senders[sender] = sender
            edit.set("senders", to: ConfigEdit.inlineTable(senders), in: "receive")
            _ = try edit.parsed(check: { $0.receive.senders == senders }, describing: "[receive] senders \(sender) = \"\(sender)\"")
        }
        return edit
    }

    /// Carries out a plan made by `plan`: the neighbour, the card, the config.
    public func apply(_ plan: PairingPlan) throws {
        let edit = try edited(plan)
        if let entry = plan.entry {
            try NNCPConfigDirectory(path: nncp.path, configPath: config.path).add(entry)
        }
        try CardStore(stateDir: config.stateDir).save(plan.card)
        try edit?.write()
        context.logger.debug(
            "paired with \(plan.card.name)",
            metadata: ["role": "\(plan.card.role)", "id": "\(plan.card.id)", "new-neighbour": "\(plan.entry != nil)"])
    }

    /// Whether taking the card would change nothing: the same node, known
    /// already with everything the plan sets.
    public func isAlreadyPaired(_ plan: PairingPlan) -> Bool {
        guard plan.entry == nil else { return false }
        if let peer = plan.peer, config.peer != peer { return false }
        if let backupsvr = plan.sendBackupsvr, config.send.backupsvr != backupsvr { return false }
        if let sender = plan.sender, config.receive.senders[sender] != sender { return false }
        return (try? CardStore(stateDir: config.stateDir).card(named: plan.card.name)) == plan.card
    }

    /// `ferry pair add`: reads, checks and takes one card.
    public func add(_ bytes: [UInt8], source: String) throws -> (plan: PairingPlan, changed: Bool) {
        try requireConfigDirectory()
        let card = try NodeCard.read(bytes, source: source)
        let plan = try plan(card)
        if isAlreadyPaired(plan) { return (plan, false) }
        try apply(plan)
        return (plan, true)
    }

    func requireConfigDirectory() throws(PairingError) {
        _ = try NNCPConfigDirectory(path: nncp.path, configPath: config.path)
    }

    /// This node's own card.
    public func ownCard() throws -> NodeCard {
        try NodeCard.make(name: nncp.selfName, role: config.role, nncp: nncp)
    }
}

/// The running ferry binary's absolute path (what `/proc/self/exe` names),
/// for the exec handlers that pairing writes; `/usr/bin/ferry` if unknown.
public func runningFerryExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/usr/bin/ferry"
}
