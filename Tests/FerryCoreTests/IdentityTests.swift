import Foundation
import Testing

@testable import FerryCore

@Suite("The signed stick identity")
struct IdentityTests {
    let nodes = TestNodes()
    let device = BlockDevice.stick()

    func identity(by node: String = "spooler") throws -> StickIdentity {
        try StickIdentity.make(for: device, nncp: nodes.config(of: node), at: FixedClock().now())
    }

    func verify(_ identity: StickIdentity, at node: String = "backupsvr", peer: String = "spooler", device: BlockDevice? = nil) throws
        -> NNCPNode
    {
        try identity.verify(device: device ?? self.device, nncp: nodes.config(of: node), trusting: peer, path: "STICK/.ferry/identity")
    }

    @Test("the peer accepts an identity the enroller signed, with no second enrolment")
    func peerAccepts() throws {
        #expect(try verify(identity()).name == "spooler")
    }

    @Test("the enroller itself accepts it too")
    func enrollerAccepts() throws {
        #expect(try verify(identity(), at: "spooler", peer: "backupsvr").id == nodes.id("spooler"))
    }

    @Test("it survives encoding and decoding byte for byte")
    func roundTrip() throws {
        let original = try identity()
        let decoded = try StickIdentity.decode(try original.encoded(), path: "x")
        #expect(decoded == original)
        #expect(try verify(decoded).name == "spooler")
        let json = String(decoding: try original.encoded(), as: UTF8.self)
        #expect(json.contains("\"enroller-name\""))
        #expect(json.contains("\"enrolled\":\"2026-09-21T"))
    }

    @Test("a changed UUID is refused: the identity was copied from another stick")
    func changedUUID() throws {
        let other = BlockDevice.stick(uuid: "9999-0000")
        #expect { _ = try verify(identity(), device: other) } throws: { "\($0)".contains("was it copied from another stick") }
    }

    @Test("a changed enroller makes the signature fail")
    func changedEnroller() throws {
        var forged = try identity()
        forged.enroller = nodes.id("backupsvr")
        #expect { _ = try verify(forged) } throws: { "\($0)".contains("does not verify") }
    }

    @Test("a changed field under the signature makes it fail", arguments: ["uuid", "label", "enrolled"])
    func changedField(field: String) throws {
        var forged = try identity()
        switch field {
        case "uuid": forged.uuid = "1111-2223"
        case "label": forged.label = "OTHER"
        default: forged.enrolled = "2030-01-01T00:00:00Z"
        }
        #expect { _ = try verify(forged, device: .stick(uuid: forged.uuid)) } throws: { "\($0)".contains("does not verify") }
    }

    @Test("a bad signature is refused", arguments: ["", "zz", String(repeating: "0", count: 128)])
    func badSignature(sig: String) throws {
        var forged = try identity()
        forged.sig = sig
        #expect { _ = try verify(forged) } throws: { error in
            (error as? IdentityError)?.exitStatus == .notOurs && "\(error)".contains("does not verify")
        }
    }

    @Test("a node the reader does not know is refused")
    func unknownNode() throws {
        let stranger = TestNodes(["stranger", "backupsvr"])
        let identity = try StickIdentity.make(for: device, nncp: stranger.config(of: "stranger"), at: Date())
        #expect { _ = try verify(identity) } throws: { "\($0)".contains("does not know") }
    }

    @Test("a known node that is neither this host nor its peer is refused")
    func untrustedNeighbour() throws {
        #expect { _ = try verify(identity(by: "laptop")) } throws: { "\($0)".contains("neither this node nor its peer") }
    }

    @Test("bytes that are not an identity are refused", arguments: ["", "not json", "{}", "[1,2]", "{\"version\":\"1\"}"])
    func notJSON(text: String) {
        #expect { _ = try StickIdentity.decode(Array(text.utf8), path: "STICK/.ferry/identity") } throws: { error in
            "\(error)" == "STICK/.ferry/identity is not a ferry identity (not the expected JSON)"
        }
    }
}
