import Foundation

/// The introduction list on a stick: which cards its enroller vouches for,
/// by name, role and NNCP id, signed with the enroller's key. A card on the
/// stick is only as good as this list: anyone can sign a card of their own.
public struct Introductions: Codable, Sendable, Equatable, SignedJSON {
    public static let fileName = "introductions"
    static let signingDomain = Array("ferry introductions v1\n".utf8)

    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var role: String
        public var id: String
    }

    public var introductions: Int
    /// The enroller's NNCP id.
    public var enroller: String
    public var cards: [Entry]
    public var sig: String?

    static func make(introducing cards: [NodeCard], nncp: NNCPConfig) throws -> Introductions {
        var list = Introductions(
            introductions: 1, enroller: nncp.selfID, cards: cards.map { Entry(name: $0.name, role: $0.role, id: $0.id) }, sig: nil)
        list.sig = Hex.encode(try nncp.sign(list.signedBytes()))
        return list
    }

    func isSigned(by node: NNCPNode) -> Bool {
        guard enroller == node.id, let sig, let signature = Hex.decode(sig), signature.count == 64, let message = try? signedBytes() else {
            return false
        }
        return node.isValidSignature(signature, for: message)
    }
}

/// `STICK/.ferry/cards/`: the enroller's card, the cards it introduces
/// (each signed by its own node), the signed introduction list, and the
/// answer of the host across the gap (DESIGN.md section 8).
public enum StickCards {
    public static let directory = "cards"
    /// More cards than any setup has; a stick with more is hostile.
    static let cardLimit = 256

    /// Leaves this node's card and the cards it introduces on the stick.
    /// Cards of other nodes already there (an answer from across the gap)
    /// stay.
    public static func write(own: NodeCard, introducing cards: [NodeCard], nncp: NNCPConfig, in ferry: SafeDirectory) throws {
        let directory = try ferry.subdirectory(Self.directory, create: true)
        for card in [own] + cards {
            try directory.writeFileAtomically(card.name + ".card", bytes: Array((try card.json() + "\n").utf8))
        }
        let list = try Introductions.make(introducing: cards, nncp: nncp)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        try directory.writeFileAtomically(Introductions.fileName, bytes: Array(try encoder.encode(list)) + [UInt8(ascii: "\n")])
    }

    /// Leaves one card on the stick: backupsvr's answer.
    public static func writeAnswer(_ card: NodeCard, in ferry: SafeDirectory) throws {
        let directory = try ferry.subdirectory(Self.directory, create: true)
        try directory.writeFileAtomically(card.name + ".card", bytes: Array((try card.json() + "\n").utf8))
    }

    /// What is on the stick: the cards that check (each one's own
    /// signature and id), the ones that do not with why, and the list.
    public struct Found: Sendable {
        public var cards: [NodeCard] = []
        public var refused: [String] = []
        public var introductions: Introductions?
    }

    public static func read(in ferry: SafeDirectory) throws -> Found {
        var found = Found()
        guard try ferry.kind(of: Self.directory) == .directory else { return found }
        let directory = try ferry.subdirectory(Self.directory)
        let names = try directory.entries().filter { $0.hasSuffix(".card") }.sorted()
        guard names.count <= cardLimit else {
            throw PairingError("\(directory.path) holds \(names.count) cards, more than \(cardLimit); nothing changed")
        }
        for name in names where try directory.kind(of: name) == .regular {
            let source = "\(directory.path)/\(name)"
            do {
                let card = try NodeCard.read(try directory.readFile(name, limit: NodeCard.sizeLimit), source: source)
                guard card.name + ".card" == name else {
                    throw CardError(source: source, problem: "names the node \(card.name), not the one its file name says")
                }
                found.cards.append(card)
            } catch {
                found.refused.append("\(error)")
            }
        }
        if try directory.kind(of: Introductions.fileName) == .regular {
            let bytes = try directory.readFile(Introductions.fileName, limit: 64 * 1024)
            found.introductions = try? JSONDecoder().decode(Introductions.self, from: Data(bytes))
        }
        return found
    }
}
