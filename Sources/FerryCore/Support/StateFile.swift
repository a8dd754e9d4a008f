import Foundation

/// The small JSON files ferry keeps in `state-dir`.
enum StateFile {
    static func write(_ value: some Encodable, name: String, stateDir: String) throws {
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SafeDirectory(path: stateDir).writeFileAtomically(name, bytes: Array(try encoder.encode(value)), mode: 0o600)
    }

    static func read<T: Decodable>(_ type: T.Type, name: String, stateDir: String) -> T? {
        guard let directory = try? SafeDirectory(path: stateDir),
            let bytes = try? directory.readFile(name, limit: 16 << 20)
        else { return nil }
        return try? JSONDecoder().decode(type, from: Data(bytes))
    }
}
