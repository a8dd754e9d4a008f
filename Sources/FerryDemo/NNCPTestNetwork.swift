import FerryCore
import Foundation

/// A set of NNCP nodes on one machine that know each other's keys: the test
/// bed of DESIGN.md section 7, used by `ferry demo` and the integration tests.
public struct NNCPTestNetwork: Sendable {
    public struct Node: Sendable {
        public var name: String
        /// Neighbour name to the nodes that packets for it travel through.
        public var via: [String: [String]] = [:]
        /// Exec handlers this node offers to every neighbour.
        public var exec: [String: [String]] = [:]

        public init(name: String, via: [String: [String]] = [:], exec: [String: [String]] = [:]) {
            self.name = name
            self.via = via
            self.exec = exec
        }
    }

    public var directory: String
    /// Node name to the path of its NNCP config.
    public var configs: [String: String]

    public func config(_ name: String) -> String { configs[name]! }
    public func spool(_ name: String) -> String { "\(directory)/\(name)/spool" }

    /// Makes fresh keys for each node with `nncp-cfgnew`, and writes each
    /// node a JSON config (JSON is valid HJSON) naming all the others.
    public static func create(in directory: String, nodes: [Node], runner: any CommandRunner) async throws -> NNCPTestNetwork {
        var keys: [String: [String: String]] = [:]
        for node in nodes {
            let home = "\(directory)/\(node.name)"
            try FileManager.default.createDirectory(atPath: home + "/spool", withIntermediateDirectories: true)
            let fresh = try await runner.check(NNCP.cfgnew())
            let freshPath = home + "/cfgnew.hjson"
            try Data(fresh.standardOutput).write(to: URL(fileURLWithPath: freshPath))
            try await runner.check(NNCP.cfgdirDump(config: freshPath, into: home + "/cfgnew.d"))
            var selfKeys: [String: String] = [:]
            for key in ["id", "exchpub", "exchprv", "signpub", "signprv", "noisepub", "noiseprv"] {
                let text = try String(contentsOfFile: "\(home)/cfgnew.d/self/\(key)", encoding: .utf8)
                selfKeys[key] = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            try FileManager.default.removeItem(atPath: home + "/cfgnew.d")
            try FileManager.default.removeItem(atPath: freshPath)
            keys[node.name] = selfKeys
        }
        var configs: [String: String] = [:]
        for node in nodes {
            let home = "\(directory)/\(node.name)"
            func publicKeys(of name: String) -> [String: Any] {
                let all = keys[name]!
                return ["id": all["id"]!, "exchpub": all["exchpub"]!, "signpub": all["signpub"]!, "noisepub": all["noisepub"]!]
            }
            var neighbours: [String: Any] = ["self": publicKeys(of: node.name)]
            for other in nodes where other.name != node.name {
                var entry = publicKeys(of: other.name)
                if let via = node.via[other.name] { entry["via"] = via }
                if !node.exec.isEmpty { entry["exec"] = node.exec }
                neighbours[other.name] = entry
            }
            let config: [String: Any] = [
                "spool": home + "/spool",
                "log": home + "/log",
                "self": keys[node.name]!,
                "neigh": neighbours,
            ]
            let path = home + "/nncp.hjson"
            let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
            configs[node.name] = path
        }
        return NNCPTestNetwork(directory: directory, configs: configs)
    }

    /// Carries what `sender` queued for `receiver` through the directory
    /// `lan` (nncp-xfer out, then in), and tosses it at `receiver`: the LAN
    /// between the laptop and the spooler.
    public func carry(from sender: String, to receiver: String, through lan: String, runner: any CommandRunner) async throws {
        try FileManager.default.createDirectory(atPath: lan, withIntermediateDirectories: true)
        try await runner.check(NNCP.xferSend(config: config(sender), directory: lan, node: receiver, keep: false, timeout: .seconds(60)))
        try await runner.check(NNCP.xferReceive(config: config(receiver), directory: lan, timeout: .seconds(60)))
        try await runner.check(NNCP.toss(config: config(receiver), timeout: .seconds(60)))
    }
}
