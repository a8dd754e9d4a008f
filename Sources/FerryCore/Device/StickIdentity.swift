import Foundation

/// `STICK/.ferry/identity`: which filesystem this is, and who enrolled it,
/// signed with the enrolling node's NNCP signing key (DESIGN.md section 3).
public struct StickIdentity: Codable, Sendable, Equatable, SignedJSON {
    public static let directory = ".ferry"
    public static let fileName = "identity"
    /// A real identity is a few hundred bytes; anything far larger is hostile.
    public static let sizeLimit = 4096
    static let signingDomain = Array("ferry stick identity v1\n".utf8)

    public var version: Int
    /// The filesystem UUID the identity belongs to.
    public var uuid: String
    public var label: String
    /// The enrolling node's NNCP id.
    public var enroller: String
    /// The enrolling node's name, for people; the id is what counts.
    public var enrollerName: String
    public var enrolled: String
    /// ed25519 over `signedBytes`, in lowercase hex.
    public var sig: String?

    enum CodingKeys: String, CodingKey {
        case version, uuid, label, enroller, enrolled, sig
        case enrollerName = "enroller-name"
    }

    /// Makes and signs the identity of the filesystem `device` for this node.
    public static func make(for device: BlockDevice, nncp: NNCPConfig, at date: Date) throws -> StickIdentity {
        var identity = StickIdentity(
            version: 1, uuid: device.filesystem.uuid ?? "", label: device.filesystem.label ?? "",
            enroller: nncp.selfID, enrollerName: nncp.selfName, enrolled: date.rfc3339, sig: nil)
        let signature = try nncp.sign(identity.signedBytes())
        identity.sig = Hex.encode(signature)
        return identity
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    /// Parses identity bytes read from a stick.
    public static func decode(_ bytes: [UInt8], path: String) throws(IdentityError) -> StickIdentity {
        do {
            return try JSONDecoder().decode(StickIdentity.self, from: Data(bytes))
        } catch {
            throw IdentityError(path: path, problem: "is not a ferry identity (not the expected JSON)")
        }
    }

    /// Checks the identity against the filesystem it was read from and the
    /// nodes this host trusts (itself and its peer), and returns the enroller.
    public func verify(device: BlockDevice, nncp: NNCPConfig, trusting peer: String?, path: String) throws(IdentityError) -> NNCPNode {
        guard let enrollerNode = nncp.node(id: enroller) else {
            throw IdentityError(
                path: path,
                problem:
                    "was signed by node \(printable(enroller, limit: 60)), which \(nncp.path) does not know; if this stick carries its enroller's card, pair with it: ferry pair \(device.devnode)"
            )
        }
        guard enroller == nncp.selfID || enrollerNode.name == peer else {
            throw IdentityError(path: path, problem: "was enrolled by \(enrollerNode.name), which is neither this node nor its peer")
        }
        try verify(device: device, signedBy: enrollerNode, path: path)
        return enrollerNode
    }

    /// Checks the identity's version, its signature by `enrollerNode`, and
    /// that it belongs to the filesystem it was read from.
    public func verify(device: BlockDevice, signedBy enrollerNode: NNCPNode, path: String) throws(IdentityError) {
        guard version == 1 else {
            throw IdentityError(path: path, problem: "has version \(version); this ferry reads version 1")
        }
        guard enroller == enrollerNode.id, let sig, let signature = Hex.decode(sig), signature.count == 64,
            let message = try? signedBytes(),
            enrollerNode.isValidSignature(signature, for: message)
        else {
            throw IdentityError(path: path, problem: "has a signature that does not verify against \(enrollerNode.name)'s signpub")
        }
        guard uuid == device.filesystem.uuid else {
            throw IdentityError(
                path: path,
                problem:
                    "belongs to filesystem \(printable(uuid, limit: 40)), but this one is \(device.filesystem.uuid ?? "without a UUID"); was it copied from another stick?"
            )
        }
    }
}

/// A stick identity that is missing, malformed, or fails its checks: the
/// medium is not ours and is left alone.
public struct IdentityError: FerryError {
    public var path: String
    public var problem: String

    public var exitStatus: ExitStatus { .notOurs }
    public var description: String { "\(printable(path)) \(problem)" }
}
