import Crypto
import Foundation
import SystemPackage

/// One NNCP node as another node's config knows it.
public struct NNCPNode: Sendable, Equatable {
    public var name: String
    /// The node id, base32 as NNCP prints it.
    public var id: String
    /// The raw ed25519 public key (`signpub`) that checks this node's signatures.
    public var signPublicKey: [UInt8]
    /// The nodes that packets for this one travel through (`via`).
    public var via: [String] = []
    /// What this node may run here: handle name to argv (`exec`).
    public var exec: [String: [String]] = [:]

    /// Whether `signature` over `message` was made by this node.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: signPublicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// The parts of an NNCP config that ferry uses, read through `nncp-cfgdir`.
public struct NNCPConfig: Sendable {
    public var path: String
    public var spool: String
    public var log: String
    public var selfID: String
    /// This node's public keys, base32, for its card; empty where the
    /// config lacks one.
    public var selfKeys = PublicKeys()
    /// The 32-byte ed25519 seed of this node's signing key (`self.signprv`).
    var signingSeed: [UInt8]
    /// The neighbours by name, including NNCP's own `self` entry.
    public var neighbours: [String: NNCPNode]

    /// The name ferry's config gives this node (`name`), when it does.
    public var configuredName: String?

    /// The name the other nodes know this node by, for people to read: the
    /// configured name, else a neighbour entry with this node's id other than
    /// NNCP's own "self", else the host name. Signatures check ids and keys,
    /// never this name.
    public var selfName: String {
        configuredName ?? neighbours.values.filter { $0.id == selfID && $0.name != "self" }.map(\.name).min()
            ?? ProcessInfo.processInfo.hostName
    }

    public func node(id: String) -> NNCPNode? {
        let matches = neighbours.values.filter { $0.id == id }
        return matches.filter { $0.name != "self" }.min { $0.name < $1.name } ?? matches.first
    }

    public func node(named name: String) -> NNCPNode? { neighbours[name] }

    /// Signs `message` with this node's NNCP signing key.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        Array(try Curve25519.Signing.PrivateKey(rawRepresentation: signingSeed).signature(for: message))
    }
}

/// A node's public keys, base32 as NNCP writes them.
public struct PublicKeys: Sendable, Equatable {
    public var exchpub = ""
    public var signpub = ""
    public var noisepub = ""
}

/// An NNCP config that cannot be used.
public struct NNCPConfigError: FerryError {
    public enum Code: Sendable, Equatable {
        /// The file is not there.
        case missing
        /// No private directory for nncp-cfgdir's dump.
        case noPrivateDirectory(Errno)
        /// nncp-cfgdir could not read it.
        case unreadable
        /// A value ferry needs is not in it.
        case missingValue(String)
        /// A key is not an ed25519 key.
        case badKey(String)
    }
    public var code: Code
    public var path: String
    public var problem: String

    public init(_ code: Code, path: String, problem: String) {
        self.code = code
        self.path = path
        self.problem = problem
    }

    public var description: String { "NNCP config \(path) \(problem)" }
}

/// Where a host's NNCP config comes from; unit tests give a fixed one.
public protocol NNCPConfigSource: Sendable {
    /// Loads the config at `path`; `configKey` says where that path was set.
    func load(path: String, configKey: String?) async throws -> NNCPConfig
}

/// Loads an NNCP config with NNCP's own parser.
///
/// `nncp-cfgdir -dump` writes the config as a directory tree, one value per
/// file, into a private 0700 directory that is removed straight afterwards,
/// since it holds the private keys.
public struct NNCPConfigLoader: NNCPConfigSource {
    public var runner: any CommandRunner

    public init(runner: any CommandRunner) {
        self.runner = runner
    }

    public func load(path: String, configKey: String?) async throws -> NNCPConfig {
        let named = configKey.map { "(\($0)) " } ?? ""
        guard FileManager.default.fileExists(atPath: path) else {
            throw NNCPConfigError(.missing, path: path, problem: "\(named)does not exist; make one with nncp-cfgnew")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            // A configuration directory is already the tree that -dump
            // writes: NNCP's own parser checks it (-load), then it is read
            // in place.
            do {
                try await runner.check(NNCP.cfgdirLoad(directory: path))
            } catch {
                throw NNCPConfigError(.unreadable, path: path, problem: "\(named)is refused by nncp-cfgdir -load: \(error)")
            }
            return try Self.read(dump: path, path: path)
        }
        var template = Array((NSTemporaryDirectory() + "/ferry-nncp.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw NNCPConfigError(
                .noPrivateDirectory(Errno(rawValue: errno)),
                path: path, problem: "could not be read: no private temporary directory (\(String(cString: strerror(errno))))")
        }
        let privateDirectory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: privateDirectory) }
        let dump = privateDirectory + "/cfg"
        do {
            try await runner.check(NNCP.cfgdirDump(config: path, into: dump))
        } catch {
            throw NNCPConfigError(.unreadable, path: path, problem: "\(named)could not be read by nncp-cfgdir: \(error)")
        }
        return try Self.read(dump: dump, path: path)
    }

    /// Reads the tree that `nncp-cfgdir -dump` wrote.
    static func read(dump: String, path: String) throws(NNCPConfigError) -> NNCPConfig {
        func lines(_ relative: String) -> [String] {
            (value(relative) ?? "").split(separator: "\n").map(String.init)
        }
        func value(_ relative: String) -> String? {
            guard let data = FileManager.default.contents(atPath: dump + "/" + relative) else { return nil }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func required(_ relative: String) throws(NNCPConfigError) -> String {
            guard let text = value(relative), !text.isEmpty else {
                throw NNCPConfigError(
                    .missingValue(relative), path: path, problem: "has no \(relative.replacingOccurrences(of: "/", with: "."))")
            }
            return text
        }
        let selfID = try required("self/id")
        let seedAndPublic = Base32.decode(try required("self/signprv"))
        guard let seedAndPublic, seedAndPublic.count == 64,
            (try? Curve25519.Signing.PrivateKey(rawRepresentation: seedAndPublic.prefix(32))) != nil
        else {
            throw NNCPConfigError(.badKey("self.signprv"), path: path, problem: "has a self.signprv that is not an ed25519 key")
        }
        var neighbours: [String: NNCPNode] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dump + "/neigh")) ?? []
        for name in names {
            let id = try required("neigh/\(name)/id")
            guard let key = Base32.decode(try required("neigh/\(name)/signpub")),
                (try? Curve25519.Signing.PublicKey(rawRepresentation: key)) != nil
            else {
                throw NNCPConfigError(
                    .badKey("neigh.\(name).signpub"), path: path, problem: "has a neigh.\(name).signpub that is not an ed25519 key")
            }
            var node = NNCPNode(name: name, id: id, signPublicKey: key, via: lines("neigh/\(name)/via"))
            for handle in (try? FileManager.default.contentsOfDirectory(atPath: dump + "/neigh/\(name)/exec")) ?? [] {
                node.exec[handle] = lines("neigh/\(name)/exec/\(handle)")
            }
            neighbours[name] = node
        }
        var config = NNCPConfig(
            path: path, spool: try required("spool"), log: value("log") ?? "", selfID: selfID,
            signingSeed: Array(seedAndPublic.prefix(32)), neighbours: neighbours)
        config.selfKeys = PublicKeys(
            exchpub: value("self/exchpub") ?? "", signpub: value("self/signpub") ?? "", noisepub: value("self/noisepub") ?? "")
        return config
    }
}
