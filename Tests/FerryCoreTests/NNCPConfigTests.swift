import Foundation
import Testing

@testable import FerryCore

@Suite("Reading NNCP's config dump")
struct NNCPConfigTests {
    let nodes = TestNodes(["spooler", "backupsvr"])

    func dump(signprv: String? = nil) -> TemporaryDirectory {
        let dump = TemporaryDirectory()
        let seed = nodes.seeds["spooler"]!
        dump.write("spool", "/var/spool/nncp\n")
        dump.write("log", "/var/spool/nncp/log\n")
        dump.write("self/id", nodes.id("spooler") + "\n")
        dump.write("self/signprv", (signprv ?? Base32.encode(seed + nodes.publicKey("spooler"))) + "\n")
        for name in ["self", "backupsvr"] {
            let node = name == "self" ? "spooler" : name
            dump.write("neigh/\(name)/id", nodes.id(node) + "\n")
            dump.write("neigh/\(name)/signpub", Base32.encode(nodes.publicKey(node)) + "\n")
        }
        return dump
    }

    @Test("ids, keys and neighbours come out of the dump tree")
    func read() throws {
        let directory = dump()
        let config = try NNCPConfigLoader.read(dump: directory.path, path: "/etc/nncp.hjson")
        #expect(config.spool == "/var/spool/nncp")
        #expect(config.selfID == nodes.id("spooler"))
        #expect(Set(config.neighbours.keys) == ["self", "backupsvr"])
        #expect(config.node(id: nodes.id("spooler"))?.name == "self")
        let signature = try config.sign([1, 2, 3])
        #expect(config.neighbours["self"]!.isValidSignature(signature, for: [1, 2, 3]))
        #expect(!config.neighbours["backupsvr"]!.isValidSignature(signature, for: [1, 2, 3]))
    }

    @Test("a signing key that is not ed25519 is named")
    func badKey() {
        let directory = dump(signprv: "AAAA")
        #expect { _ = try NNCPConfigLoader.read(dump: directory.path, path: "/etc/nncp.hjson") } throws: { error in
            (error as? NNCPConfigError)?.code == .badKey("self.signprv")
                && "\(error)" == "NNCP config /etc/nncp.hjson has a self.signprv that is not an ed25519 key"
        }
    }

    @Test("a missing NNCP config is named with where it was set, and nothing is run")
    func missing() async {
        let runner = FakeRunner()
        await #expect {
            _ = try await NNCPConfigLoader(runner: runner).load(
                path: "/nonexistent/nncp.hjson", configKey: "nncp-config in /etc/ferry/ferry.toml")
        } throws: { error in
            (error as? NNCPConfigError)?.code == .missing
                && "\(error)"
                    == "NNCP config /nonexistent/nncp.hjson (nncp-config in /etc/ferry/ferry.toml) does not exist; make one with nncp-cfgnew"
        }
        #expect(runner.calls.isEmpty)
    }
}
