import Foundation

/// One of the small JSON files ferry keeps in `state-dir`, holding a
/// `Value`: written atomically, mode 0600, in a 0700 directory.
struct StateFile<Value: Codable>: Sendable {
    /// Why a state file could not be loaded.
    enum LoadError: Error {
        case unreadable(FileAccessError)
        /// Not JSON of a `Value`: what JSONDecoder said.
        case damaged(any Error)
    }

    var name: String
    var stateDir: String

    init(_ name: String, stateDir: String) {
        self.name = name
        self.stateDir = stateDir
    }

    var path: String { stateDir + "/" + name }

    /// The value; nil when the file is missing, unreadable or damaged.
    func read() -> Value? {
        try? load()
    }

    /// The value; nil when the file is missing, and an error that tells
    /// unreadable from damaged otherwise.
    func load() throws(LoadError) -> Value? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try SafeDirectory(path: stateDir).readFile(name, limit: 16 << 20)
        } catch {
            throw .unreadable(error)
        }
        do {
            return try JSONDecoder().decode(Value.self, from: Data(bytes))
        } catch {
            throw .damaged(error)
        }
    }

    func write(_ value: Value) throws {
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SafeDirectory(path: stateDir).writeFileAtomically(name, bytes: Array(try encoder.encode(value)), mode: 0o600)
    }
}
