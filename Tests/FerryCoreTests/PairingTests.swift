import Foundation
import Testing

@testable import FerryCore

@Suite("Node cards")
struct CardTests {
    let nodes = TestNodes(["spooler", "backupsvr", "laptop", "impostor"])

    func card(_ name: String, role: Role = .laptop, as node: String? = nil) throws -> NodeCard {
        try NodeCard.make(name: name, role: role, nncp: nodes.config(of: node ?? name))
    }

    static let counting: [UInt8] = (0..<512).map { UInt8($0 % 256) }

    @Test(
        "BLAKE2b-256 gives the digests of Python's hashlib: empty, abc, and four blocks",
        arguments: [
            ([UInt8](), "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"),
            (Array("abc".utf8), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"),
            (counting, "540b20132d8aeae54057cb69c24f95d26a1c472cc700dd450defe9bb796d4f14"),
        ] as [([UInt8], String)])
    func blake2b(message: [UInt8], digest: String) {
        #expect(Hex.encode(Blake2b.hash(message)) == digest)
    }

    @Test("an NNCP id is BLAKE2b-256 of signpub: a pair from nncp-cfgnew")
    func nncpID() {
        // From `nncp-cfgnew` 8.8.2 on this machine.
        let signpub = Base32.decode("WAMTV74NILWQD6A2CWQO66GNUN7KWER4KLUEQL5R3T2YJMMIQLQQ")!
        #expect(Base32.encode(Blake2b.hash(signpub)) == "2OFS36YROTFUEROGWXAPDMMVXBNDG5X2NMPDN4FW2FX3EXDBYN3A")
    }

    @Test("a card verifies; its fingerprint is its id's first 16 characters in groups of four, and --accept takes either")
    func fingerprint() throws {
        let laptop = try card("laptop")
        let id = nodes.id("laptop")
        #expect(laptop.id == id)
        #expect(laptop.fingerprint == [0, 4, 8, 12].map { String(Array(id)[$0..<$0 + 4]) }.joined(separator: "-"))
        #expect(laptop.matches(fingerprint: laptop.fingerprint))
        #expect(laptop.matches(fingerprint: laptop.fingerprint.lowercased()))
        #expect(laptop.matches(fingerprint: id))
        #expect(!laptop.matches(fingerprint: "AAAA-BBBB-CCCC-DDDD"))
        let read = try NodeCard.read(Array(try laptop.text().utf8), source: "laptop.card")
        #expect(read == laptop)
        #expect(try laptop.text().hasSuffix("\nfingerprint: \(laptop.fingerprint)"))
    }

    @Test("the signature covers the card without sig as sorted-keys JSON")
    func signedBytes() throws {
        let laptop = try card("laptop")
        let text = String(decoding: try laptop.signedBytes(), as: UTF8.self)
        #expect(text.hasPrefix("{\"card\":1,\"exchpub\":"))
        #expect(!text.contains("\"sig\""))
        #expect(nodes.config(of: "laptop").neighbours["self"]!.isValidSignature(Hex.decode(laptop.sig!)!, for: try laptop.signedBytes()))
    }

    @Test("a card with a bad signature, an id that is not its signpub's, or a wrong fingerprint line is refused in one line")
    func refusals() throws {
        var flipped = try card("laptop")
        flipped.name = "laptop2"
        var otherID = try card("laptop")
        otherID.id = nodes.id("spooler")
        otherID.sig = Hex.encode(try nodes.config(of: "laptop").sign(try otherID.signedBytes()))
        let wrongLine = try card("laptop").json() + "\nfingerprint: AAAA-BBBB-CCCC-DDDD\n"
        let cases: [(String, String)] = [
            (try flipped.json(), "has a signature that does not verify against its own signpub"),
            (try otherID.json(), "which is not the NNCP id of its signpub"),
            (wrongLine, "says fingerprint AAAA-BBBB-CCCC-DDDD"),
            ("{\"card\": 1}", "is not a ferry card"),
            ("hello", "is not a ferry card (no JSON object)"),
        ]
        for (text, message) in cases {
            #expect {
                _ = try NodeCard.read(Array(text.utf8), source: "x.card")
            } throws: { error in
                "\(error)".contains(message) && "\(error)".hasSuffix("; nothing changed") && !"\(error)".contains("\n")
            }
        }
    }
}

/// One host's NNCP configuration directory, ferry config and state dir, in
/// a scratch directory; NNCP itself is not run.
struct PairingHost {
    let scratch = TemporaryDirectory()
    let nodes: TestNodes
    let role: Role
    let name: String

    init(_ role: Role, name: String, nodes: TestNodes, extra: String = "") {
        self.nodes = nodes
        self.role = role
        self.name = name
        for key in ["id", "signpub"] {
            scratch.write("nncp/neigh/self/\(key)", key == "id" ? nodes.id(name) : Base32.encode(nodes.publicKey(name)))
        }
        scratch.write(
            "ferry.toml",
            NodeInit.configText(
                role: role, name: name, nncpConfig: scratch.path + "/nncp", nncpUser: "", stateDir: scratch.path + "/state",
                mountRoot: scratch.path + "/mnt") + extra)
    }

    var configPath: String { scratch.path + "/ferry.toml" }

    /// The NNCP config as NNCP would read the directory now.
    func nncp() throws -> NNCPConfig {
        var config = nodes.config(of: name)
        config.path = scratch.path + "/nncp"
        config.configuredName = name
        let names = try FileManager.default.contentsOfDirectory(atPath: config.path + "/neigh").filter { !$0.hasPrefix(".") }
        var known: [String: NNCPNode] = [:]
        for neighbour in names {
            func lines(_ file: String) -> [String] {
                ((try? String(contentsOfFile: "\(config.path)/neigh/\(neighbour)/\(file)", encoding: .utf8)) ?? "").split(separator: "\n")
                    .map(String.init)
            }
            var node = NNCPNode(
                name: neighbour, id: lines("id").first ?? "", signPublicKey: Base32.decode(lines("signpub").first ?? "") ?? [],
                via: lines("via"))
            for handle in (try? FileManager.default.contentsOfDirectory(atPath: "\(config.path)/neigh/\(neighbour)/exec")) ?? [] {
                node.exec[handle] = lines("exec/" + handle)
            }
            known[neighbour] = node
        }
        config.neighbours = known
        return config
    }

    func pairing() throws -> Pairing {
        let context = FerryContext(config: try FerryConfig.load(path: configPath), runner: FakeRunner())
        return Pairing(context: context, nncp: try nncp(), ferryExecutable: "/usr/bin/ferry")
    }

    func add(_ card: NodeCard) throws -> Bool {
        try pairing().add(Array(try card.text().utf8), source: "\(card.name).card").changed
    }

    /// The config text and every file under the NNCP directory.
    func everything() throws -> String {
        var text = try String(contentsOfFile: configPath, encoding: .utf8)
        let root = scratch.path + "/nncp"
        for file in (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted() {
            text += "\n\(file): " + ((try? String(contentsOfFile: root + "/" + file, encoding: .utf8)) ?? "<dir>")
        }
        return text + "\ncards: "
            + ((try? FileManager.default.contentsOfDirectory(atPath: scratch.path + "/state/cards").sorted().joined(separator: ",")) ?? "")
    }

    func file(_ relative: String) -> String? { try? String(contentsOfFile: scratch.path + "/" + relative, encoding: .utf8) }
}

@Suite("ferry pair add, by this host's role and the card's")
struct PairAddTests {
    let nodes = TestNodes(["spooler", "backupsvr", "laptop", "impostor"])

    func card(_ name: String, _ role: Role, as node: String? = nil) throws -> NodeCard {
        try NodeCard.make(name: name, role: role, nncp: nodes.config(of: node ?? name))
    }

    @Test(
        "backupsvr takes a laptop: exec zfsreceive runs ferry receive and ferrystate ferry state, with its --config; [receive].senders names it"
    )
    func backupsvrTakesLaptop() throws {
        let host = PairingHost(.backupsvr, name: "backupsvr", nodes: nodes)
        #expect(try host.add(try card("spooler", .spooler)))
        #expect(try host.add(try card("laptop", .laptop)))
        #expect(host.file("nncp/neigh/laptop/exec/zfsreceive") == "/usr/bin/ferry\nreceive\n--config\n\(host.configPath)\n")
        #expect(host.file("nncp/neigh/laptop/exec/ferrystate") == "/usr/bin/ferry\nstate\n--config\n\(host.configPath)\n")
        #expect(host.file("nncp/neigh/laptop/id") == nodes.id("laptop") + "\n")
        #expect(host.file("nncp/neigh/laptop/via") == "spooler\n")
        let config = try FerryConfig.load(path: host.configPath)
        #expect(config.receive.senders == ["laptop": "laptop"])
        #expect(config.peer == "spooler")
        #expect(host.file("ferry.toml")!.hasPrefix("# Written by ferry init."), "the comments stay")
        #expect(try host.add(try card("laptop", .laptop)) == false, "the same card again changes nothing")
    }

    @Test("a laptop takes the spooler, then backupsvr: via the spooler, zfsrestore and ferrystate, [send].backupsvr")
    func laptopTakesBackupsvr() throws {
        let host = PairingHost(.laptop, name: "laptop", nodes: nodes)
        #expect { _ = try host.add(try card("backupsvr", .backupsvr)) } throws: { "\($0)".contains("pair add the spooler's card first") }
        #expect(try host.add(try card("spooler", .spooler)))
        #expect(try host.add(try card("vault", .backupsvr, as: "backupsvr")))
        #expect(host.file("nncp/neigh/vault/via") == "spooler\n")
        #expect(host.file("nncp/neigh/vault/exec/zfsrestore") == "/usr/bin/ferry\nreceive\n--config\n\(host.configPath)\n")
        #expect(host.file("nncp/neigh/vault/exec/ferrystate") == "/usr/bin/ferry\nstate\n--config\n\(host.configPath)\n")
        #expect(try FerryConfig.load(path: host.configPath).send.backupsvr == "vault")
    }

    @Test("the spooler keeps a laptop's card to introduce, and takes backupsvr as its peer")
    func spooler() throws {
        let host = PairingHost(.spooler, name: "spooler", nodes: nodes)
        #expect(try host.add(try card("laptop", .laptop)))
        #expect(try host.add(try card("backupsvr", .backupsvr)))
        #expect(try CardStore(stateDir: host.scratch.path + "/state").all().map(\.name) == ["backupsvr", "laptop"])
        #expect(host.file("nncp/neigh/laptop/exec/zfsreceive") == nil)
        #expect(try FerryConfig.load(path: host.configPath).peer == "backupsvr")
    }

    @Test(
        "a bad signature, an id that is not its signpub's, a role that makes no sense here, a taken name: one line each, nothing changed",
        arguments: ["bad signature", "id", "role", "taken name", "own card", "second peer"])
    func refused(_ kind: String) throws {
        let host = PairingHost(.backupsvr, name: "backupsvr", nodes: nodes)
        _ = try host.add(try card("spooler", .spooler))
        _ = try host.add(try card("laptop", .laptop))
        let before = try host.everything()
        var text: String
        let message: String
        switch kind {
        case "bad signature":
            var card = try card("laptop2", .laptop, as: "impostor")
            card.role = Role.spooler.rawValue
            text = try card.json()
            message = "has a signature that does not verify against its own signpub; nothing changed"
        case "id":
            var card = try card("laptop2", .laptop, as: "impostor")
            card.id = nodes.id("laptop")
            card.sig = Hex.encode(try nodes.config(of: "impostor").sign(try card.signedBytes()))
            text = try card.json()
            message = "which is not the NNCP id of its signpub; nothing changed"
        case "role":
            text = try card("vault", .backupsvr, as: "impostor").text()
            message = "a backupsvr's card makes no sense on a backupsvr (backupsvr takes laptops and the spooler); nothing changed"
        case "taken name":
            text = try card("laptop", .laptop, as: "impostor").text()
            message = "the name laptop is taken by another node (\(NodeCard.fingerprint(ofID: nodes.id("laptop")))); nothing changed"
        case "own card":
            text = try card("backupsvr", .backupsvr).text()
            message = "is this node's own card; nothing changed"
        default:
            text = try card("spooler2", .spooler, as: "impostor").text()
            message = "this backupsvr's peer is spooler already (peer in \(host.configPath)); nothing changed"
        }
        #expect {
            _ = try host.pairing().add(Array(text.utf8), source: "x.card")
        } throws: { error in
            "\(error)".hasSuffix(message) && !"\(error)".contains("\n")
        }
        #expect(try host.everything() == before)
    }

    @Test("an NNCP config that is one HJSON file is not edited: one line says how to convert it")
    func hjsonFile() throws {
        let host = PairingHost(.spooler, name: "spooler", nodes: nodes)
        host.scratch.write("nncp.hjson", "{}")
        var nncp = try host.nncp()
        nncp.path = host.scratch.path + "/nncp.hjson"
        let pairing = Pairing(
            context: FerryContext(config: try FerryConfig.load(path: host.configPath), runner: FakeRunner()), nncp: nncp,
            ferryExecutable: "/usr/bin/ferry")
        #expect {
            _ = try pairing.add(Array(try card("laptop", .laptop).text().utf8), source: "laptop.card")
        } throws: { error in
            "\(error)"
                == "NNCP config \(nncp.path) is one HJSON file, which ferry does not edit; convert it to a directory with nncp-cfgdir -cfg \(nncp.path) -dump \(host.scratch.path)/nncp, then set nncp-config = \"\(host.scratch.path)/nncp\" in \(host.configPath); nothing changed"
        }
        #expect(host.file("nncp.hjson") == "{}")
    }
}

@Suite("Editing ferry.toml key by key")
struct ConfigEditTests {
    @Test("a key is replaced in place, added after a table's last setting, or added with its table; comments stay")
    func edits() {
        var edit = ConfigEdit(path: "/x", text: "# top\nrole = \"spooler\"\n\n[receive]\n# who\nsenders = {}\n\n[send]\ndatasets = []\n")
        edit.set("peer", to: "\"backupsvr\"")
        edit.set("senders", to: ConfigEdit.inlineTable(["laptop": "laptop", "a.b": "a.b"]), in: "receive")
        edit.set("backupsvr", to: "\"vault\"", in: "send")
        edit.set("keep", to: "\"10\"", in: "retention")
        #expect(
            edit.text
                == "# top\nrole = \"spooler\"\npeer = \"backupsvr\"\n\n[receive]\n# who\nsenders = { \"a.b\" = \"a.b\", \"laptop\" = \"laptop\" }\n\n[send]\ndatasets = []\nbackupsvr = \"vault\"\n\n[retention]\nkeep = \"10\"\n"
        )
    }
}
