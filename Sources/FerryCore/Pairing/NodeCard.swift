import Crypto
import Foundation

/// A node's card (DESIGN.md section 8): its name, role, NNCP id and public
/// keys, signed by the node's own NNCP signing key. It is what one host
/// hands another to be paired, across the LAN or on the stick.
public struct NodeCard: Codable, Sendable, Equatable, SignedJSON {
    /// Real cards are a few hundred bytes; anything far larger is hostile.
    public static let sizeLimit = 16 * 1024

    public var card: Int
    public var name: String
    public var role: String
    public var id: String
    public var exchpub: String
    public var signpub: String
    public var noisepub: String
    /// ed25519 over `signedBytes`, in lowercase hex.
    public var sig: String?

    /// This node's card, signed with its NNCP key.
    public static func make(name: String, role: Role, nncp: NNCPConfig) throws -> NodeCard {
        let keys = nncp.selfKeys
        guard !keys.exchpub.isEmpty, !keys.signpub.isEmpty, !keys.noisepub.isEmpty else {
            throw NNCPConfigError(
                .missingValue("self.exchpub, signpub, noisepub"), path: nncp.path,
                problem: "lacks this node's public keys (self.exchpub, signpub, noisepub); ferry cannot make its card")
        }
        guard NodeName.isValid(name) else {
            throw CardError(
                source: "of this node",
                problem:
                    "cannot be made: the name \"\(printable(name, limit: 40))\" will not do; \(NodeName.rule); set name in the ferry config"
            )
        }
        var card = NodeCard(
            card: 1, name: name, role: role.rawValue, id: nncp.selfID, exchpub: nncp.selfKeys.exchpub, signpub: nncp.selfKeys.signpub,
            noisepub: nncp.selfKeys.noisepub, sig: nil)
        card.sig = Hex.encode(try nncp.sign(card.signedBytes()))
        return card
    }

    /// The signature covers the card without `sig` as sorted-keys JSON,
    /// and nothing before it.
    static let signingDomain: [UInt8] = []

    /// The first 16 characters of the NNCP id, in groups of four: what an
    /// admin compares on both screens.
    public var fingerprint: String { Self.fingerprint(ofID: id) }

    public static func fingerprint(ofID id: String) -> String {
        let head = Array(id.prefix(16))
        return stride(from: 0, to: head.count, by: 4).map { String(head[$0..<min($0 + 4, head.count)]) }.joined(separator: "-")
    }

    /// Whether `text` (a fingerprint or a whole id, any case, dashes and
    /// spaces ignored) names this card.
    public func matches(fingerprint text: String) -> Bool {
        let given = text.uppercased().filter { $0 != "-" && $0 != " " }
        return given.count == 16 ? id.hasPrefix(given) : given == id
    }

    /// The card as `ferry card --json` prints it, and as the stick carries it.
    public func json() throws -> String {
        String(decoding: try Self.encoder(pretty: true).encode(self), as: UTF8.self)
    }

    /// The text form: the JSON, then the fingerprint line.
    public func text() throws -> String {
        try json() + "\nfingerprint: \(fingerprint)"
    }

    private static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting =
            pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Parses a card in either form (`ferry card`'s text, or the JSON alone)
    /// and checks it: a card is valid only when its signature verifies and
    /// its id is the NNCP id of its `signpub`. `source` names it in errors.
    public static func read(_ bytes: [UInt8], source: String) throws(CardError) -> NodeCard {
        guard bytes.count <= sizeLimit else {
            throw CardError(source: source, problem: "is larger than \(sizeLimit / 1024) KiB; it is not a card")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: "}") else { throw CardError(source: source, problem: "is not a ferry card (no JSON object)") }
        let json = text[...close]
        var statedFingerprint: String?
        for line in text[text.index(after: close)...].split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard trimmed.hasPrefix("fingerprint:") else {
                throw CardError(source: source, problem: "has text after the card that is not its fingerprint line")
            }
            statedFingerprint = trimmed.dropFirst("fingerprint:".count).trimmingCharacters(in: .whitespaces)
        }
        let card: NodeCard
        do {
            card = try JSONDecoder().decode(NodeCard.self, from: Data(json.utf8))
        } catch {
            throw CardError(source: source, problem: "is not a ferry card (not the expected JSON)")
        }
        try card.check(source: source)
        if let statedFingerprint, statedFingerprint != card.fingerprint {
            throw CardError(
                source: source, problem: "says fingerprint \(printable(statedFingerprint, limit: 40)), but its id gives \(card.fingerprint)"
            )
        }
        return card
    }

    /// The checks that make a card valid, in the order that gives the most
    /// useful refusal.
    func check(source: String) throws(CardError) {
        guard card == 1 else { throw CardError(source: source, problem: "is card version \(card); this ferry reads version 1") }
        guard NodeName.isValid(name) else {
            throw CardError(source: source, problem: "names the node \"\(printable(name, limit: 40))\"; \(NodeName.rule)")
        }
        guard Role(rawValue: role) != nil else {
            throw CardError(
                source: source,
                problem:
                    "has role \"\(printable(role, limit: 40))\"; expected one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for (field, value) in [("exchpub", exchpub), ("noisepub", noisepub)] where Base32.decode(value)?.count != 32 {
            throw CardError(source: source, problem: "has a \(field) that is not a 32-byte NNCP key")
        }
        guard let key = Base32.decode(signpub), key.count == 32, let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key)
        else {
            throw CardError(source: source, problem: "has a signpub that is not an ed25519 key")
        }
        guard id == Base32.encode(Blake2b.hash(key)) else {
            throw CardError(source: source, problem: "has id \(printable(id, limit: 60)), which is not the NNCP id of its signpub")
        }
        guard let sig, let signature = Hex.decode(sig), signature.count == 64, let message = try? signedBytes(),
            publicKey.isValidSignature(signature, for: message)
        else {
            throw CardError(source: source, problem: "has a signature that does not verify against its own signpub")
        }
    }

    /// The node as NNCP's config knows it, to check what it signed.
    public var node: NNCPNode {
        NNCPNode(name: name, id: id, signPublicKey: Base32.decode(signpub) ?? [])
    }
}

/// NNCP node names as ferry writes them into `neigh/NAME`: a path component
/// and a TOML key, so a short plain word.
public enum NodeName {
    public static let rule = "a node name is 1 to 64 letters, digits, '-', '_' or '.', not starting with '.', and not \"self\""

    public static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), name != "self", !name.hasPrefix(".") else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".")
        }
    }
}

/// A card that is malformed or fails its checks; nothing was changed.
public struct CardError: FerryError {
    public var source: String
    public var problem: String

    public var description: String { "card \(printable(source)) \(problem); nothing changed" }
}
