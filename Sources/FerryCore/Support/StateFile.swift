import Foundation
import SystemPackage

/// One of the small JSON files ferry keeps in `state-dir`, holding a
/// `Value`: written atomically, mode 0600, in a 0700 directory.
///
/// A damaged file (not JSON of a `Value`) is never read as empty and then
/// replaced: it is moved aside as `NAME.damaged-TIME`, and the error says
/// where, so that what it held can be looked at. A file whose loss would
/// change what ferry does (the drive registry) is kept in place instead.
struct StateFile<Value: Codable>: Sendable {
    /// What becomes of a damaged file when it is loaded.
    enum IfDamaged: Sendable {
        /// Moved aside; the file starts afresh at its next write.
        case setAside
        /// Left where it is, refused until an admin restores it.
        case keep
    }

    var name: String
    var stateDir: String
    var ifDamaged: IfDamaged

    init(_ name: String, stateDir: String, ifDamaged: IfDamaged = .setAside) {
        self.name = name
        self.stateDir = stateDir
        self.ifDamaged = ifDamaged
    }

    var path: String { stateDir + "/" + name }

    /// The value; nil when the file is missing. Throws one line naming the
    /// file when it cannot be read (with the errno) or is damaged (and
    /// then says where it was moved).
    func load() throws(StateFileError) -> Value? {
        let bytes: [UInt8]
        do {
            let directory = try SafeDirectory(path: stateDir)
            guard try directory.kind(of: name) != nil else { return nil }
            bytes = try directory.readFile(name, limit: 16 << 20)
        } catch  where error.code == .system(.noSuchFileOrDirectory) {
            return nil
        } catch {
            throw StateFileError(path: path, code: .unreadable(error))
        }
        do {
            return try JSONDecoder().decode(Value.self, from: Data(bytes))
        } catch {
            guard ifDamaged == .setAside else { throw StateFileError(path: path, code: .damaged(keptAs: nil)) }
            throw StateFileError(path: path, code: .damaged(keptAs: try setAside()))
        }
    }

    /// Like `load`, for a step that goes on without the value: a problem
    /// is handed to `report` as one line, and the value is nil.
    func load(reporting report: (String) -> Void) -> Value? {
        do {
            return try load()
        } catch {
            report("\(error)")
            return nil
        }
    }

    /// Renames the damaged file to `NAME.damaged-TIME`, a name not taken yet.
    private func setAside() throws(StateFileError) -> String {
        let stamp = Date().rfc3339.replacingOccurrences(of: ":", with: "")
        for attempt in 0..<100 {
            let aside = "\(path).damaged-\(stamp)" + (attempt == 0 ? "" : "-\(attempt)")
            guard !FileManager.default.fileExists(atPath: aside) else { continue }
            guard rename(path, aside) == 0 else {
                throw StateFileError(path: path, code: .unreadable(FileAccessError(path: path, code: .system(Errno(rawValue: errno)))))
            }
            return aside
        }
        throw StateFileError(path: path, code: .damaged(keptAs: nil))
    }

    func write(_ value: Value) throws(StateFileError) {
        do throws(FileAccessError) {
            try LocalFiles.createDirectory(stateDir, mode: 0o700)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let bytes: [UInt8]
            do {
                bytes = Array(try encoder.encode(value))
            } catch {
                throw FileAccessError(path: path, code: .system(.invalidArgument))
            }
            try SafeDirectory(path: stateDir).writeFileAtomically(name, bytes: bytes, mode: 0o600)
        } catch {
            throw StateFileError(path: path, code: .unwritable(error))
        }
    }
}

/// A state file that cannot be used, as one line naming it.
public struct StateFileError: FerryError {
    public enum Code: Sendable {
        case unreadable(FileAccessError)
        /// Not JSON of what ferry keeps there; `keptAs` is where it was moved.
        case damaged(keptAs: String?)
        case unwritable(FileAccessError)
    }
    public var path: String
    public var code: Code

    public var isDamaged: Bool {
        if case .damaged = code { return true }
        return false
    }

    public var description: String {
        switch code {
        case .unreadable(let error): "state file \(path) cannot be read: \(error)"
        case .damaged(let keptAs?):
            "state file \(path) is damaged (not the JSON ferry writes); it was moved aside to \(keptAs), and ferry starts it afresh"
        case .damaged(nil): "state file \(path) is damaged (not the JSON ferry writes); restore it from a backup, or move it aside"
        case .unwritable(let error): "state file \(path) cannot be written: \(error)"
        }
    }
}
